"""Commands from central through a real broker: every refusal, replays,
MQTT 5 response topics, floods, timeouts and the domain commands.

Every response is validated against docs/asyncapi.yaml."""

import threading

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bibbox.central import commands as commands_mod
from bibbox.central.command_table import CommandSpec, Field
from bibbox.locker.domain.errors import CommandError
from tests.brokers import Subscriber, broker, broker_factory  # noqa: F401
from tests.central_helpers import Central, LockerRig, command, contract_validator, wait_until

ROOT = "bibbox/test-1"


@pytest.fixture
def rig(tmp_path):
    r = LockerRig(tmp_path / "locker")
    yield r
    r.close()


@pytest.fixture
def central(broker, rig):
    sub = Subscriber(broker.port, [f"{ROOT}/responses", f"{ROOT}/responses/+"],
                     validate=contract_validator, qos=1).start()
    link = rig.link(broker.url)
    wait_until(lambda: link.health()["subscribed"], 10, "the link")
    c = Central(sub)
    c.link, c.rig = link, rig
    yield c
    sub.stop()
    assert not sub.errors, sub.errors


def snapshot(rig):
    return rig.call(lambda lk: lk.state_view()), rig.outbox_depth()


def test_get_state_answers_with_the_full_state(central):
    rid = central.send("get_state", command("get_state", clock=central.rig.clock))
    resp = central.response(rid)
    assert resp["status"] == "ok" and resp["code"] == "ok"
    assert [c["number"] for c in resp["result"]["compartments"]] == [1, 2, 3, 4]


BAD = [
    ("bad_json", "get_state", b"{not json", None),
    ("bad_request", "get_state", b"[1, 2]", None),
    ("unauthorised", "get_state", None, {"locker_id": None}),
    ("unauthorised", "get_state", None, {"locker_id": "test-2"}),
    ("bad_request", "get_state", None, {"sent_at": "yesterday"}),
    ("bad_request", "get_state", None, {"extra": 1}),
    ("bad_request", "get_state", None, {"args": [1]}),
    ("stale", "get_state", None, {"sent_at": -301}),
    ("stale", "get_state", None, {"sent_at": +301}),
    ("unknown_command", "self_destruct", None, {}),
    ("bad_args", "open_compartment", None, {"args": {"number": "1", "reason": "x"}}),
    ("bad_args", "open_compartment", None, {"args": {"number": 1}}),
    ("bad_args", "open_compartment", None, {"args": {"number": 1, "reason": "x", "y": 2}}),
    ("bad_args", "announce_hold", None, {"args": {"hold_id": "h1"}}),
    ("unknown_compartment", "open_compartment", None, {"args": {"number": 99, "reason": "x"}}),
    ("unknown_compartment", "set_out_of_service", None,
     {"args": {"number": 0 + 5, "reason": "broken"}}),
    ("too_large", "get_state", b"{" + b" " * (16 * 1024) + b"}", None),
]


@pytest.mark.parametrize("code, name, raw, change", BAD, ids=[f"{b[0]}-{i}" for i, b in
                                                             enumerate(BAD)])
def test_every_malformed_command_is_refused_and_changes_nothing(central, code, name, raw,
                                                                change):
    before = snapshot(central.rig)
    body = command(name, clock=central.rig.clock)
    if change:
        for k, v in change.items():
            if k == "locker_id" and v is None:
                del body["locker_id"]
            elif k == "sent_at" and not isinstance(v, str):
                body["sent_at"] = central.rig.clock.wall() + v
            else:
                body[k] = v
    central.send(name, body, raw=raw, validate=False)
    rid = None if raw is not None else body["request_id"]
    resp = central.response(rid)
    assert (resp["status"], resp["code"]) == ("error", code), resp
    assert resp["result"] is None
    assert snapshot(central.rig) == before


def test_retained_commands_are_refused(central):
    body = command("get_state", clock=central.rig.clock)
    central.send("get_state", body, retain=True)
    assert central.response(body["request_id"])["code"] == "retained"
    central.sub.publish(f"{ROOT}/commands/get_state", b"", retain=True, qos=1).wait_for_publish(5)


def _bump_spec(counter):
    def run(locker, args, actor):
        counter.append(actor)
        with locker.store.unit() as unit:       # a real change: an event
            unit.event("door.closed", {"compartment": 1})
        return {"n": len(counter)}
    return CommandSpec("test_bump", {"note": Field("string", required=False)}, run)


def test_replay_returns_the_first_answer_and_changes_nothing_even_after_restart(
        central, broker):
    counter = []
    central.link.commands.register(_bump_spec(counter))
    body = command("test_bump", {"note": "x"}, clock=central.rig.clock, actor="jdoe")
    central.send("test_bump", body, validate=False)
    first = central.response(body["request_id"])
    assert first["result"] == {"n": 1} and counter == ["central:jdoe"]
    wait_until(lambda: central.rig.outbox_depth() == 0, 10, "the event to go out")
    central.send("test_bump", body, validate=False)
    assert central.response(body["request_id"], n=2) == first
    assert counter == ["central:jdoe"] and central.rig.outbox_depth() == 0
    # the same id for another command is refused
    other = dict(body)
    central.send("get_state", other, validate=False)
    assert central.response(body["request_id"], n=3)["code"] == "duplicate_request_id"
    # a restarted link still knows the answer (central.db)
    central.link.stop()
    link2 = central.rig.link(broker.url)
    link2.commands.register(_bump_spec(counter))
    wait_until(lambda: link2.health()["subscribed"], 10, "the new link")
    central.send("test_bump", body, validate=False)
    assert central.response(body["request_id"], n=4) == first
    assert counter == ["central:jdoe"]


def test_mqtt5_response_topic_and_correlation_data_are_honoured(central):
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = f"{ROOT}/responses/central-7"
    props.CorrelationData = b"corr-42"
    body = command("get_state", clock=central.rig.clock)
    central.send("get_state", body, properties=props)
    central.response(body["request_id"], topic=f"{ROOT}/responses/central-7")
    msg = [m for m in central.sub.messages if m.topic.endswith("central-7")][0]
    assert msg.properties.CorrelationData == b"corr-42"


def test_a_response_topic_outside_the_locker_is_refused(central):
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "bibbox/test-2/commands/open_compartment"
    body = command("get_state", clock=central.rig.clock)
    central.send("get_state", body, properties=props)
    assert central.response(body["request_id"])["code"] == "bad_response_topic"


def test_a_flood_gets_busy_answers_and_memory_stays_bounded(central):
    gate = threading.Event()

    def slow(locker, args, actor):
        gate.wait(5)
        return {}
    central.link.commands.register(CommandSpec("test_slow", {}, slow))
    n = commands_mod.QUEUE_SIZE + 20
    ids = [central.send("test_slow", command("test_slow", clock=central.rig.clock),
                        validate=False) for _ in range(n)]
    central.sub.wait_for(lambda ms: any(m.json()["code"] == "busy" for m in ms), 10,
                         what="a busy answer")
    assert central.link.commands.queue.qsize() <= commands_mod.QUEUE_SIZE
    gate.set()
    central.sub.wait_for(lambda ms: len({m.json()["request_id"] for m in ms}) == n, 20,
                         what="an answer to each")
    codes = {}
    for m in central.sub.messages:
        codes.setdefault(m.json()["request_id"], m.json()["code"])
    assert set(codes) == set(ids)
    assert set(codes.values()) == {"ok", "busy"}
    assert list(codes.values()).count("ok") >= commands_mod.QUEUE_SIZE


def test_a_command_the_locker_is_slow_on_times_out_then_replays_its_real_answer(
        central, monkeypatch):
    monkeypatch.setattr(commands_mod, "COMMAND_TIMEOUT_S", 0.2)
    gate = threading.Event()
    done = threading.Event()

    def slow(locker, args, actor):
        gate.wait(5)
        done.set()
        return {"finished": True}
    central.link.commands.register(CommandSpec("test_late", {}, slow))
    body = command("test_late", clock=central.rig.clock)
    central.send("test_late", body, validate=False)
    assert central.response(body["request_id"])["code"] == "timeout"
    gate.set()
    assert done.wait(5)
    central.rig.call(lambda lk: None)         # the controller turn has finished
    central.send("test_late", body, validate=False)
    assert central.response(body["request_id"], n=2)["result"] == {"finished": True}


def test_a_domain_refusal_is_passed_on_with_its_code(central):
    def refuse(locker, args, actor):
        raise CommandError("duplicate_hold", "hold h1 already exists")
    central.link.commands.register(CommandSpec("test_refuse", {}, refuse))
    body = command("test_refuse", clock=central.rig.clock)
    central.send("test_refuse", body, validate=False)
    resp = central.response(body["request_id"])
    assert (resp["status"], resp["code"]) == ("error", "duplicate_hold")


# ---------------------------------------------------------------- domain
def _hold(rig, hold_id="h1", **kw):
    return {"hold_id": hold_id, "patron_hash": "ab" * 32,
            "items": [{"barcode": f"{hold_id}-1", "title": "Kaffe"}],
            "deadline": rig.clock.wall() + 7 * 86400, "size": None,
            "pickup_number": "4711", "pickup_code_hash": None, **kw}


def test_announce_cancel_and_sync_holds(central):
    rig = central.rig
    body = command("announce_hold", _hold(rig), clock=rig.clock)
    central.send("announce_hold", body)
    assert central.response(body["request_id"])["status"] == "ok"
    assert rig.store.hold("h1") is not None
    body = command("cancel_hold", {"hold_id": "h1", "reason": "patron cancelled"},
                   clock=rig.clock)
    central.send("cancel_hold", body)
    assert central.response(body["request_id"])["status"] == "ok"
    body = command("sync_announced", {"holds": [_hold(rig, "h2"), _hold(rig, "h3")]},
                   clock=rig.clock)
    central.send("sync_announced", body)
    assert central.response(body["request_id"])["status"] == "ok"
    assert rig.store.hold("h2") is not None and rig.store.hold("h3") is not None


def test_open_compartment_and_out_of_service_are_audited(central):
    rig = central.rig
    body = command("open_compartment", {"number": 2, "reason": "patron on the phone"},
                   clock=rig.clock, actor="jdoe")
    central.send("open_compartment", body)
    assert central.response(body["request_id"])["status"] == "ok"
    wait_until(lambda: rig.rig.relays.pulses, 5, "the relay pulse")
    assert rig.rig.relays.pulses[0][0] == 2
    audit = rig.store.audit_rows(conn=rig.store.reader())
    assert any(a["actor"] == "central:jdoe" and a["reason"] == "patron on the phone"
               for a in audit)
    body = command("set_out_of_service", {"number": 3, "reason": "broken hinge"},
                   clock=rig.clock)
    central.send("set_out_of_service", body)
    assert central.response(body["request_id"])["status"] == "ok"
    state = rig.call(lambda lk: lk.state_view())
    assert state["compartments"][2]["state"] == "out_of_service"
    body = command("expire_now", {}, clock=rig.clock)
    central.send("expire_now", body)
    assert central.response(body["request_id"])["status"] == "ok"


@pytest.mark.parametrize("cut", ["stopped", "severed"])
def test_commands_sent_while_the_locker_is_offline_are_answered_when_it_returns(
        broker, rig, cut):
    """MQTT 5 session expiry: the broker keeps the locker's subscription and
    queues its QoS 1 commands while it is away (``mqtt.command_session_s``);
    back, each is run or answered ``stale`` by its ``sent_at``."""
    from tests.brokers import TcpProxy
    sub = Subscriber(broker.port, [f"{ROOT}/responses"], validate=contract_validator,
                     qos=1).start()
    proxy = TcpProxy(broker.port)
    link = rig.link(proxy.url)
    wait_until(lambda: link.transport.subscribed, 10, "the link's subscriptions")
    if cut == "stopped":
        link.stop()
    else:
        proxy.open.clear()                        # it cannot come back meanwhile
        proxy.sever()
        wait_until(lambda: not link.connected, 10, "the link to notice")
    central = Central(sub)
    fresh = central.send("get_state", command("get_state", clock=rig.clock))
    stale = central.send("get_state", command("get_state", sent_at=rig.clock.wall() - 301,
                                              clock=rig.clock))
    if cut == "stopped":
        rig.link(broker.url)                      # the same locker, a new run
    else:
        proxy.open.set()                          # its backoff brings it back
    assert central.response(fresh)["status"] == "ok"
    assert central.response(stale)["code"] == "stale"
    proxy.close()
    sub.stop()
    assert not sub.errors, sub.errors


def test_without_a_session_commands_sent_while_offline_are_not_kept(broker, tmp_path):
    rig = LockerRig(tmp_path / "locker", mqtt={"command_session_s": 0})
    try:
        sub = Subscriber(broker.port, [f"{ROOT}/responses"], qos=1).start()
        link = rig.link(broker.url)
        wait_until(lambda: link.transport.subscribed, 10, "the link's subscriptions")
        link.stop()
        central = Central(sub)
        lost = central.send("get_state", command("get_state", clock=rig.clock))
        again = rig.link(broker.url)
        wait_until(lambda: again.transport.subscribed, 10, "the link's subscriptions")
        after = central.send("get_state", command("get_state", clock=rig.clock))
        central.response(after)
        assert not [m for m in sub.messages if m.json().get("request_id") == lost]
        sub.stop()
    finally:
        rig.close()


def test_cpr_numbers_in_command_free_text_are_masked_before_anything_is_written(
        central, broker):
    """A reason or actor from central holding a CPR number (any form) is
    masked by the one sanitiser before it is stored, published or answered."""
    rig = central.rig
    everything = Subscriber(broker.port, [f"{ROOT}/#"], validate=contract_validator,
                            qos=1).start()
    try:
        body = command("set_out_of_service", {"number": 3,
                                              "reason": "låner 010170-9999 ringede"},
                       clock=rig.clock, actor="0101709999")
        central.send("set_out_of_service", body)
        assert central.response(body["request_id"])["status"] == "ok"
        body = command("open_compartment", {"number": 2, "reason": "patron 010170 9999"},
                       clock=rig.clock)
        central.send("open_compartment", body)
        assert central.response(body["request_id"])["status"] == "ok"
        state = rig.call(lambda lk: lk.state_view())
        assert state["compartments"][2]["out_of_service"] == "låner [cpr removed] ringede"
        wait_until(lambda: any(m.topic.endswith("/compartments/3") for m in everything.messages),
                   10, "the retained compartment state")
    finally:
        everything.stop()
    # what the locker wrote: every message but central's own commands, its
    # audit rows, its database and WAL files
    written = [m.payload.decode("utf-8", "replace") for m in everything.messages
               if "/commands/" not in m.topic]
    written += [str(dict(a)) for a in rig.store.audit_rows(conn=rig.store.reader())]
    for suffix in ("", "-wal"):
        try:
            with open(rig.store.path + suffix, "rb") as fh:
                written.append(fh.read().decode("latin-1"))
        except FileNotFoundError:
            pass
    assert any("[cpr removed]" in text for text in written)
    for text in written:
        for form in ("0101709999", "010170-9999", "010170 9999"):
            assert form not in text
