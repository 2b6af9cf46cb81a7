"""Pickup without the card: the pickup number and the PIN (issue 12, item 3).

A real store and the local verifier on a fake clock: the floor before a
failure is shown, the lockout and the kiosk-wide throttle are all driven by
moving the clock, never by sleeping.
"""

import logging

import pytest

from bibbox.locker.domain import patrons
from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.messages import (KeypadDigits, KioskAction, PickupCodeEntered,
                                           PickupNumberEntered, PinEntered)
from bibbox.locker.domain.model import Hold, HoldState, Item
from bibbox.locker.domain.pickup_numbers import (ANSWER_FLOOR_S, THROTTLE_FAILURES,
                                                 THROTTLE_PAUSE_S)
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, BOB_CARD, BOB_PIN, Rig, SilentCentral

ON = {"pickup_number_with_pin": True}


def number_rig(tmp_path, clock=None, **verifier):
    rig = Rig(tmp_path, clock=clock, verifier={**ON, **verifier})
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.add_patron(BOB_CARD, BOB_PIN)
    return rig


@pytest.fixture
def rig(tmp_path):
    return number_rig(tmp_path)


def place(rig, hold_id, card, compartment, number, days=7, titles=("Book",)):
    hold = Hold(id=hold_id, patron_hash=rig.patron_hash(card),
                items=tuple(Item(f"{hold_id}-{i}", t) for i, t in enumerate(titles)),
                pickup_number=number, deadline=rig.clock.wall() + days * 86400,
                state=HoldState.READY, compartment=compartment)
    return rig.locker.place_hold(hold)


def start(rig):
    rig.controller.post(KioskAction("pickup_number"))
    rig.run()


def by_number(rig, number, pin):
    """The whole way in: the button, the number, the PIN."""
    start(rig)
    assert rig.kiosk["screen"] == "number"
    rig.controller.post(PickupNumberEntered(number))
    rig.run()
    assert rig.kiosk["screen"] == "pin"
    rig.pin(pin)


def failure_shown(rig):
    """Past the floor: the failure is on the screen."""
    rig.advance(ANSWER_FLOOR_S)
    return rig.kiosk


def what_the_patron_sees(view):
    return {k: v for k, v in view.items() if k != "version"}


class Recording:
    """A verifier that records what it was asked and accepts."""

    def __init__(self, outcome=patrons.ACCEPTED):
        self.calls, self.outcome = [], outcome

    def verify(self, patron_hash, pin, done, *, card=None):
        self.calls.append((patron_hash, card))
        done(patrons.Verdict(self.outcome, default_due="2030-01-01"))


# ---------------------------------------------------------------- the option
def test_off_by_default_no_button_and_the_action_is_refused(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    assert rig.cfg.verifier.pickup_number_with_pin is False
    assert rig.kiosk["number_entry"] is False
    with pytest.raises(CommandError, match="not turned on"):
        rig.locker.kiosk_action(KioskAction("pickup_number"))
    rig.controller.post(KioskAction("pickup_number"))
    rig.controller.post(PickupNumberEntered("1234"))
    rig.run()
    assert rig.kiosk["screen"] == "idle" and rig.locker.session is None


def test_on_the_idle_screen_offers_it(rig):
    assert (rig.kiosk["number_entry"], rig.kiosk["number_paused_s"]) == (True, 0)


# ---------------------------------------------------------------- accepted
def test_number_and_pin_open_the_patrons_ready_holds_like_the_card(rig):
    rig.locker.verifier = recording = Recording()
    place(rig, "h1", ALICE_CARD, 1, "4711", titles=("Kaffe",))
    place(rig, "h2", ALICE_CARD, 3, "5812", titles=("Te",))
    place(rig, "h3", BOB_CARD, 2, "6913")
    by_number(rig, "4711", ALICE_PIN)
    assert recording.calls == [(rig.patron_hash(ALICE_CARD), None)]   # no card
    assert rig.relays.hints == [(1, 3)]            # the lock bus was told, as for a card
    assert rig.kiosk["screen"] == "opening" and rig.kiosk["by_number"] is True
    assert rig.fire_all() == [1, 3]                # both of Alice's, as the card opens
    for n in (1, 3):
        rig.door(n, True)
        rig.door(n, False)
    assert rig.kiosk["screen"] == "receipt"
    assert sorted(i["title"] for i in rig.kiosk["items"]) == ["Kaffe", "Te"]
    assert rig.kiosk["reopen"] is False            # no card to show again
    assert rig.store.hold("h3").state is HoldState.READY


def test_the_number_is_matched_without_case_or_spaces(rig):
    place(rig, "h1", ALICE_CARD, 1, "ab12")
    by_number(rig, " AB12 ", ALICE_PIN)
    assert rig.fire_all() == [1]


def test_a_hardware_keypad_types_the_number_too(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    start(rig)
    rig.controller.post(KeypadDigits(3))
    rig.run()
    assert (rig.kiosk["screen"], rig.kiosk["keypad_digits"]) == ("number", 3)
    rig.controller.post(PinEntered("4711"))        # the pad's OK: the number
    rig.run()
    assert (rig.kiosk["screen"], rig.kiosk["keypad_digits"]) == ("pin", 0)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]


def test_a_badly_formed_number_is_refused_without_counting(rig):
    start(rig)
    for text in ("12 34", "", "x" * 17, "١٢٣٤"):
        rig.controller.post(PickupNumberEntered(text))
        rig.run()
        assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("number", "number_format")
    assert "pickup.denied" not in rig.outbox_types()


# ---------------------------------------------------------------- one message for every failure
def test_unknown_number_and_wrong_pin_look_the_same(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    seen = {}
    for case, number, pin in (("unknown", "9999", ALICE_PIN), ("wrong_pin", "4711", "0000")):
        before = rig.kiosk["version"]
        by_number(rig, number, pin)
        verifying = rig.kiosk                      # not sooner than the floor
        rig.advance(ANSWER_FLOOR_S - 0.1)
        assert rig.kiosk == verifying              # nothing new was published
        shown = failure_shown(rig)
        seen[case] = (what_the_patron_sees(verifying), what_the_patron_sees(shown),
                      shown["version"] - before)
        rig.controller.post(KioskAction("cancel"))
        rig.run()
    assert seen["unknown"] == seen["wrong_pin"]
    verifying, unknown, _ = seen["unknown"]
    assert verifying["screen"] == "verifying"
    assert (unknown["screen"], unknown["message"]) == ("number", "number_or_pin_wrong")
    wrong_pin = seen["wrong_pin"][1]
    assert wrong_pin["tries_left"] is None         # tries left would tell the number was right
    assert rig.relays.pulses == []
    denied = [p for t, p in rig.outbox() if t == "pickup.denied"]
    assert ['"detail": "unknown_number"' in p for p in denied] == [True, False]
    assert all('"reason": "number_or_pin_wrong"' in p and "4711" not in p and "9999" not in p
               for p in denied)


def test_an_unknown_patron_looks_the_same(rig):
    place(rig, "h1", "NOBODY01", 1, "4711")        # not on the local patron list
    by_number(rig, "4711", "1234")
    view = failure_shown(rig)
    assert (view["screen"], view["message"]) == ("number", "number_or_pin_wrong")
    assert rig.store.pin_failures(rig.patron_hash("NOBODY01")) == (0, None)
    assert '"detail": "unknown_patron"' in rig.outbox()[-1][1]


def test_a_number_two_patrons_share_is_refused_not_guessed(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    place(rig, "h2", BOB_CARD, 2, "4711")
    rig.locker.verifier = recording = Recording()
    by_number(rig, "4711", ALICE_PIN)
    assert recording.calls == []
    assert failure_shown(rig)["message"] == "number_or_pin_wrong"


def test_a_slow_verifier_answer_is_shown_at_once(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    answers = []
    rig.locker.verifier = type("Slow", (), {"verify": lambda self, h, p, done, card=None:
                                            answers.append(done)})()
    by_number(rig, "4711", "0000")
    rig.advance(ANSWER_FLOOR_S + 1)                # the floor passed while asking
    assert rig.kiosk["screen"] == "verifying"
    answers[0](patrons.Verdict(patrons.WRONG_PIN))
    rig.run()
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("number", "number_or_pin_wrong")


# ---------------------------------------------------------------- the lockout is the card's
def test_wrong_pins_count_toward_the_same_lockout_as_the_card(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    alice = rig.patron_hash(ALICE_CARD)
    by_number(rig, "4711", "0000")
    failure_shown(rig)
    assert rig.store.pin_failures(alice) == (1, None)
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    rig.card(ALICE_CARD)
    rig.pin("0001")
    assert rig.kiosk["tries_left"] == 1            # the card path counts on
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    by_number(rig, "4711", "0002")                 # the third: blocked
    assert failure_shown(rig)["message"] == "number_or_pin_wrong"
    assert rig.store.pin_failures(alice)[1] is not None
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    rig.card(ALICE_CARD)                           # blocked by card too
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("denied", "card_blocked")


def test_a_locked_out_patron_is_refused_by_number_without_asking(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    for pin in ("0000", "0001", "0002"):           # blocked by the card path
        rig.card(ALICE_CARD)
        rig.pin(pin)
    assert rig.kiosk["message"] == "card_blocked"
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    rig.locker.verifier = recording = Recording()
    by_number(rig, "4711", ALICE_PIN)              # the right PIN, still locked out
    assert recording.calls == []
    assert failure_shown(rig)["message"] == "number_or_pin_wrong"
    assert rig.relays.pulses == []
    rig.controller.post(KioskAction("cancel"))
    rig.advance(rig.cfg.timing.pin_block_minutes * 60)
    by_number(rig, "4711", ALICE_PIN)
    assert rig.fire_all() == [1]
    assert rig.store.pin_failures(rig.patron_hash(ALICE_CARD)) == (0, None)


# ---------------------------------------------------------------- the kiosk-wide throttle
def test_failures_pause_the_number_entry_and_the_pause_survives_a_restart(tmp_path):
    rig = number_rig(tmp_path)
    place(rig, "h1", ALICE_CARD, 1, "4711")
    for i in range(THROTTLE_FAILURES - 1):
        by_number(rig, f"90{i:02d}", "1234")
        assert failure_shown(rig)["screen"] == "number"
        rig.controller.post(KioskAction("cancel"))
        rig.run()
    by_number(rig, "4711", "0000")                 # a wrong PIN counts as well
    view = failure_shown(rig)
    assert (view["screen"], view["message"]) == ("denied", "number_paused")
    assert view["minutes_blocked"] == THROTTLE_PAUSE_S // 60
    rig.advance(30)                                # the denial times out
    assert rig.kiosk["screen"] == "idle"
    assert 0 < rig.kiosk["number_paused_s"] <= THROTTLE_PAUSE_S
    start(rig)                                     # pressed anyway: still paused
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("denied", "number_paused")
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    rig.card(ALICE_CARD)                           # the card path is not paused
    rig.pin(ALICE_PIN)
    assert rig.kiosk["screen"] == "opening"
    rig.fire_all()
    rig.door(1, True)
    rig.door(1, False)
    rig.store.close()

    again = Rig(tmp_path, clock=rig.clock, verifier=ON)   # a restart
    again.start()
    start(again)
    assert again.kiosk["message"] == "number_paused"
    again.controller.post(KioskAction("cancel"))
    again.advance(THROTTLE_PAUSE_S)
    start(again)
    assert again.kiosk["screen"] == "number"


def test_old_failures_leave_the_window(rig):
    for i in range(THROTTLE_FAILURES * 2):
        by_number(rig, f"90{i:02d}", "1234")
        assert failure_shown(rig)["screen"] == "number"
        rig.controller.post(KioskAction("cancel"))
        rig.advance(150)                           # four failures in any ten minutes


# ---------------------------------------------------------------- expired, not ready, offline
def test_an_expired_hold_is_told_after_the_pin_as_by_card(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711", days=1)
    rig.advance(2 * 86400)
    by_number(rig, "4711", ALICE_PIN)
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("denied", "only_expired")
    assert rig.relays.pulses == []


def test_the_number_of_a_hold_not_in_the_locker_is_unknown(rig):
    rig.locker.announce_hold("h9", rig.patron_hash(ALICE_CARD), [{"barcode": "9"}],
                             pickup_number="4711")
    rig.locker.verifier = recording = Recording()
    by_number(rig, "4711", ALICE_PIN)
    assert recording.calls == []
    assert failure_shown(rig)["message"] == "number_or_pin_wrong"


def test_the_offline_pickup_code_by_card_is_unchanged(tmp_path):
    rig = number_rig(tmp_path, kind="central", offline_policy="pickup-code")
    rig.locker.verifier = SilentCentral()
    h1 = place(rig, "h1", ALICE_CARD, 1, "4711")
    rig.locker.holds["h1"] = h1.with_(pickup_code_hash=rig.hasher.pickup_code("h1", "7Q4K"))
    rig.card(ALICE_CARD)
    rig.pin("0000")
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("code", "central_offline")
    rig.controller.post(PickupCodeEntered("WRONG1"))
    rig.run()
    assert (rig.kiosk["message"], rig.kiosk["tries_left"]) == ("wrong_code", 2)
    rig.controller.post(PickupCodeEntered("7q4k"))
    rig.run()
    assert rig.fire_all() == [1]


# ---------------------------------------------------------------- sessions side by side
def test_a_card_during_a_number_session(rig):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    start(rig)
    rig.card(BOB_CARD)                             # on the number screen: the card takes over
    assert rig.kiosk["screen"] == "pin" and rig.kiosk["by_number"] is False
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    start(rig)
    rig.controller.post(PickupNumberEntered("4711"))
    rig.run()
    rig.card(ALICE_CARD)                           # on the PIN screen: a notice, nothing else
    assert (rig.kiosk["screen"], rig.kiosk["notice"]) == ("pin", "busy_other_card")
    assert rig.kiosk["by_number"] is True


def test_the_button_during_another_session_changes_nothing(rig):
    rig.card(ALICE_CARD)
    start(rig)
    assert (rig.kiosk["screen"], rig.kiosk["notice"]) == ("pin", "busy")


def test_cancel_and_extend_on_the_number_screen(rig):
    start(rig)
    rig.advance(rig.cfg.timing.pin_timeout_s - 5)
    rig.controller.post(KioskAction("extend"))
    rig.run()
    assert rig.kiosk["seconds_left"] == rig.cfg.timing.pin_timeout_s
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    assert rig.kiosk["screen"] == "idle"


def test_no_log_line_names_the_number(rig, caplog):
    place(rig, "h1", ALICE_CARD, 1, "4711")
    with caplog.at_level(logging.DEBUG):
        by_number(rig, "4711", "0000")
        failure_shown(rig)
        rig.controller.post(KioskAction("cancel"))
        by_number(rig, "8642", "0000")
        failure_shown(rig)
        rig.controller.post(KioskAction("cancel"))
        by_number(rig, "4711", ALICE_PIN)
    assert rig.kiosk["screen"] == "opening"
    text = caplog.text
    for secret in ("4711", "8642", ALICE_PIN, rig.patron_hash(ALICE_CARD)):
        assert secret not in text


def test_the_offline_pickup_code_never_follows_a_pickup_number(tmp_path):
    """The number and the code come in one message: together they are no
    proof, so a number whose PIN cannot be checked gets no code screen."""
    rig = number_rig(tmp_path, kind="central", offline_policy="pickup-code")
    rig.locker.verifier = SilentCentral()
    h1 = place(rig, "h1", ALICE_CARD, 1, "4711")
    rig.locker.holds["h1"] = h1.with_(pickup_code_hash=rig.hasher.pickup_code("h1", "7Q4K"))
    by_number(rig, "4711", "0000")
    rig.advance(ANSWER_FLOOR_S)
    assert rig.kiosk["screen"] != "code"
    rig.controller.post(PickupCodeEntered("7q4k"))
    rig.run()
    assert rig.fire_all() == []


def test_a_number_pickup_is_recorded_as_such(rig):
    import json
    place(rig, "h1", ALICE_CARD, 1, "4711")
    by_number(rig, "4711", ALICE_PIN)
    assert rig.fire_all() == [1]
    rig.door(1, True)
    rig.door(1, False)
    collected = [json.loads(p) for t, p in rig.outbox() if t == "hold.collected"]
    assert [c["verified_by"] for c in collected] == ["pickup_number"]
