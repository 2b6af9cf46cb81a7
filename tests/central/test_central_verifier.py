"""Patron checks through central over a real broker: answers, timeouts, an
offline link, malformed answers, and a whole pickup where central decides."""

import json
import threading

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bibbox.central.verifier import CentralVerifier
from bibbox.locker.domain.identity import Pin
from bibbox.locker.domain.messages import CardRead, PinEntered
from tests.brokers import Subscriber, broker, broker_factory  # noqa: F401
from tests.central_helpers import LockerRig, contract_validator, wait_until
from tests.domain_helpers import ALICE_CARD, ALICE_PIN

ROOT = "bibbox/test-1"


class FakeCentral:
    """Answers patron checks the way the test tells it to."""

    def __init__(self, port, answer, root=ROOT):
        self.answer = answer            # request dict -> verdict dict or None
        self.requests = []
        self.sub = Subscriber(port, ["#"], validate=contract_validator, qos=1)
        self.sub.client.message_callback_add(f"{root}/patron/check", self._on_check)
        self.sub.start()

    def _on_check(self, client, userdata, msg):
        req = json.loads(msg.payload)
        self.requests.append((req, msg))
        self.sub._on_message(client, userdata, msg)
        verdict = self.answer(req)
        if verdict is None:
            return
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = msg.properties.CorrelationData
        body = {"request_id": req["request_id"], **verdict}
        contract_validator(msg.properties.ResponseTopic, json.dumps(body).encode())
        client.publish(msg.properties.ResponseTopic, json.dumps(body), qos=1,
                       properties=props)


@pytest.fixture
def rig(tmp_path):
    r = LockerRig(tmp_path / "locker")
    yield r
    r.close()


def verify(verifier, pin="1234"):
    got, done = [], threading.Event()

    def cb(verdict):
        got.append(verdict)
        done.set()
    verifier.verify("ab" * 32, Pin.parse(pin), cb)
    assert done.wait(10)
    return got


def make(rig, broker, timeout_s=3.0):
    link = rig.link(broker.url)
    wait_until(lambda: link.health()["subscribed"], 10, "the link")
    verifier = CentralVerifier(rig.cfg, clock=rig.clock, port=link, timeout_s=timeout_s)
    link.route_verdicts(verifier.on_verdict, closed=verifier.close)
    return link, verifier


def test_an_answer_from_central_is_the_verdict(broker, rig):
    central = FakeCentral(broker.port, lambda req: {
        "outcome": "accepted", "due": {"b1": "2026-07-01"}, "default_due": "2026-07-02"})
    link, v = make(rig, broker)
    got = verify(v, "4321")
    assert [g.outcome for g in got] == ["accepted"]
    assert got[0].due == {"b1": "2026-07-01"} and got[0].default_due == "2026-07-02"
    req, msg = central.requests[0]
    assert req["pin"] == "4321" and req["patron_hash"] == "ab" * 32
    assert msg.retain is False and msg.qos == 0
    assert msg.properties.ResponseTopic == f"{ROOT}/patron/verdict"
    central.sub.stop()
    assert not central.sub.errors


def test_no_answer_in_time_is_unavailable_and_done_runs_once(broker, rig):
    late = []
    central = FakeCentral(broker.port, lambda req: late.append(req) or None)
    link, v = make(rig, broker, timeout_s=0.3)
    got = verify(v)
    assert [(g.outcome, g.reason) for g in got] == [("unavailable", "timeout")]
    # a late answer changes nothing
    req = late[0]
    central.sub.publish(f"{ROOT}/patron/verdict", json.dumps(
        {"request_id": req["request_id"], "outcome": "accepted"}), qos=1).wait_for_publish(5)
    central.sub.wait_for(lambda ms: any(m.topic.endswith("verdict") for m in ms))
    assert len(got) == 1 and v.pending() == 0
    central.sub.stop()


def test_a_malformed_answer_is_unavailable(broker, rig):
    central = FakeCentral(broker.port, lambda req: None)
    link, v = make(rig, broker)
    got, done = [], threading.Event()
    v.verify("ab" * 32, Pin.parse("1234"), lambda verdict: (got.append(verdict), done.set()))
    central.sub.wait_for(lambda ms: central.requests)
    req = central.requests[0][0]
    central.sub.publish(f"{ROOT}/patron/verdict", json.dumps(
        {"request_id": req["request_id"], "outcome": "perhaps"}), qos=1)
    assert done.wait(10)
    assert [(g.outcome, g.reason) for g in got] == [("unavailable", "bad_answer")]
    central.sub.stop()


def test_with_the_link_down_the_answer_is_unavailable_at_once(tmp_path, rig):
    v = CentralVerifier(rig.cfg, clock=rig.clock, port=None)
    assert [g.outcome for g in verify(v)] == ["unavailable"]


def test_a_pickup_decided_by_central_never_puts_the_card_number_on_the_wire(broker, rig):
    rig.call(lambda lk: rig.rig.place("h1", ALICE_CARD, 2))
    central = FakeCentral(broker.port, lambda req: {"outcome": "accepted",
                                                    "default_due": "2026-08-01"})
    link, v = make(rig, broker)
    rig.locker.verifier = v
    from bibbox.locker.domain.identity import CardNumber
    rig.controller.post(CardRead(CardNumber.parse(ALICE_CARD)))
    rig.controller.post(PinEntered(ALICE_PIN))
    wait_until(lambda: rig.rig.relays.pulses, 10, "the door to be unlocked")
    assert rig.rig.relays.pulses[0][0] == 2
    central.sub.wait_for(lambda ms: any(m.topic.endswith("/events") for m in ms))
    for m in central.sub.messages:
        assert ALICE_CARD.encode() not in m.payload, m.topic
        if m.topic != f"{ROOT}/patron/check":
            assert not _holds_value(json.loads(m.payload), ALICE_PIN), m.topic
    central.sub.stop()
    assert not central.sub.errors


def _holds_value(obj, needle):
    if isinstance(obj, dict):
        return any(k == "pin" or _holds_value(v, needle) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_holds_value(v, needle) for v in obj)
    return str(obj) == needle


def test_the_daemon_wires_verifier_and_link_both_ways_and_stop_answers_the_waiting(
        broker, tmp_path):
    """The bootstrap gives the verifier the link as its outgoing port and
    routes verdicts back; stopping the link answers a waiting check."""
    from tests.fault_helpers import sim_daemon
    answer = {"verdict": {"outcome": "accepted"}}
    central = FakeCentral(broker.port, lambda req: answer["verdict"], root="bibbox/fault-1")
    daemon = sim_daemon(tmp_path / "state", serve_web=False, mqtt_url=broker.url,
                        extra='[verifier]\nkind = "central"\ntimeout_s = 30\n')
    try:
        assert daemon.verifier.port is daemon.link
        daemon.start()
        wait_until(lambda: daemon.link.health()["subscribed"], 10, "the link")
        assert [g.outcome for g in verify(daemon.verifier)] == ["accepted"]
        answer["verdict"] = None                       # central goes quiet
        got, done = [], threading.Event()
        daemon.verifier.verify("ab" * 32, Pin.parse("1234"),
                               lambda verdict: (got.append(verdict), done.set()))
        central.sub.wait_for(lambda ms: len(central.requests) == 2)
        daemon.link.stop()
        assert done.wait(5), "a waiting check outlived the link"
        assert [(g.outcome, g.reason) for g in got] == [("unavailable", "offline")]
    finally:
        daemon.stop()
        central.sub.stop()
    assert not central.sub.errors
