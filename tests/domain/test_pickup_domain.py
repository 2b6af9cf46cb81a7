"""The patron pickup, alarms and restarts on a fake clock: no sleeps."""

import sqlite3

import pytest

from bibbox.locker.domain.model import HoldState
from bibbox.locker.domain.messages import (KeypadDigits, KioskAction, PickupCodeEntered,
                                            PinEntered, ReaderOnline)
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, BOB_CARD, BOB_PIN, Rig, SilentCentral


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    r.start()
    r.add_patron(ALICE_CARD, ALICE_PIN)
    r.add_patron(BOB_CARD, BOB_PIN)
    return r


def test_pickup_opens_exactly_the_patrons_compartments_and_collects(rig):
    rig.place("h1", ALICE_CARD, 1, titles=("Kaffe", "Te"))
    rig.place("h2", ALICE_CARD, 3)
    rig.place("h3", BOB_CARD, 2)
    rig.card(ALICE_CARD)
    assert rig.kiosk["screen"] == "pin"
    rig.pin(ALICE_PIN)
    assert rig.kiosk["screen"] == "opening"
    assert rig.fire_all() == [1, 3]
    assert [c["status"] for c in rig.kiosk["compartments"]] == ["unlocked", "unlocked"]
    rig.door(1, True)
    rig.door(3, True)
    rig.door(1, False)
    assert rig.store.hold("h1").state is HoldState.COLLECTED
    assert rig.store.hold("h2").state is HoldState.READY
    rig.door(3, False)
    assert rig.store.hold("h2").state is HoldState.COLLECTED
    assert rig.store.hold("h3").state is HoldState.READY
    assert rig.kiosk["screen"] == "receipt"
    titles = [i["title"] for i in rig.kiosk["items"]]
    assert sorted(titles) == ["Book", "Kaffe", "Te"]
    assert all(i["due"] for i in rig.kiosk["items"])
    assert rig.outbox_types().count("hold.collected") == 2
    assert not rig.locker.alarms


@pytest.mark.parametrize("setup, card, pin, message", [
    (lambda r: None, "9999999999", "1111", "unknown_card"),
    (lambda r: None, ALICE_CARD, ALICE_PIN, "nothing_here"),
    (lambda r: r.place("h1", ALICE_CARD, 1, days=1), ALICE_CARD, ALICE_PIN, "only_expired"),
])
def test_each_denial_has_its_own_message(rig, setup, card, pin, message):
    setup(rig)
    if message == "only_expired":
        rig.advance(2 * 86400)
    if card == "9999999999":
        pass
    rig.card(card)
    rig.pin(pin)
    assert rig.kiosk["screen"] == "denied"
    assert rig.kiosk["message"] == message
    assert rig.relays.pulses == []
    assert "pickup.denied" in rig.outbox_types()


def test_blocked_patron_is_denied_with_reason(rig):
    rig.add_patron("LOST0001", "4321", block="lost_card")
    rig.card("LOST0001")
    rig.pin("4321")
    assert rig.kiosk["message"] == "card_lost"       # a lost card gets its own message
    assert rig.relays.pulses == []
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    rig.add_patron("FEES0001", "4321", block="fees")
    rig.card("FEES0001")
    rig.pin("4321")
    assert rig.kiosk["message"] == "patron_blocked"  # fees: no amount on an outdoor screen
    assert rig.relays.pulses == []


def test_three_wrong_pins_block_the_card_and_survive_restart(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin("0000")
    assert (rig.kiosk["message"], rig.kiosk["tries_left"]) == ("wrong_pin", 2)
    rig.pin("0001")
    assert rig.kiosk["tries_left"] == 1
    rig.store.close()
    # restart: the count of two failures survives
    rig2 = Rig(tmp_path, clock=rig.clock)
    rig2.start()
    rig2.card(ALICE_CARD)
    rig2.pin("0002")
    assert rig2.kiosk["message"] == "card_blocked"
    rig2.advance(20)
    rig2.card(ALICE_CARD)
    assert rig2.kiosk["screen"] == "denied" and rig2.kiosk["message"] == "card_blocked"
    rig2.advance(16 * 60)
    rig2.card(ALICE_CARD)
    rig2.pin(ALICE_PIN)
    assert rig2.kiosk["screen"] == "opening"


def test_pin_with_letters_is_refused_without_counting(rig):
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin("12a4")
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("pin", "pin_format")
    assert rig.store.pin_failures(rig.patron_hash(ALICE_CARD)) == (0, None)


def test_double_tapped_ok_verifies_once(rig):
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.controller.post(PinEntered(ALICE_PIN))
    rig.controller.post(PinEntered(ALICE_PIN))
    rig.run()
    rig.run()
    assert rig.fire_all() == [1]


def test_other_card_during_session_changes_nothing(rig):
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.card(BOB_CARD)
    assert rig.kiosk["notice"] == "busy_other_card"
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]


def test_pin_timeout_returns_to_idle(rig):
    rig.card(ALICE_CARD)
    rig.advance(rig.cfg.timing.pin_timeout_s + 1)
    assert rig.kiosk["screen"] == "idle"


def test_jammed_door_raises_alarm_and_hold_stays_ready(rig):
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    rig.fire_all()
    rig.advance(rig.cfg.timing.door_open_timeout_s + 0.1)
    assert [a["alarm"] for a in rig.state["alarms"]] == ["door_jammed"]
    assert rig.store.hold("h1").state is HoldState.READY
    assert rig.kiosk["compartments"][0]["status"] == "jammed"
    assert rig.outbox_types().count("alarm.raised") == 1
    rig.advance(100)
    assert rig.outbox_types().count("alarm.raised") == 1   # raised once


def test_an_unlock_the_lock_never_confirms_ends_as_a_jam(rig):
    """A board that never confirmed the unlock (or a bus unplugged: the
    driver drops it rather than send it late) must not leave the opening,
    and so the compartment, stuck for ever."""
    from bibbox.locker.domain.doors import UNFIRED_S
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.relays.pulses == [(1, rig.cfg.timing.pulse_s)]     # asked, never fired
    rig.advance(rig.cfg.timing.door_open_timeout_s + 1)
    assert 1 in rig.locker.openings                                # a slow queue is not a jam
    rig.advance(UNFIRED_S)
    assert 1 not in rig.locker.openings
    assert [a["alarm"] for a in rig.state["alarms"]] == ["door_jammed"]
    assert rig.store.hold("h1").state is HoldState.READY


def test_forced_door_and_held_open_alarms_raise_once_and_clear(rig):
    rig.door(2, True)
    assert [a["alarm"] for a in rig.state["alarms"]] == ["door_forced"]
    rig.advance(rig.cfg.timing.door_held_open_s + 1)
    assert sorted(a["alarm"] for a in rig.state["alarms"]) == ["door_forced", "door_held_open"]
    rig.advance(600)
    rig.door(2, False)
    assert [a["alarm"] for a in rig.state["alarms"]] == ["door_forced"]  # settling
    rig.advance(3)
    assert rig.state["alarms"] == []
    types = rig.outbox_types()
    assert types.count("alarm.raised") == 2 and types.count("alarm.cleared") == 2


def test_flapping_sensor_raises_one_alarm_and_clears_when_quiet(rig):
    for i in range(30):
        rig.door(4, i % 2 == 0)
        rig.advance(0.05)
    kinds = [a["alarm"] for a in rig.state["alarms"]]
    assert "sensor_flapping" in kinds
    rig.door(4, False)
    rig.advance(rig.cfg.timing.flap_window_s + 1)
    assert "sensor_flapping" not in [a["alarm"] for a in rig.state["alarms"]]
    assert rig.outbox_types().count("alarm.raised") == 2   # forced once, flapping once


def test_reader_offline_alarm(rig):
    rig.controller.post(ReaderOnline(False))
    rig.controller.post(ReaderOnline(False))
    rig.run()
    assert [a["alarm"] for a in rig.state["alarms"]] == ["reader_offline"]
    rig.controller.post(ReaderOnline(True))
    rig.run()
    assert rig.state["alarms"] == []


def test_restart_mid_session_collects_nothing_unopened(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.place("h1", ALICE_CARD, 1)
    rig.place("h2", ALICE_CARD, 2)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    rig.fire_all()
    rig.door(2, True)          # door 2 seen open, door 1 never opened
    rig.store.close()          # crash
    rig2 = Rig(tmp_path, clock=rig.clock)
    rig2.start(doors={1: "closed", 2: "closed", 3: "closed", 4: "closed"})
    assert rig2.store.hold("h1").state is HoldState.READY
    assert rig2.store.hold("h2").state is HoldState.COLLECTED   # opened, then closed while down
    assert rig2.store.openings() == []
    assert rig2.kiosk["screen"] == "idle"


def test_expired_hold_is_reported_and_not_opened(rig):
    rig.place("h1", ALICE_CARD, 1, days=1)
    rig.advance(86400 + rig.cfg.timing.expiry_check_s + 1)
    assert rig.store.hold("h1").state is HoldState.EXPIRED
    assert "hold.expired" in rig.outbox_types()
    assert rig.state["compartments"][0]["state"] == "expired"


def test_database_holds_no_card_number_or_pin(rig, tmp_path):
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin("5555")
    rig.pin(ALICE_PIN)
    rig.fire_all()
    rig.door(1, True)
    rig.door(1, False)
    rig.store.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for secret in (ALICE_CARD, BOB_CARD, ALICE_PIN, BOB_PIN, "5555"):
        assert secret.encode() not in blob


def test_unit_rolls_back_state_and_event_together(rig):
    before = rig.store.outbox_depth()
    with pytest.raises(RuntimeError):
        with rig.store.unit() as unit:
            unit.event("hold.ready", {"x": 1})
            raise RuntimeError("crash between writes")
    assert rig.store.outbox_depth() == before


def test_corrupt_database_is_a_clear_error(tmp_path):
    from bibbox.locker.domain.errors import StoreError
    from bibbox.locker.domain.clock import FakeClock
    from bibbox.locker.store import Store
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="unusable"):
        Store(bad, clock=FakeClock())


# -- staff and central commands ------------------------------------------------

def test_loading_makes_a_hold_ready_only_after_the_door_closed(rig):
    result = rig.controller.call(lambda l: l.load_hold(
        "anna", patron_hash=rig.patron_hash(ALICE_CARD),
        items=[{"barcode": "111", "title": "Bog"}, {"barcode": "222", "title": "Film"}],
        size="M"))
    assert rig.relays.pulses == [(result["compartment"], rig.cfg.timing.pulse_s)]
    assert rig.cfg.compartment(result["compartment"]).size == "M"
    n = result["compartment"]
    assert rig.state["compartments"][n - 1]["state"] == "loading"
    rig.fire_all()
    rig.door(n, True)
    assert rig.store.hold(result["hold_id"]).state is HoldState.LOADING
    rig.door(n, False)
    assert rig.store.hold(result["hold_id"]).state is HoldState.READY
    assert "hold.ready" in rig.outbox_types()
    # and the patron can now collect it
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [n]


def test_loading_into_a_jammed_door_returns_the_hold_for_another_door(rig):
    rig.controller.call(lambda l: l.announce_hold(
        "C-1", rig.patron_hash(BOB_CARD), [{"barcode": "9", "title": "X"}], size="S"))
    first = rig.controller.call(lambda l: l.load_hold("anna", hold_id="C-1"))
    rig.fire_all()
    rig.advance(rig.cfg.timing.door_open_timeout_s + 0.5)
    assert rig.store.hold("C-1").state is HoldState.ANNOUNCED
    assert [a["alarm"] for a in rig.state["alarms"]] == ["door_jammed"]
    second = rig.controller.call(lambda l: l.load_hold("anna", hold_id="C-1"))
    assert second["compartment"] != first["compartment"]


def test_commands_refuse_bad_input_and_change_nothing(rig):
    from bibbox.locker.domain.errors import CommandError
    before = rig.outbox_types()
    bad_calls = [
        lambda l: l.open_compartment(99, "anna", "help"),
        lambda l: l.open_compartment(1, "anna", ""),
        lambda l: l.announce_hold("x", "not-a-hash", [{"barcode": "1"}]),
        lambda l: l.announce_hold("x", "a" * 64, []),
        lambda l: l.set_out_of_service("1", "broken", "anna"),
        lambda l: l.cancel_hold("nope", "anna"),
        lambda l: l.load_hold("anna", patron_hash="a" * 64, items=[{"barcode": "1"}], size="XL"),
    ]
    for call in bad_calls:
        with pytest.raises(CommandError):
            rig.controller.call(call)
    assert rig.outbox_types() == before
    assert rig.relays.pulses == []


def test_expired_hold_is_unloaded_and_the_compartment_is_free(rig):
    rig.place("h1", ALICE_CARD, 2, days=1)
    rig.advance(86400 + rig.cfg.timing.expiry_check_s + 1)
    todo = rig.controller.call(lambda l: l.unload_list())
    assert [(t["compartment"], t["why"]) for t in todo] == [(2, "expired")]
    rig.controller.call(lambda l: l.open_compartment(2, "anna", "unload expired", "unloading"))
    rig.fire_all()
    rig.door(2, True)
    from bibbox.locker.domain.errors import CommandError
    with pytest.raises(CommandError, match="close door"):
        rig.controller.call(lambda l: l.confirm_removed(2, "anna"))
    rig.door(2, False)
    assert rig.controller.call(lambda l: l.confirm_removed(2, "anna"))["removed"] == ["h1"]
    assert rig.state["compartments"][1]["state"] == "free"
    assert rig.store.hold("h1").state is HoldState.REMOVED
    audit = [r["action"] for r in rig.store.audit_rows()]
    assert "removed" in audit and "unlock" in audit


def test_announce_is_idempotent_and_sync_cancels_missing(rig):
    h = rig.patron_hash(ALICE_CARD)
    first = rig.controller.call(lambda l: l.announce_hold("A1", h, [{"barcode": "1"}]))
    again = rig.controller.call(lambda l: l.announce_hold("A1", h, [{"barcode": "1"}]))
    assert first["changed"] and not again["changed"]
    result = rig.controller.call(lambda l: l.sync_announced(
        [{"hold_id": "A2", "patron_hash": h, "items": [{"barcode": "2"}]}], "central"))
    assert result == {"added": 1, "cancelled": 1, "announced": 1}
    assert [a["hold_id"] for a in rig.controller.call(lambda l: l.announced_holds())] == ["A2"]


def test_out_of_service_compartment_is_not_opened_for_pickup(rig):
    rig.place("h1", ALICE_CARD, 1)
    rig.controller.call(lambda l: l.set_out_of_service(1, "broken hinge", "anna"))
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.kiosk["message"] == "compartment_unavailable"
    assert rig.relays.pulses == []


def test_offline_pickup_code_policy_opens_only_matching_holds(tmp_path):
    rig = Rig(tmp_path, verifier={"kind": "central", "offline_policy": "pickup-code"})
    rig.locker.verifier = SilentCentral()
    rig.start()
    h1 = rig.place("h1", ALICE_CARD, 1)
    rig.place("h2", ALICE_CARD, 2)
    code_hash = rig.hasher.pickup_code("h1", "7Q4K")
    rig.locker.holds["h1"] = h1.with_(pickup_code_hash=code_hash)
    rig.card(ALICE_CARD)
    rig.pin("0000")
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("code", "central_offline")
    rig.controller.post(PickupCodeEntered("WRONG1"))
    rig.run()
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("code", "wrong_code")
    rig.controller.post(PickupCodeEntered("7q4k"))
    rig.run()
    assert rig.fire_all() == [1]


def test_offline_deny_policy_is_the_default(tmp_path):
    rig = Rig(tmp_path)
    rig.locker.verifier = SilentCentral()
    rig.start()
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin("1234")
    assert rig.kiosk["message"] == "service_unavailable"
    assert rig.relays.pulses == []


def test_loading_refuses_a_door_that_is_already_open(rig):
    from bibbox.locker.domain.errors import CommandError
    rig.door(3, True)
    with pytest.raises(CommandError, match="open"):
        rig.controller.call(lambda l: l.load_hold(
            "anna", patron_hash=rig.patron_hash(ALICE_CARD), items=[{"barcode": "1"}],
            compartment=3))
    assert rig.relays.pulses == []


def test_receipt_leaves_out_items_behind_a_jammed_door(rig):
    rig.place("h1", ALICE_CARD, 1, titles=("Kaffe",))
    rig.place("h2", ALICE_CARD, 2, titles=("Te",))
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    rig.fire_all()
    rig.door(1, True)
    rig.door(1, False)
    rig.advance(rig.cfg.timing.door_open_timeout_s + 0.5)   # door 2 never opens
    assert rig.kiosk["screen"] == "receipt"
    assert [i["title"] for i in rig.kiosk["items"]] == ["Kaffe"]
    assert rig.store.hold("h2").state is HoldState.READY


def test_code_screen_can_be_cancelled_and_ignores_other_cards(tmp_path):
    rig = Rig(tmp_path, verifier={"kind": "central", "offline_policy": "pickup-code"})
    rig.locker.verifier = SilentCentral()
    rig.start()
    h1 = rig.place("h1", ALICE_CARD, 1)
    rig.locker.holds["h1"] = h1.with_(pickup_code_hash=rig.hasher.pickup_code("h1", "X1"))
    rig.card(ALICE_CARD)
    rig.pin("0000")
    assert rig.kiosk["screen"] == "code"
    rig.card(BOB_CARD)
    assert rig.kiosk["screen"] == "code" and rig.kiosk["notice"] == "busy_other_card"
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    assert rig.kiosk["screen"] == "idle"


# -- the unlock hint (issue 11: the lock bus keeps its wire free for the unlock) --
class HintsAtVerify:
    """A verifier that notes the relay hints sent before it was asked, and
    leaves the check unanswered."""

    def __init__(self, relays):
        self.relays, self.hints_then = relays, None

    def verify(self, patron_hash, pin, done, *, card=None):
        self.hints_then = list(self.relays.hints)


def test_the_pin_check_hints_at_the_patrons_compartments_before_it_goes_out(rig):
    rig.place("h1", ALICE_CARD, 3)
    rig.place("h2", ALICE_CARD, 1)
    rig.place("h3", BOB_CARD, 2)
    rig.card(ALICE_CARD)
    assert rig.relays.hints == []                  # a card alone hints nothing
    rig.locker.verifier = verifier = HintsAtVerify(rig.relays)
    rig.pin(ALICE_PIN)
    assert verifier.hints_then == [(1, 3)]         # Alice's, not Bob's
    assert rig.relays.pulses == []                 # a hint opens nothing


def test_a_hint_for_a_wrong_pin_opens_nothing_and_no_holds_no_hint(rig):
    rig.place("h1", ALICE_CARD, 2)
    rig.card(ALICE_CARD)
    rig.pin("0000")
    assert rig.kiosk["message"] == "wrong_pin"
    assert (rig.relays.hints, rig.relays.pulses) == ([(2,)], [])
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    rig.card(BOB_CARD)                             # Bob has nothing here
    rig.pin(BOB_PIN)
    assert rig.relays.hints == [(2,)]


def test_a_pin_typed_in_full_prepares_the_patrons_doors_on_the_page_and_the_keypad(rig):
    """The kiosk page's ``pin_typed`` and a hardware keypad's last digit both
    hint the patron's compartments, only on the PIN screen; nothing opens."""
    rig.place("h1", ALICE_CARD, 3)
    rig.place("h2", BOB_CARD, 2)
    rig.controller.post(KioskAction("pin_typed"))        # no patron at the kiosk
    rig.controller.post(KeypadDigits(4))
    rig.run()
    rig.card(ALICE_CARD)
    for count in (1, 2, 3):
        rig.controller.post(KeypadDigits(count))
    rig.run()
    assert rig.relays.prepared == []                    # not typed in full yet
    rig.controller.post(KeypadDigits(4))
    for _ in range(3):                                  # erased and typed again, or spam
        rig.controller.post(KioskAction("pin_typed"))
    rig.run()
    assert rig.relays.prepared == [(3,)]                # Alice's, not Bob's; once an attempt
    assert (rig.kiosk["screen"], rig.relays.hints, rig.relays.pulses) == ("pin", [], [])
    rig.pin("0000")
    assert rig.kiosk["message"] == "wrong_pin"
    rig.controller.post(KioskAction("pin_typed"))        # the next attempt hints again
    rig.run()
    assert rig.relays.prepared == [(3,), (3,)]
    rig.pin(ALICE_PIN)
    rig.controller.post(KioskAction("pin_typed"))        # verifying, then opening: no hint
    rig.run()
    assert rig.relays.prepared == [(3,), (3,)] and rig.fire_all() == [3]


def test_a_failing_hint_does_not_stop_the_pickup(rig):
    def broken(compartments):
        raise RuntimeError("bus gone")
    rig.relays.expect_unlock = broken
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]
