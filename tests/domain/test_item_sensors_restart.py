"""Item sensors across a daemon restart (issue 11): the start reads the
sensors before the doors, so a door closed while the daemon was down is
checked as if it had just closed, and an item where nothing belongs is
still found.  Each test stops the locker and starts a fresh one on the same
store and clock."""

from __future__ import annotations

from bibbox.locker.domain.model import HoldState
from tests.domain.test_item_sensors import (GRACE, TIMING, alarms, events, hold_state, load,
                                            rig, sense, validate_events)  # noqa: F401
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig


def restart(rig, items, doors=None):
    """The daemon stops; it starts again on the same store and clock with
    every door closed (unless ``doors`` says otherwise) and its item
    sensors reporting ``items`` (number -> present; absent: not reported)."""
    rig.store.close()
    again = Rig(rig.tmp_path, clock=rig.clock, timing=TIMING)
    again.locker.start({**{n: "closed" for n in range(1, 5)}, **(doors or {})}, items)
    again.run()
    return again


def alice_opens_1(rig):
    """Alice's hold h1 in compartment 1: her door is open."""
    rig.place("h1", ALICE_CARD, 1, titles=("Kaffe",))
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]
    rig.door(1, True)


# -- loading -------------------------------------------------------------------------------
def test_a_loading_closed_while_down_on_the_item_is_ready(rig):
    load(rig, 2)                            # door 2 open; the daemon stops
    again = restart(rig, {2: True})          # closed on the item meanwhile
    assert hold_state(again, "L1") is HoldState.READY
    assert not again.locker.openings and "hold.ready" in again.outbox_types()
    again.advance(10 * GRACE)
    assert not alarms(again) and "hold.load_unconfirmed" not in again.outbox_types()


def test_a_loading_closed_while_down_on_nothing_is_not_ready(rig):
    load(rig, 2)
    again = restart(rig, {2: False})
    assert hold_state(again, "L1") is HoldState.LOADING      # waiting for the sensor
    again.advance(GRACE + 0.1)
    hold = again.store.hold("L1")
    assert hold.state is HoldState.ANNOUNCED and hold.compartment is None
    assert again.locker.item_load_unconfirmed("L1") == 2
    assert not again.locker.openings and "hold.ready" not in again.outbox_types()
    assert events(again, "hold.load_unconfirmed") == [
        {"hold_id": "L1", "compartment": 2, "pickup_number": hold.pickup_number}]
    row = again.store.audit_rows(action="loading_failed")[-1]
    assert row["compartment"] == 2 and row["reason"] == "item not seen"
    assert not alarms(again)                # no stray check on the compartment it left
    validate_events(again)


def test_a_sensor_report_within_the_grace_window_after_a_restart_confirms(rig):
    load(rig, 2)
    again = restart(rig, {2: False})
    again.advance(GRACE / 2)
    sense(again, 2, True)                   # the IR poll comes a moment later
    assert hold_state(again, "L1") is HoldState.READY
    again.advance(10 * GRACE)
    assert hold_state(again, "L1") is HoldState.READY and not alarms(again)


def test_a_loading_closed_while_its_sensor_is_silent_completes_as_without_sensors(rig):
    load(rig, 2)
    again = restart(rig, {})                # its board did not answer
    assert hold_state(again, "L1") is HoldState.READY
    assert again.locker._items.next_due() is None


# -- pickup --------------------------------------------------------------------------------
def test_an_item_left_behind_while_down_is_reported_with_the_patron_and_holds(rig):
    alice_opens_1(rig)                      # the daemon stops with her door open
    again = restart(rig, {1: True})          # she closed it on something
    assert hold_state(again, "h1") is HoldState.COLLECTED
    again.advance(GRACE - 0.1)
    assert not alarms(again) and "item.left_behind" not in again.outbox_types()
    again.advance(0.2)                      # her session, and its reopen window, are gone
    assert events(again, "item.left_behind") == [
        {"compartment": 1, "hold_ids": ["h1"], "patron_hash": again.patron_hash(ALICE_CARD)}]
    assert alarms(again) == {("item_left_behind", 1)}
    assert again.store.audit_rows(action="item_left_behind")[-1]["compartment"] == 1
    assert again.kiosk["screen"] == "idle"
    validate_events(again)


def test_a_patron_door_closed_while_down_on_an_empty_compartment_raises_nothing(rig):
    alice_opens_1(rig)
    again = restart(rig, {1: False})
    assert hold_state(again, "h1") is HoldState.COLLECTED
    again.advance(10 * GRACE)
    assert not alarms(again) and "item.left_behind" not in again.outbox_types()


# -- wrong compartment ---------------------------------------------------------------------
def test_an_item_found_at_a_restart_where_nothing_belongs_raises_the_alarm(rig):
    rig.place("h1", ALICE_CARD, 1)
    load(rig, 2)
    again = restart(rig, {1: True, 2: True, 3: True, 4: False})
    assert hold_state(again, "L1") is HoldState.READY
    again.advance(GRACE + 0.1)
    assert alarms(again) == {("unexpected_item", 3)}   # not 1 (ready), not 2 (just loaded)


# -- a door still open ------------------------------------------------------------------------
def test_doors_open_at_a_restart_decide_nothing_until_they_close(rig):
    alice_opens_1(rig)
    load(rig, 2)
    again = restart(rig, {1: True, 2: False}, doors={1: "open", 2: "open"})
    again.advance(10 * GRACE)
    assert hold_state(again, "h1") is HoldState.READY
    assert hold_state(again, "L1") is HoldState.LOADING
    assert not {"item.left_behind", "hold.load_unconfirmed"} & set(again.outbox_types())
    assert not {a for a in alarms(again) if a[0] in ("unexpected_item", "item_left_behind")}
    assert again.locker._items.next_due() is None
    again.door(2, False)                    # closed on nothing, then the item is seen
    assert hold_state(again, "L1") is HoldState.LOADING
    sense(again, 2, True)
    assert hold_state(again, "L1") is HoldState.READY
    again.door(1, False)                    # closed on something
    assert hold_state(again, "h1") is HoldState.COLLECTED
    again.advance(GRACE + 0.1)
    assert ("item_left_behind", 1) in alarms(again)
    assert [e["hold_ids"] for e in events(again, "item.left_behind")] == [["h1"]]


# -- a check under way at the stop -------------------------------------------------------------
def test_a_left_behind_check_pending_at_a_restart_is_decided_again(rig):
    """The check lives in memory, the collection in the store: after the
    restart the item is still the patron's, told to central once, then
    the alarm (the patron's reopen window is lost with their session)."""
    alice_opens_1(rig)
    rig.door(1, False)
    assert hold_state(rig, "h1") is HoldState.COLLECTED
    again = restart(rig, {1: True})          # before the grace window ends
    again.advance(GRACE + 0.1)
    assert alarms(again) == {("item_left_behind", 1)}
    assert events(again, "item.left_behind") == [
        {"compartment": 1, "hold_ids": ["h1"], "patron_hash": again.patron_hash(ALICE_CARD)}]
    validate_events(again)


def test_a_left_behind_told_before_the_stop_is_not_told_twice(rig):
    """Stopped after ``item.left_behind`` went out, within the reopen
    window: the restart raises the alarm and sends nothing again."""
    alice_opens_1(rig)
    sense(rig, 1, True)
    rig.door(1, False)
    rig.advance(GRACE + 0.1)
    assert len(events(rig, "item.left_behind")) == 1 and not alarms(rig)
    again = restart(rig, {1: True})
    again.advance(GRACE + 0.1)
    assert alarms(again) == {("item_left_behind", 1)}
    assert len(events(again, "item.left_behind")) == 1


def test_an_item_where_staff_last_unloaded_is_unexpected_not_left_behind(rig):
    """The compartment's last holds left with staff (unloaded), not a
    patron: an item found there at a restart does not belong."""
    rig.place("h1", ALICE_CARD, 1)
    rig.controller.call(lambda locker: locker.confirm_removed(1, "anna"))
    again = restart(rig, {1: True})
    again.advance(GRACE + 0.1)
    assert alarms(again) == {("unexpected_item", 1)}
    assert "item.left_behind" not in again.outbox_types()
