"""The central link against hostile or broken input on a real broker: no
payload can stop it, a dead network loop is reported and fails the
watchdog, and generated garbage on every subscribed topic leaves it
answering.  Every message the subscriber sees is validated against
docs/asyncapi.yaml."""

import json
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bibbox.central.topics import HA_STATUS
from bibbox.daemon.systemd import check_health
from tests.brokers import Subscriber, broker, broker_factory  # noqa: F401
from tests.central_helpers import Central, LockerRig, command, contract_validator, wait_until

ROOT = "bibbox/test-1"
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.fixture
def rig(tmp_path):
    r = LockerRig(tmp_path / "locker", mqtt={"home_assistant": True})
    yield r
    r.close()


@pytest.fixture
def central(broker, rig):
    sub = Subscriber(broker.port, [f"{ROOT}/responses"], validate=contract_validator,
                     qos=1).start()
    link = rig.link(broker.url)
    wait_until(lambda: link.transport.subscribed, 10, "the link's subscriptions")
    c = Central(sub)
    c.link, c.rig = link, rig
    yield c
    sub.stop()
    assert not sub.errors, sub.errors


def still_answers(central):
    rid = central.send("get_state", command("get_state", clock=central.rig.clock))
    assert central.response(rid)["status"] == "ok"
    health = central.link.health()
    assert health["loop_alive"] and health["connected"] and health["unhealthy"] == []


def test_a_command_nested_5000_deep_is_refused_and_the_link_lives_on(central):
    central.send("get_state", None, raw=DEEP)
    resp = central.response(None)
    assert (resp["status"], resp["code"]) == ("error", "bad_json")
    still_answers(central)


@pytest.mark.parametrize("raw", [
    b'{"request_id":"deep-1","sent_at":1,"locker_id":"test-1","args":{"x":' + DEEP + b"}}",
    b'{"request_id":"big-1","sent_at":1' + b"0" * 400 + b',"locker_id":"test-1"}',
    b'{"request_id":"big-2","sent_at":1e999,"locker_id":"test-1"}',
    b'{"request_id":"nan-1","sent_at":NaN,"locker_id":"test-1"}',
    b'{"request_id":"lone-1","sent_at":1,"locker_id":"test-1","actor":"\\ud800"}',
    b'{"request_id":"cut-1","sent_at":',
], ids=["deep", "huge-int", "huge-float", "nan", "lone-surrogate", "truncated"])
def test_a_malformed_command_is_answered_with_its_request_id(central, raw):
    rid = json.loads(b'{"r":' + raw.split(b",", 1)[0].split(b":", 1)[1] + b"}")["r"]
    central.send("get_state", None, raw=raw)
    resp = central.response(rid)
    assert (resp["status"], resp["code"]) == ("error", "bad_json")
    still_answers(central)


@pytest.mark.parametrize("raw", [b'{"request_id": []}', b"{}", b'{"request_id": {}}',
                                 DEEP, b"1" + b"0" * 400, b"\xff\xfe", b"",
                                 b'{"request_id":"x","outcome":"accepted","due":' + DEEP + b"}",
                                 b" " * 20000])
def test_no_verdict_payload_stops_the_link(central, raw):
    central.sub.publish(f"{ROOT}/patron/verdict", raw, qos=1).wait_for_publish(5)
    central.sub.publish(HA_STATUS, raw, qos=1).wait_for_publish(5)
    still_answers(central)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_network_loop_is_reported_and_fails_the_watchdog(central):
    class Fatal(BaseException):
        """Not an Exception: gets past any guard, as a bug in paho itself would."""

    def explode(*args, **kwargs):
        raise Fatal()

    link, rig = central.link, central.rig
    daemon = types.SimpleNamespace(controller=rig.controller, reader=None, link=link)
    assert check_health(daemon) == []
    link.commands.submit = explode
    central.sub.publish(f"{ROOT}/commands/get_state", b"{}", qos=1).wait_for_publish(5)
    wait_until(lambda: not link.health()["loop_alive"], 10, "the loop to die")
    health = link.health()
    assert health["connected"] is False
    assert any("network loop" in p for p in health["unhealthy"])
    assert any("network loop" in p for p in check_health(daemon))


def test_an_outbox_that_is_never_acknowledged_while_connected_is_unhealthy(central):
    link, rig = central.link, central.rig
    link._outbox.acknowledged = lambda session, mid, failed: None   # PUBACKs lost
    rig.emit(1)
    wait_until(lambda: link.health()["oldest_unacked_s"] is not None, 10, "the event")
    assert link.health()["unhealthy"] == []
    rig.clock.advance(link.stall_limit_s + 1)
    health = link.health()
    assert health["oldest_unacked_s"] > link.stall_limit_s
    assert any("not acknowledged" in p for p in health["unhealthy"])


# ----------------------------------------------------- generated garbage
garbage = st.one_of(
    st.binary(max_size=64),
    st.just(b""),
    st.integers(1, 6000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(300, 5000).map(lambda n: b"9" * n),
    st.sampled_from([b"1e999", b"-1e999", b"NaN", b"Infinity", b'"\\ud800"', b"null",
                     b'{"request_id":[]}', b'{"request_id":1e999}', b"{}", b"[]"]),
    st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.dictionaries(st.sampled_from(["request_id", "sent_at", "locker_id", "args",
                                     "actor", "outcome", "due", "reason"]),
                    st.none() | st.booleans() | st.integers() | st.floats()
                    | st.text(max_size=10) | st.lists(st.integers(), max_size=3),
                    max_size=6).map(lambda d: json.dumps(d).encode()))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(burst=st.lists(st.tuples(st.sampled_from(["commands/get_state", "commands/nope",
                                                 "patron/verdict", "ha"]), garbage),
                      min_size=1, max_size=6))
def test_generated_garbage_on_every_subscribed_topic_never_stops_the_link(central, burst):
    for where, payload in burst:
        topic = HA_STATUS if where == "ha" else f"{ROOT}/{where}"
        central.sub.publish(topic, payload, qos=1).wait_for_publish(5)
    still_answers(central)
