"""Item sensors (issue 11, item 3), on a fake clock: loading waits for the
item, a patron who leaves something behind is told (then staff), an item in
a compartment that should be empty raises an alarm, and a compartment with
no sensor behaves as it always did."""

from __future__ import annotations

import json

import pytest

from bibbox.central import wire
from bibbox.locker.domain.messages import BoardOnline, ItemSensed
from bibbox.locker.domain.model import AlarmKind, HoldState
from tests.central_helpers import Contract
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig

GRACE = 2.0
TIMING = {"item_grace_s": GRACE, "reopen_window_s": 60, "kiosk_idle_s": 45}


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path, timing=TIMING)
    r.start()
    r.add_patron(ALICE_CARD, ALICE_PIN)
    return r


def sense(rig, number, present):
    rig.controller.post(ItemSensed(number, present))
    rig.run()


def alarms(rig):
    return {(a["alarm"], a["compartment"]) for a in rig.state["alarms"]}


def events(rig, type_):
    return [json.loads(p) for t, p in rig.outbox() if t == type_]


def load(rig, number, hold_id="L1"):
    """Staff load a new hold into ``number`` and the door opens."""
    rig.locker.load_hold("anna", hold_id=hold_id, patron_hash=rig.patron_hash(ALICE_CARD),
                         items=[{"barcode": "B1", "title": "Kaffe"}], compartment=number)
    rig.run()
    assert rig.fire_all() == [number]
    rig.door(number, True)


def hold_state(rig, hold_id):
    return rig.store.hold(hold_id).state


def validate_events(rig):
    contract = Contract.load()
    for row in rig.store.outbox_batch(limit=10_000):
        contract.validate("Event", json.loads(wire.event(row, "test-1")))


# -- (a) loading ------------------------------------------------------------------------
def test_a_loading_the_sensor_confirms_is_ready_when_the_door_closes(rig):
    sense(rig, 2, False)
    load(rig, 2)
    sense(rig, 2, True)                   # the item goes in
    rig.door(2, False)
    assert hold_state(rig, "L1") is HoldState.READY
    assert "hold.ready" in rig.outbox_types()
    assert "hold.load_unconfirmed" not in rig.outbox_types()


def test_a_loading_the_sensor_does_not_confirm_is_not_ready(rig):
    sense(rig, 2, False)
    load(rig, 2)
    rig.door(2, False)                    # closed on an empty compartment
    assert hold_state(rig, "L1") is HoldState.LOADING   # waiting for the sensor
    rig.advance(GRACE - 0.1)
    assert hold_state(rig, "L1") is HoldState.LOADING
    rig.advance(0.2)
    hold = rig.store.hold("L1")
    assert hold.state is HoldState.ANNOUNCED and hold.compartment is None
    assert rig.locker.item_load_unconfirmed("L1") == 2   # the staff page says where
    assert not rig.locker.openings and "hold.ready" not in rig.outbox_types()
    assert events(rig, "hold.load_unconfirmed") == [
        {"hold_id": "L1", "compartment": 2, "pickup_number": hold.pickup_number}]
    row = rig.store.audit_rows(action="loading_failed")[-1]
    assert row["compartment"] == 2 and row["reason"] == "item not seen"
    assert {c["number"]: c["state"] for c in rig.state["compartments"]}[2] == "free"
    validate_events(rig)
    load(rig, 2)                          # load again, this time with the item
    sense(rig, 2, True)
    rig.door(2, False)
    assert hold_state(rig, "L1") is HoldState.READY


def test_a_sensor_report_late_within_the_grace_window_confirms_the_loading(rig):
    sense(rig, 2, False)
    load(rig, 2)
    rig.door(2, False)
    rig.advance(GRACE / 2)                # IR is polled: the report comes after the door
    sense(rig, 2, True)
    assert hold_state(rig, "L1") is HoldState.READY
    rig.advance(10 * GRACE)
    assert hold_state(rig, "L1") is HoldState.READY
    assert "hold.load_unconfirmed" not in rig.outbox_types()
    assert not alarms(rig)


def test_a_sensor_that_falls_silent_never_blocks_a_loading(rig):
    sense(rig, 2, False)
    load(rig, 2)
    rig.door(2, False)
    rig.controller.post(BoardOnline("rs485/0", False, (2,)))   # its board stops answering
    rig.advance(GRACE + 0.1)
    assert 2 not in rig.locker.items_present                   # presence unknown
    rig.controller.post(BoardOnline("rs485/0", True, (2,)))
    rig.door(2, False)                    # the board answers: the door first
    assert hold_state(rig, "L1") is HoldState.READY


# -- no sensor ---------------------------------------------------------------------------
def test_compartments_without_a_sensor_behave_as_before(rig):
    load(rig, 2)
    rig.door(2, False)
    assert hold_state(rig, "L1") is HoldState.READY       # at once, nothing to wait for
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [2]
    rig.door(2, True)
    rig.door(2, False)
    assert hold_state(rig, "L1") is HoldState.COLLECTED
    rig.advance(120)
    assert rig.kiosk["screen"] == "idle" and not alarms(rig)
    assert not {"item.left_behind", "hold.load_unconfirmed"} & set(rig.outbox_types())
    assert rig.locker._items.next_due() is None            # nothing pending


# -- (b) pickup ---------------------------------------------------------------------------
def alice_collects_from_1(rig):
    rig.place("h1", ALICE_CARD, 1, titles=("Kaffe",))
    sense(rig, 1, True)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]
    rig.door(1, True)
    rig.door(1, False)
    assert hold_state(rig, "h1") is HoldState.COLLECTED    # collected at the close, as ever


def test_an_item_left_behind_tells_the_patron_and_central_then_staff(rig):
    alice_collects_from_1(rig)
    assert rig.kiosk["screen"] == "receipt" and rig.kiosk["left_behind"] == []
    rig.advance(GRACE + 0.1)              # still there after the grace window
    view = rig.kiosk
    assert view["left_behind"] == [1] and view["reopen"] is True
    assert events(rig, "item.left_behind") == [
        {"compartment": 1, "hold_ids": ["h1"], "patron_hash": rig.patron_hash(ALICE_CARD)}]
    assert ALICE_CARD not in json.dumps(rig.outbox())
    assert rig.store.audit_rows(action="item_left_behind")[-1]["compartment"] == 1
    assert not alarms(rig)                # the patron may still take it
    rig.advance(60)                       # the reopen window ends: staff are told
    assert ("item_left_behind", 1) in alarms(rig)
    assert any(r["why"] == "item_left_behind" for r in rig.locker.unload_list())
    assert len(events(rig, "item.left_behind")) == 1
    sense(rig, 1, False)                  # staff took it out
    assert not alarms(rig)
    validate_events(rig)


def test_the_patron_reopens_and_takes_what_they_forgot(rig):
    alice_collects_from_1(rig)
    rig.advance(GRACE + 0.1)
    assert rig.kiosk["left_behind"] == [1]
    rig.card(ALICE_CARD)                  # the same card within the window
    assert rig.fire_all() == [1]
    rig.door(1, True)
    sense(rig, 1, False)
    rig.door(1, False)
    assert rig.kiosk["screen"] == "receipt" and rig.kiosk["left_behind"] == []
    rig.advance(300)
    assert not alarms(rig) and len(events(rig, "item.left_behind")) == 1


def test_the_patron_reopens_and_closes_it_again_without_taking_it(rig):
    alice_collects_from_1(rig)
    rig.advance(GRACE + 0.1)
    rig.card(ALICE_CARD)
    rig.fire_all()
    rig.door(1, True)
    rig.door(1, False)
    rig.advance(GRACE + 0.1)
    assert rig.kiosk["left_behind"] == [1]
    assert len(events(rig, "item.left_behind")) == 1   # once per patron and compartment
    rig.advance(60)
    assert ("item_left_behind", 1) in alarms(rig)


def test_a_reopen_straddling_the_grace_window_tells_once_with_the_holds(rig):
    alice_collects_from_1(rig)
    rig.card(ALICE_CARD)                  # at once: the door opens again
    assert rig.fire_all() == [1]
    rig.door(1, True)
    rig.advance(GRACE + 0.1)              # the check falls due with the door open
    assert rig.kiosk["left_behind"] == [] and "item.left_behind" not in rig.outbox_types()
    rig.door(1, False)                    # ... and closed on it again
    rig.advance(GRACE + 0.1)
    assert rig.kiosk["left_behind"] == [1]
    assert events(rig, "item.left_behind") == [
        {"compartment": 1, "hold_ids": ["h1"], "patron_hash": rig.patron_hash(ALICE_CARD)}]


def test_an_item_taken_within_the_grace_window_was_not_left_behind(rig):
    alice_collects_from_1(rig)
    rig.advance(GRACE / 2)
    sense(rig, 1, False)                  # the sensor was a poll behind the door
    rig.advance(300)
    assert rig.kiosk["screen"] == "idle" and not alarms(rig)
    assert "item.left_behind" not in rig.outbox_types()


def test_without_a_reopen_window_staff_are_told_at_once(tmp_path):
    rig = Rig(tmp_path, timing={"item_grace_s": GRACE, "reopen_window_s": 0})
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    alice_collects_from_1(rig)
    rig.advance(GRACE + 0.1)
    assert rig.kiosk["left_behind"] == [1] and rig.kiosk["reopen"] is False
    assert ("item_left_behind", 1) in alarms(rig)


# -- (c) wrong compartment -----------------------------------------------------------------
def test_an_item_in_a_compartment_that_should_be_empty_raises_an_alarm(rig):
    sense(rig, 3, True)
    rig.advance(GRACE - 0.1)
    assert not alarms(rig)
    rig.advance(0.2)
    assert alarms(rig) == {("unexpected_item", 3)}
    assert rig.locker.propose_compartment("S") != 3 and rig.locker.propose_compartment() != 3
    assert {"compartment": 3, "hold_id": None, "why": "unexpected_item",
            "items": []} in rig.locker.unload_list()
    sense(rig, 3, False)                  # taken out: the alarm clears itself
    assert not alarms(rig)
    sense(rig, 3, True)
    rig.advance(GRACE + 0.1)
    rig.locker.clear_alarm("unexpected_item", 3, "anna")   # or staff clear it
    rig.run()
    assert not alarms(rig)


def test_a_blip_shorter_than_the_grace_window_raises_nothing(rig):
    sense(rig, 3, True)
    rig.advance(GRACE / 2)
    sense(rig, 3, False)
    rig.advance(10 * GRACE)
    assert not alarms(rig)


def test_a_mix_up_shows_both_halves(rig):
    """Staff open door 4 by hand and door 2 to load, and put the item in 4."""
    for n in (2, 4):
        sense(rig, n, False)
    rig.locker.open_compartment(4, "anna", "tidy up")
    rig.run()
    assert rig.fire_all() == [4]
    rig.door(4, True)
    load(rig, 2)
    sense(rig, 4, True)                   # the item goes into the wrong door
    assert not alarms(rig)                # never while its door is open
    rig.door(4, False)
    rig.door(2, False)
    rig.advance(GRACE + 0.1)
    assert hold_state(rig, "L1") is HoldState.ANNOUNCED and \
        rig.locker.item_load_unconfirmed("L1") == 2
    assert alarms(rig) == {("unexpected_item", 4)}


def test_a_ready_hold_is_expected_inside_and_raises_nothing(rig):
    rig.place("h1", ALICE_CARD, 1)
    sense(rig, 1, True)
    rig.advance(10 * GRACE)
    assert not alarms(rig)


def test_confirmed_unloading_with_the_item_still_sensed_raises_the_alarm(rig):
    rig.place("h1", ALICE_CARD, 1)
    sense(rig, 1, True)
    rig.locker.confirm_removed(1, "anna")
    rig.run()
    rig.advance(GRACE + 0.1)
    assert alarms(rig) == {("unexpected_item", 1)}


def test_the_start_reads_the_sensors(tmp_path):
    rig = Rig(tmp_path, timing={"item_grace_s": GRACE})
    rig.locker.start({n: "closed" for n in range(1, 5)}, {2: True, 3: False})
    rig.run()
    rig.advance(GRACE + 0.1)
    assert alarms(rig) == {("unexpected_item", 2)}
    again = Rig(tmp_path, timing={"item_grace_s": GRACE})      # a restart: 2 is empty now
    again.locker.start({n: "closed" for n in range(1, 5)}, {2: False})
    again.run()
    assert not alarms(again)
    assert AlarmKind.UNEXPECTED_ITEM.value not in json.dumps(again.state["alarms"])


# -- configuration ----------------------------------------------------------------------------
def test_item_sensors_are_configured_where_the_hardware_has_them():
    from bibbox.locker.domain.buses import bus_map
    from bibbox.locker.domain.config import parse
    from bibbox.locker.domain.errors import ConfigError
    kerong = {"name": "rs", "kind": "kerong", "port": "/dev/ttyUSB0", "item_sensors": True}
    modbus = {"name": "mb", "kind": "modbus", "port": "/dev/ttyUSB1", "item_sensors": True}
    doc = {"locker": {"id": "t"}, "buses": [kerong], "compartments": [
        {"number": 1, "size": "S", "relay_pin": 5, "door_pin": 17, "item_pin": 27},
        {"number": 2, "size": "S", "bus": "rs", "board": 0, "lock": 0}]}
    cfg = parse(doc)
    assert cfg.bus("rs").item_sensors and cfg.compartment(1).item_pin == 27
    assert cfg.timing.item_grace_s == 2.0
    assert any("IR item sensors" in line for line in bus_map(cfg))
    doc["buses"] = [kerong, modbus]
    doc["compartments"] += [{"number": 3, "size": "S", "bus": "rs", "board": 0, "lock": 1,
                             "item_pin": 26},
                            {"number": 4, "size": "S", "bus": "mb", "unit": 1, "coil": 0}]
    with pytest.raises(ConfigError) as err:
        parse(doc)
    assert [p.split(":")[0] for p in err.value.problems] == [
        "buses[1].item_sensors", "compartments[2].item_pin"]
