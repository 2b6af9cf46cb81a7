"""A door left open and a door closed too early (issue 12, item 2), on a
fake clock: the close countdown, the receipt as soon as the doors are shut
(or when the countdown ends), and the reopen window."""

from __future__ import annotations

import pytest

from bibbox.locker.domain.messages import KioskAction
from bibbox.locker.domain.model import HoldState
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, BOB_CARD, BOB_PIN, Rig


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path, timing={"close_door_s": 40, "reopen_window_s": 60,
                              "kiosk_idle_s": 45})
    r.start()
    r.add_patron(ALICE_CARD, ALICE_PIN)
    r.add_patron(BOB_CARD, BOB_PIN)
    r.place("h1", ALICE_CARD, 1, titles=("Kaffe",))
    r.place("h2", ALICE_CARD, 3, titles=("Te",))
    return r


def open_alices_doors(rig):
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1, 3]
    rig.door(1, True)
    rig.door(3, True)


def statuses(rig):
    return {c["number"]: c["status"] for c in rig.kiosk["compartments"]}


def test_an_open_door_counts_down_and_then_shows_the_receipt(rig):
    open_alices_doors(rig)
    assert rig.kiosk["screen"] == "opening"
    assert rig.kiosk["seconds_left"] == 40                 # close_door_s from the opening
    rig.advance(39)
    assert rig.kiosk["screen"] == "opening"
    rig.door(1, False)
    rig.advance(1.5)                                       # the countdown ends, 3 still open
    assert rig.kiosk["screen"] == "receipt"                # never idle in silence
    assert statuses(rig) == {1: "closed", 3: "open"}
    assert [i["title"] for i in rig.kiosk["items"]] == ["Kaffe", "Te"]
    assert rig.kiosk["reopen"] is False                    # a door is still open
    rig.door(3, False)                                     # closed on the receipt
    assert statuses(rig) == {1: "closed", 3: "closed"}
    assert rig.store.hold("h2").state is HoldState.COLLECTED
    assert rig.kiosk["screen"] == "receipt" and rig.kiosk["reopen"] is True


def test_the_receipt_appears_as_soon_as_the_doors_are_closed(rig):
    open_alices_doors(rig)
    rig.door(1, False)
    rig.door(3, False)
    view = rig.kiosk
    assert view["screen"] == "receipt"
    assert set(statuses(rig).values()) == {"closed"}
    assert view["reopen"] is True
    assert view["seconds_left"] == 60                      # max(kiosk_idle_s, the window)


def test_the_same_card_within_the_window_opens_the_doors_again(rig):
    open_alices_doors(rig)
    rig.door(1, False)
    rig.door(3, False)
    assert rig.store.hold("h1").state is HoldState.COLLECTED
    rig.advance(30)
    rig.card(ALICE_CARD)                                   # no PIN asked
    assert rig.kiosk["screen"] == "opening"
    assert statuses(rig) == {1: "queued", 3: "queued"}
    assert rig.store.openings() and {o.compartment for o in rig.store.openings()} == {1, 3}
    assert rig.fire_all() == [1, 3]                        # written ahead, then pulsed
    reopened = rig.store.audit_rows(action="unlock")
    assert sorted(r["compartment"] for r in reopened
                  if r["reason"] == "patron reopen") == [1, 3]
    rig.door(1, True)
    rig.door(1, False)
    rig.advance(2)
    assert rig.kiosk["screen"] == "opening"                # door 3 never opened: jam timer
    rig.advance(rig.cfg.timing.door_open_timeout_s)
    assert rig.kiosk["screen"] == "receipt"
    assert [i["title"] for i in rig.kiosk["items"]] == ["Kaffe", "Te"]
    assert rig.outbox_types().count("hold.collected") == 2  # collected once, not again


def test_after_the_window_the_card_starts_over(rig):
    open_alices_doors(rig)
    rig.door(1, False)
    rig.door(3, False)
    rig.advance(60.5)
    assert rig.kiosk["screen"] == "idle"                   # the receipt timed out with it
    rig.card(ALICE_CARD)
    assert rig.kiosk["screen"] == "pin"
    assert rig.relays.pulses == []


def collected_once(tmp_path, **timing):
    """Alice took her one hold from door 1 (opened and closed) on a locker
    with ``timing``; the rig, on the receipt."""
    rig = Rig(tmp_path, timing=timing)
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    rig.fire_all()
    rig.door(1, True)
    rig.door(1, False)
    return rig


def test_the_window_closes_before_the_receipt_does(tmp_path):
    rig = collected_once(tmp_path, reopen_window_s=20, kiosk_idle_s=45)
    assert rig.kiosk["reopen"] is True
    rig.advance(20.5)
    assert rig.kiosk["screen"] == "receipt" and rig.kiosk["reopen"] is False
    rig.card(ALICE_CARD)                                   # too late: a new session
    assert rig.kiosk["screen"] == "pin"


def test_another_card_on_the_receipt_is_the_next_patron(rig):
    open_alices_doors(rig)
    rig.door(1, False)
    rig.door(3, False)
    rig.card(BOB_CARD)
    assert rig.kiosk["screen"] == "pin"
    assert rig.relays.pulses == []


def test_done_ends_the_window(rig):
    open_alices_doors(rig)
    rig.door(1, False)
    rig.door(3, False)
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    rig.card(ALICE_CARD)
    assert rig.kiosk["screen"] == "pin"


def test_a_window_of_zero_turns_reopening_off(tmp_path):
    rig = collected_once(tmp_path, reopen_window_s=0)
    assert rig.kiosk["reopen"] is False
    rig.card(ALICE_CARD)
    assert rig.kiosk["screen"] == "pin"
