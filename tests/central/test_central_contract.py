"""The AsyncAPI document is sound, and the code agrees with it: topics,
event types, command arguments and every payload builder.  No broker."""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from bibbox.central import homeassistant, wire
from bibbox.central.command_table import default_commands
from bibbox.central.commands import CommandHandler, Request
from bibbox.central.topics import Topics, ha_node_id
from bibbox.central.verifier import parse_verdict
from bibbox.locker.store.central import AnswerStore
from bibbox.locker.domain.model import AlarmKind, EventType
from tests.central_helpers import Contract
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig

T = Topics("bibbox/test-1")


@pytest.fixture(scope="module")
def contract():
    return Contract.load()


def test_the_document_is_asyncapi_3_with_valid_schemas_and_resolvable_refs(contract):
    doc = contract.doc
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["version"] == wire.CONTRACT_VERSION
    for name, schema in contract.schemas.items():
        Draft202012Validator.check_schema(schema)

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    contract.resolve(v)          # raises KeyError if dangling
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    for name, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), name
        contract.resolve(op["channel"]["$ref"])


def test_event_and_alarm_names_match_the_model(contract):
    assert set(contract.schemas["EventType"]["enum"]) == {e.value for e in EventType}
    assert set(contract.schemas["AlarmKind"]["enum"]) == {a.value for a in AlarmKind}


def _pascal(name):
    return "".join(p.title() for p in name.split("_"))


def test_the_command_table_matches_the_argument_schemas(contract):
    specs = default_commands()
    channels = {ch["address"].rsplit("/", 1)[1] for ch in contract.doc["channels"].values()
                if "/commands/" in ch["address"]}
    assert channels == set(specs)
    for name, spec in specs.items():
        schema = contract.schemas[_pascal(name) + "Args"]
        while "$ref" in schema:
            schema = contract.resolve(schema["$ref"])
        assert set(schema.get("properties", {})) == set(spec.args), name
        assert set(schema.get("required", [])) == {k for k, f in spec.args.items()
                                                   if f.required}, name
        for key, f in spec.args.items():
            prop = schema["properties"][key]
            while "$ref" in prop:
                prop = contract.resolve(prop["$ref"])
            types = prop.get("type") or [t.get("type") for t in prop.get("anyOf", [])]
            types = set(types if isinstance(types, list) else [types])
            if "anyOf" in prop:
                types |= {contract.resolve(t["$ref"]).get("type") for t in prop["anyOf"]
                          if "$ref" in t}
            assert f.kind in types, (name, key, types)
            assert ("null" in types) == f.nullable, (name, key)


def test_every_topic_the_code_makes_is_a_channel_of_the_contract(contract):
    topics = [T.availability, T.heartbeat, T.state, T.compartment(12), T.events,
              T.responses, T.responses + "/central-1", T.patron_check, T.patron_verdict,
              "homeassistant/status"]
    topics += [T.command(name) for name in default_commands()]
    topics += [t for t, _ in homeassistant.discovery_messages(
        locker_id="test-1", name="x", version="1", topics=T, compartments=[1, 2])]
    for topic in topics:
        assert contract.channel_of(topic)[0] is not None, topic
    assert T.is_response_topic(T.responses + "/x")
    assert not T.is_response_topic(T.responses + "/x/y")
    assert not T.is_response_topic("bibbox/test-2/responses")
    assert ha_node_id("Main St/1") == "bibbox_Main_St_1"


def test_availability_payloads(contract):
    contract.validate("Availability", json.loads(
        wire.availability("online", version="1", boot_id="b", ts=1.0)))
    contract.validate("Availability", json.loads(
        wire.availability("offline", version="1", boot_id="b", reason="connection_lost")))
    with pytest.raises(AssertionError):
        contract.validate("Availability", {"state": "offline", "version": "1",
                                           "boot_id": "b", "contract": "1.1.0"})


def test_snapshots_and_every_domain_event_of_a_pickup_match_the_schemas(tmp_path, contract):
    rig = Rig(tmp_path)
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.place("h1", ALICE_CARD, 1)
    rig.place("h2", ALICE_CARD, 2, days=1)
    rig.card("9999999999")
    rig.pin("1111")                        # unknown card: pickup.denied
    rig.advance(20)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    rig.fire_all()
    rig.door(1, True)
    rig.door(2, True)
    rig.door(1, False)
    rig.door(2, False)
    rig.door(3, True)                      # forced: alarm
    rig.advance(2 * 86400)                 # expiry, held open
    state = rig.state
    for view in state["compartments"]:
        contract.validate("CompartmentState",
                          json.loads(wire.with_since(wire.compartment_snapshot(view), 5.0)))
    contract.validate("LockerState", json.loads(wire.with_since(wire.locker_snapshot(state), 5)))
    rows = rig.store.outbox_batch(limit=10_000)
    types = {r["type"] for r in rows}
    assert {"hold.ready", "hold.collected", "door.opened", "door.closed", "lock.released",
            "pickup.denied", "alarm.raised"} <= types
    for row in rows:
        contract.validate("Event", json.loads(wire.event(row, "test-1")))


def test_event_privacy_is_part_of_the_schema(contract):
    bad = {"id": "3f1c0a9e-6a47-4d53-9e1f-6a1e6f2f1c11", "seq": 1, "ts": 1.0,
           "type": "pickup.denied", "locker_id": "x", "data": {"reason": "x", "pin": "1234"}}
    with pytest.raises(AssertionError):
        contract.validate("Event", bad)


def test_home_assistant_configs_match_the_schema(contract):
    for topic, payload in homeassistant.discovery_messages(
            locker_id="test-1", name="Bibboksen", version="1", topics=T, compartments=[1, 2]):
        config = json.loads(payload)
        contract.validate("HaDiscovery", config)
        assert re.match(r"^homeassistant/(binary_sensor|sensor)/bibbox_test-1/\w+/config$",
                        topic)
        # Home Assistant 2025.10 deprecated object_id; from 2026.4 only the full
        # entity id (domain.object id, a valid entity id: [a-z0-9_]) is honoured
        component, leaf = topic.split("/")[1], topic.split("/")[3]
        assert "object_id" not in config
        assert config["default_entity_id"] == f"{component}.bibbox_test_1_{leaf}"
        assert re.match(r"^[a-z_]+\.[a-z0-9_]+$", config["default_entity_id"])


def test_parse_verdict():
    v = parse_verdict({"request_id": "r", "outcome": "accepted", "due": {"b1": "2026-07-01"},
                       "default_due": "2026-07-02"})
    assert v.outcome == "accepted" and v.due == {"b1": "2026-07-01"}
    assert parse_verdict({"request_id": "r", "outcome": "maybe"}) is None
    assert parse_verdict({"request_id": "r", "outcome": "accepted", "due": {"b": "soon"}}) is None
    assert parse_verdict([1]) is None


# ---------------------------------------------------------- hypothesis fuzzing
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20)
envelopes = st.fixed_dictionaries(
    {}, optional={"request_id": st.text(min_size=0, max_size=8) | json_values,
                  "sent_at": st.floats(1_779_999_000, 1_780_001_000) | json_values,
                  "locker_id": st.sampled_from(["test-1", "test-2"]) | json_values,
                  "args": json_values | st.fixed_dictionaries(
                      {}, optional={"number": st.integers(-2, 6) | json_values,
                                    "reason": st.text(max_size=5) | json_values}),
                  "actor": json_values})


@pytest.fixture(scope="module")
def fuzz_rig(tmp_path_factory):
    rig = Rig(tmp_path_factory.mktemp("fuzz"))
    rig.start()
    return rig


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["get_state", "open_compartment", "set_out_of_service",
                             "cancel_hold", "nope"]),
       body=envelopes | json_values)
def test_any_command_body_gets_exactly_one_valid_answer(fuzz_rig, contract, name, body):
    answers = []
    handler = CommandHandler(locker_id="test-1", compartments=[1, 2, 3, 4],
                             controller=fuzz_rig.controller, clock=fuzz_rig.clock,
                             answers=AnswerStore(fuzz_rig.tmp_path / "fuzz-central.db"),
                             respond=lambda resp, req: answers.append(resp))
    handler.handle(Request(name, body))
    handler.answers.close()
    assert len(answers) == 1
    resp = answers[0]
    resp = json.loads(resp) if isinstance(resp, bytes) else resp
    contract.validate("CommandResponse", resp)
    if resp["status"] == "ok":
        assert isinstance(body, dict) and body.get("locker_id") == "test-1"


def test_sysinfo_reads_what_exists_and_shrugs_at_what_does_not(tmp_path):
    from bibbox.central import sysinfo
    temp = tmp_path / "temp"
    temp.write_text("48312\n")
    assert sysinfo.cpu_temp_c(str(temp)) == 48.3
    assert sysinfo.cpu_temp_c(str(tmp_path / "missing")) is None
    assert sysinfo.disk_free_bytes(str(tmp_path)) > 0
    assert sysinfo.disk_free_bytes(str(tmp_path / "missing")) is None
