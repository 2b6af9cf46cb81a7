"""The central link against a real mosquitto: availability, will, state,
heartbeat, events through broker crashes, Home Assistant discovery.

Every message a subscriber sees is validated against docs/asyncapi.yaml."""

import threading

import pytest

from bibbox.central import wire
from bibbox.central.topics import Topics
from tests.brokers import Broker, Subscriber, TcpProxy, broker, broker_factory  # noqa: F401
from tests.central_helpers import BOOT_ID, VERSION, LockerRig, contract_validator, wait_until

ROOT = "bibbox/test-1"
T = Topics(ROOT)


@pytest.fixture
def rig(tmp_path):
    r = LockerRig(tmp_path / "locker")
    yield r
    r.close()


@pytest.fixture
def subs():
    made = []

    def make(port, filters=("#",), **kw):
        s = Subscriber(port, filters, validate=contract_validator, **kw).start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()
    for s in made:
        assert not s.errors, s.errors


def online(m):
    return m.json()["state"] == "online"


def test_online_retained_state_and_heartbeat_after_connect(broker, rig, subs):
    sub = subs(broker.port, [f"{ROOT}/#"])
    link = rig.link(broker.url)
    avail = sub.last(T.availability, where=online).json()
    assert avail == {"state": "online", "version": VERSION, "boot_id": BOOT_ID,
                     "contract": wire.CONTRACT_VERSION, "ts": avail["ts"]}
    for n in (1, 2, 3, 4):
        comp = sub.last(T.compartment(n)).json()
        assert comp["door"] == "closed" and comp["lock"] == "locked"
        assert comp["state"] == "free" and comp["occupied"] is False
    assert sub.last(T.state).json()["compartments"] == [1, 2, 3, 4]
    hb = sub.last(T.heartbeat).json()
    assert hb["outbox_depth"] == 0 and hb["boot_id"] == BOOT_ID
    assert sub.last(T.heartbeat).retain is False
    # a newcomer gets the retained ones
    late = subs(broker.port, [T.availability, T.state, f"{ROOT}/compartments/+"])
    assert late.last(T.availability).retain and online(late.last(T.availability))
    late.wait_for(lambda ms: len({m.topic for m in ms if m.retain}) == 6, what="6 retained")
    h = link.health()
    assert h["connected"] is True and h["outbox_depth"] == 0 and h["last_error"] is None


def test_will_says_offline_when_the_connection_dies(broker, rig, subs):
    proxy = TcpProxy(broker.port)
    sub = subs(broker.port, [T.availability])
    rig.link(proxy.url)
    sub.last(T.availability, where=online)
    sub.clear()
    proxy.sever()        # no DISCONNECT packet: the broker must send the will
    will = sub.last(T.availability, where=lambda m: not online(m)).json()
    assert will["reason"] == "connection_lost" and will["boot_id"] == BOOT_ID
    sub.last(T.availability, where=online)        # and it comes back by itself
    proxy.close()


def test_clean_stop_publishes_offline_stopped_not_the_will(broker, rig, subs):
    sub = subs(broker.port, [T.availability])
    link = rig.link(broker.url)
    sub.last(T.availability, where=online)
    link.stop()
    assert sub.last(T.availability, where=lambda m: not online(m)).json()["reason"] == "stopped"
    late = subs(broker.port, [T.availability])
    assert late.last(T.availability).json()["reason"] == "stopped"
    assert [m.json().get("reason") for m in sub.on(T.availability)].count("connection_lost") == 0


def test_only_changed_compartments_are_published(broker, rig, subs):
    sub = subs(broker.port, [f"{ROOT}/compartments/+"])
    rig.link(broker.url)
    sub.wait_for(lambda ms: len({m.topic for m in ms}) == 4, what="all compartments")
    sub.clear()
    rig.door(2, True)     # forced open: door + alarm
    opened = sub.last(T.compartment(2), where=lambda m: m.json()["door"] == "open").json()
    assert opened["alarms"] == ["door_forced"]
    rig.door(2, False)
    sub.last(T.compartment(2), where=lambda m: m.json()["door"] == "closed")
    assert {m.topic for m in sub.messages} == {T.compartment(2)}


def test_retained_state_is_republished_after_a_broker_crash(broker, rig, subs):
    sub = subs(broker.port, [f"{ROOT}/#"])
    rig.link(broker.url)
    sub.wait_for(lambda ms: len({m.topic for m in ms if "compartments" in m.topic}) == 4)
    rig.door(3, True)
    sub.last(T.compartment(3), where=lambda m: m.json()["door"] == "open")
    broker.restart()          # kill -9: every retained message is gone
    sub.resubscribed()
    late = subs(broker.port, [f"{ROOT}/#"])
    assert late.last(T.compartment(3), where=lambda m: m.retain).json()["door"] == "open"
    assert online(late.last(T.availability, where=lambda m: m.retain))
    late.wait_for(lambda ms: len({m.topic for m in ms if m.retain}) == 6)


def _check_stream(msgs, total):
    """Dedup by id keeping the first: seq 1..total in order; duplicates equal."""
    first, order = {}, []
    for m in msgs:
        ev = m.json()
        if ev["id"] in first:
            assert first[ev["id"]] == ev, "a duplicate differs from the first copy"
            continue
        first[ev["id"]] = ev
        order.append(ev["seq"])
    assert order == list(range(order[0], order[0] + total)), "lost or out of order"
    return len(msgs) - len(order)


def test_events_survive_broker_kill_in_order_duplicates_only_by_id(broker, rig, subs):
    proxy = TcpProxy(broker.port)
    sub = subs(broker.port, [T.events])
    link = rig.link(proxy.url)
    total, chunks = 1200, 60
    emitted = threading.Event()

    def emitter():
        for _ in range(chunks):
            rig.emit(total // chunks)
        emitted.set()

    t = threading.Thread(target=emitter)
    t.start()
    sub.wait_for(lambda ms: len(ms) >= 100, what="the first events")
    proxy.open.clear()       # the link may come back only after central has
    broker.kill()
    at_kill = len(sub.messages)
    rig.emit(10)             # written while the broker is down
    broker.start()
    sub.resubscribed()
    proxy.open.set()
    t.join(30)
    assert emitted.is_set()
    wait_until(lambda: rig.outbox_depth() == 0, 30, "the outbox to drain")
    sub.wait_for(lambda ms: len({m.json()["id"] for m in ms}) == total + 10, 30,
                 what="every event")
    dups = _check_stream(sub.messages, total + 10)
    print(f"killed after {at_kill} events; {dups} duplicates")
    assert at_kill < total, "the broker died after the burst: nothing was tested"
    assert dups <= link.event_window
    assert link.health()["outbox_depth"] == 0
    proxy.close()


def test_link_started_with_the_broker_down_delivers_when_it_comes(tmp_path, rig, subs):
    b = Broker(tmp_path / "late")
    link = rig.link(b.url)
    rig.emit(25)
    wait_until(lambda: link.health()["last_error"], 10, "a connection error")
    assert link.health()["connected"] is False
    b.start()
    try:
        sub = subs(b.port, [T.events])
        wait_until(lambda: link.health()["subscribed"], 10, "the link to connect")
        sub.wait_for(lambda ms: len({m.json()["id"] for m in ms}) == 25, 10)
        wait_until(lambda: rig.outbox_depth() == 0, 10, "the outbox to drain")
    finally:
        link.stop()
        b.stop()


def test_home_assistant_discovery_and_rediscovery(broker, tmp_path, subs):
    r = LockerRig(tmp_path / "ha", mqtt={"home_assistant": True})
    try:
        sub = subs(broker.port, ["homeassistant/#"])
        r.link(broker.url)
        want = 3 * 4 + 2
        sub.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/config")]) >= want)
        door = sub.last("homeassistant/binary_sensor/bibbox_test-1/door_1/config").json()
        assert door["state_topic"] == T.compartment(1) and door["device_class"] == "door"
        assert door["availability_topic"] == T.availability
        sub.clear()
        sub.publish("homeassistant/status", b"online").wait_for_publish(5)
        sub.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/config")]) >= want)
    finally:
        r.close()


def test_a_reconnect_republishes_the_digest_and_only_unacknowledged_compartments(
        broker, rig, subs):
    """Session resumed: the broker holds what it acknowledged, so after the
    reconnect only the summary (with its digest) and the compartment that
    changed meanwhile are sent; a newcomer still gets all of them retained."""
    proxy = TcpProxy(broker.port)
    sub = subs(broker.port, [f"{ROOT}/#"])
    link = rig.link(proxy.url)
    sub.wait_for(lambda ms: len({m.topic for m in ms if "compartments" in m.topic}) == 4)
    before = sub.last(T.state).json()["digest"]
    wait_until(lambda: link._state is not None and set(link._state.acked) == {1, 2, 3, 4, "state"},
               what="every state message acknowledged")
    proxy.sever()
    sub.last(T.availability, where=lambda m: not online(m))
    sub.clear()
    rig.door(3, True)                           # changes while the link is away
    sub.last(T.availability, where=online)
    sub.last(T.heartbeat)                       # sent after the reconnect's state
    sub.last(T.state, where=lambda m: m.json()["digest"] != before)
    sub.last(T.compartment(3), where=lambda m: m.json()["door"] == "open")
    republished = {m.topic for m in list(sub.messages) if "/compartments/" in m.topic}
    assert republished == {T.compartment(3)}
    assert sub.last(T.compartment(3)).json()["door"] == "open"
    late = subs(broker.port, [f"{ROOT}/compartments/+"])
    late.wait_for(lambda ms: len({m.topic for m in ms if m.retain}) == 4)
    proxy.close()
