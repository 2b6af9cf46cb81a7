"""A patron's pickup written ahead while the PIN is typed or checked (ADR 10).

Every test reads the database from a second connection at the moment a
relay is asked to pulse: only what is committed (on disk) shows there, so
"written ahead" means durable, not merely in the locker's transaction.
"""

import sqlite3

import pytest

from bibbox.locker.domain import patrons
from bibbox.locker.domain.doors import ARMED_REASON
from bibbox.locker.domain.messages import KeypadDigits, KioskAction
from bibbox.locker.domain.errors import StoreError
from bibbox.locker.domain.model import AlarmKind, HoldState
from tests.domain.test_one_transaction import RefusedOpening
from tests.domain.test_pickup_domain import rig  # noqa: F401  (a started rig, Alice and Bob)
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, BOB_CARD, BOB_PIN, Rig


class DiskAtPulse:
    """Wraps the rig's relays: at each pulse, the committed ``openings`` row
    of that compartment (as a dict, or None), read from a second connection."""

    def __init__(self, rig):
        self.conn = sqlite3.connect(rig.tmp_path / "bibbox.db")
        self.conn.row_factory = sqlite3.Row
        self.seen = []        # (compartment, row or None), in pulse order
        relays, pulse = rig.relays, rig.relays.pulse

        def pulse_seeing_disk(compartment, seconds):
            row = self.conn.execute("SELECT * FROM openings WHERE compartment=?",
                                    (compartment,)).fetchone()
            self.seen.append((compartment, dict(row) if row else None))
            pulse(compartment, seconds)
        relays.pulse = pulse_seeing_disk

    def rows(self):
        return {r["compartment"]: dict(r) for r in self.conn.execute("SELECT * FROM openings")}


def typed(rig, how="page"):
    rig.controller.post(KioskAction("pin_typed") if how == "page" else KeypadDigits(4))
    rig.run()


def audit_actions(rig, compartment):
    return [r["action"] for r in rig.store.audit_rows(compartment=compartment)]


@pytest.mark.parametrize("how", ["page", "keypad"])
def test_a_typed_pin_writes_the_pickup_ahead_and_the_accepted_pin_pulses_before_the_rest(
        rig, how):
    """The PIN typed in full commits an armed row for each of the patron's
    compartments (nothing opens, nothing is audited as an unlock); the
    accepted PIN pulses with that row on disk and writes the full opening
    -- its holds, its audit line -- right after the pulse."""
    rig.place("h1", ALICE_CARD, 1)
    rig.place("h3", ALICE_CARD, 3)
    rig.place("h2", BOB_CARD, 2)
    disk = DiskAtPulse(rig)
    rig.card(ALICE_CARD)
    typed(rig, how)
    armed = disk.rows()
    assert sorted(armed) == [1, 3]                      # Alice's, not Bob's
    assert {r["reason"] for r in armed.values()} == {ARMED_REASON}
    assert rig.locker.openings == {} and rig.relays.pulses == []
    assert "unlock" not in audit_actions(rig, 1)
    rig.pin(ALICE_PIN)
    assert [(n, row["reason"]) for n, row in disk.seen] == [(1, ARMED_REASON),
                                                           (3, ARMED_REASON)]
    after = disk.rows()
    assert {n: (r["reason"], r["holds"]) for n, r in after.items()} == {
        1: ("patron pickup", "h1"), 3: ("patron pickup", "h3")}
    assert audit_actions(rig, 1).count("unlock") == 1
    assert rig.fire_all() == [1, 3]
    for n in (1, 3):
        rig.door(n, True)
        rig.door(n, False)
    assert rig.store.hold("h1").state is HoldState.COLLECTED
    assert rig.store.hold("h3").state is HoldState.COLLECTED
    assert disk.rows() == {}


def test_ok_alone_arms_while_the_pin_is_checked(rig):
    """No ``pin_typed`` (an old page, a keypad that counts no digits): OK
    arms the pickup in its own turn, before any verdict can arrive."""
    rig.place("h1", ALICE_CARD, 1)
    disk = DiskAtPulse(rig)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert [(n, row and row["reason"]) for n, row in disk.seen] == [(1, ARMED_REASON)]
    assert disk.rows()[1]["reason"] == "patron pickup"


def test_every_pulse_finds_its_opening_on_disk(tmp_path):
    """Whatever the way in -- an armed pickup, the reopen window, staff --
    no relay pulses before a row for its compartment is committed."""
    rig = Rig(tmp_path, timing={"reopen_window_s": 60})
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.place("h1", ALICE_CARD, 1)
    rig.place("h2", ALICE_CARD, 2)
    disk = DiskAtPulse(rig)
    rig.card(ALICE_CARD)
    typed(rig)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1, 2]
    for n in (1, 2):
        rig.door(n, True)
        rig.door(n, False)
    assert rig.kiosk["reopen"] is True
    rig.card(ALICE_CARD)                                   # the reopen window
    assert rig.fire_all() == [1, 2]
    rig.controller.call(lambda l: l.open_compartment(4, "anna", "cleaning"))
    assert [(n, row["reason"]) for n, row in disk.seen] == [
        (1, ARMED_REASON), (2, ARMED_REASON), (1, "patron reopen"), (2, "patron reopen"),
        (4, "cleaning")]


class Listing:
    """A library system's verifier: accepts, and names ``holds`` (item
    barcodes) as the patron's holds."""

    def __init__(self, holds):
        self.holds = frozenset(holds)

    def verify(self, patron_hash, pin, done, *, card=None):
        done(patrons.Verdict(patrons.ACCEPTED, default_due="2030-01-01", holds=self.holds))


def test_a_hold_list_naming_a_compartment_not_armed_writes_it_ahead_first(rig):
    """The library system names a hold loaded for another card: its
    compartment was not armed, so the pickup is written before the pulse,
    and the armed row of the compartment not opened is dropped."""
    rig.locker.verifier = Listing({"hb-0"})
    rig.place("ha", ALICE_CARD, 1)
    rig.place("hb", BOB_CARD, 2)
    disk = DiskAtPulse(rig)
    rig.card(ALICE_CARD)
    typed(rig)
    assert sorted(disk.rows()) == [1]
    rig.pin(ALICE_PIN)
    assert [(n, row["reason"]) for n, row in disk.seen] == [(2, "patron pickup")]
    assert sorted(disk.rows()) == [2]


def test_a_wrong_pin_keeps_the_arm_and_cancel_drops_it(rig):
    rig.place("h1", ALICE_CARD, 1)
    disk = DiskAtPulse(rig)
    rig.card(ALICE_CARD)
    typed(rig)
    rig.pin("0000")
    assert rig.kiosk["message"] == "wrong_pin" and sorted(disk.rows()) == [1]
    typed(rig)                                  # the next attempt: nothing new to write
    assert sorted(disk.rows()) == [1]
    rig.controller.post(KioskAction("cancel"))
    rig.run()
    assert disk.rows() == {} and rig.locker._doors.armed == {}
    assert rig.relays.pulses == [] and "opening_abandoned" not in audit_actions(rig, 1)


@pytest.mark.parametrize("ending", ["timeout", "blocked", "other_patron"])
def test_an_arm_ends_with_its_session(rig, ending):
    rig.place("h1", ALICE_CARD, 1)
    rig.place("h2", BOB_CARD, 2)
    disk = DiskAtPulse(rig)
    rig.card(ALICE_CARD)
    typed(rig)
    if ending == "timeout":
        rig.advance(rig.cfg.timing.pin_timeout_s + 1)
    elif ending == "blocked":
        for _ in range(rig.cfg.timing.pin_tries):
            rig.pin("0000")
        assert rig.kiosk["message"] == "card_blocked"
    else:
        rig.controller.post(KioskAction("cancel"))
        rig.card(BOB_CARD)
        typed(rig)
        assert sorted(disk.rows()) == [2]           # Bob's arm replaced Alice's
        rig.pin(BOB_PIN)
        assert [n for n, _ in disk.seen] == [2]
        return
    assert disk.rows() == {} and rig.relays.pulses == []


def test_a_restart_with_an_armed_pickup_opens_nothing_and_says_so(tmp_path, rig):
    """Killed after the PIN was typed (or accepted: the pulse may have gone
    out): the restart drops the armed row like any opening never seen open,
    with an audit line; the hold stays ready."""
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    typed(rig)
    rig.store.close()                           # crash
    again = Rig(tmp_path, clock=rig.clock)
    again.start()
    assert again.store.openings() == [] and again.relays.pulses == []
    assert again.store.hold("h1").state is HoldState.READY
    abandoned = [r for r in again.store.audit_rows(compartment=1)
                 if r["action"] == "opening_abandoned"]
    assert [r["detail"] for r in abandoned] == [ARMED_REASON]


def pulsed_while_refused(rig, refusal):
    """Alice's hold h1 in compartment 1, her PIN typed (armed); then the
    disk refuses (``refusal.refuse``) and her PIN is accepted: 1 pulsed."""
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    typed(rig)
    refusal.refuse = True
    rig.pin(ALICE_PIN)
    assert rig.relays.pulses == [(1, rig.cfg.timing.pulse_s)]


def test_a_disk_that_refuses_the_arm_opens_nothing(rig, monkeypatch):
    disk = RefusedOpening(monkeypatch)
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    disk.refuse = True
    typed(rig)
    assert rig.kiosk["message"] == "service_unavailable"
    assert AlarmKind.STORAGE_ERROR.value in {a["alarm"] for a in rig.state["alarms"]}
    rig.pin(ALICE_PIN)
    assert rig.relays.pulses == [] and rig.locker.openings == {}


def test_a_disk_that_refuses_after_the_pulse_still_lets_the_patron_collect(rig, monkeypatch):
    """The door is already unlocking when the full opening cannot be
    written: the patron's pickup goes on, the storage alarm is raised, and
    the opening is stored once the door is seen open and the disk is back."""
    refusing = RefusedOpening(monkeypatch)
    pulsed_while_refused(rig, refusing)
    assert rig.kiosk["screen"] == "opening"
    assert AlarmKind.STORAGE_ERROR.value in {a["alarm"] for a in rig.state["alarms"]}
    assert "unlock" not in audit_actions(rig, 1)
    refusing.refuse = False
    assert rig.fire_all() == [1]                # its event is the first write taken
    assert AlarmKind.STORAGE_ERROR.value not in {a["alarm"] for a in rig.state["alarms"]}
    assert audit_actions(rig, 1).count("unlock") == 1      # written late, not lost
    assert rig.store.openings()[0].holds == ("h1",)
    rig.door(1, True)
    rig.door(1, False)
    assert rig.store.hold("h1").state is HoldState.COLLECTED
    assert rig.store.openings() == []


def test_a_wrong_pins_count_is_forgotten_after_the_pulse(rig):
    rig.place("h1", ALICE_CARD, 1)
    disk = DiskAtPulse(rig)
    failures = []
    pulse = rig.relays.pulse

    def pulse_seeing_failures(compartment, seconds):
        failures.append([tuple(r) for r in disk.conn.execute("SELECT count FROM pin_failures")])
        pulse(compartment, seconds)
    rig.relays.pulse = pulse_seeing_failures
    rig.card(ALICE_CARD)
    rig.pin("0000")
    rig.pin(ALICE_PIN)
    assert failures == [[(1,)]]                           # not yet reset at the pulse
    assert rig.store.pin_failures(rig.patron_hash(ALICE_CARD)) == (0, None)


def test_staff_opening_an_armed_compartment_keeps_its_own_row(rig):
    """Staff open the compartment while the patron types: the staff
    opening owns the row, and the patron's pickup waits for that door."""
    rig.place("h1", ALICE_CARD, 1)
    rig.place("h2", ALICE_CARD, 2)
    disk = DiskAtPulse(rig)
    rig.card(ALICE_CARD)
    typed(rig)
    rig.controller.call(lambda l: l.open_compartment(1, "anna", "check"))
    rig.pin(ALICE_PIN)
    rows = disk.rows()
    assert (rows[1]["purpose"], rows[2]["reason"]) == ("staff", "patron pickup")
    assert [n for n, row in disk.seen if row] == [1, 2]


class WholeDiskRefusal:
    """Makes every write unit of the rig's store fail as a full disk would, while set."""

    def __init__(self, rig, monkeypatch):
        import contextlib
        self.refuse = False
        unit = rig.store.unit

        @contextlib.contextmanager
        def refusing_unit():
            if self.refuse:
                raise StoreError("cannot write to the database: database or disk is full")
            with unit() as u:
                yield u
        monkeypatch.setattr(rig.store, "unit", refusing_unit)


def test_a_jam_while_the_disk_refuses_keeps_the_unlock_audit_line(rig, monkeypatch):
    """Pulsed armed, then every write refused -- the full opening's, the
    jam's: once the disk is back the unlock and the jam are audited and no
    armed row is left behind for a restart to misread."""
    from bibbox.locker.domain.core import STORAGE_RETRY_S
    from bibbox.locker.domain.doors import UNFIRED_S
    disk = WholeDiskRefusal(rig, monkeypatch)
    pulsed_while_refused(rig, disk)
    rig.advance(UNFIRED_S + 1)                 # never fired: a jam, its write refused too
    assert rig.locker.openings[1].jammed       # waits for the disk, not due again
    disk.refuse = False
    rig.advance(STORAGE_RETRY_S + 1)           # the retry's write is taken
    assert audit_actions(rig, 1).count("unlock") == 1
    assert audit_actions(rig, 1).count("door_jammed") == 1
    assert rig.store.openings() == [] and rig.locker.openings == {}


def test_the_first_write_after_a_refusal_finishes_an_opening_once(rig, monkeypatch):
    """The disk refuses while the door is seen open, and takes the write
    that completes it: the hold is collected once, with one event."""
    disk = WholeDiskRefusal(rig, monkeypatch)
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    typed(rig)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]
    disk.refuse = True
    rig.door(1, True)                           # seen open, not stored
    disk.refuse = False
    rig.door(1, False)                          # this write is the first taken
    rig.advance(1)
    assert rig.store.hold("h1").state is HoldState.COLLECTED
    assert rig.outbox_types().count("hold.collected") == 1
    assert rig.outbox_types().count("door.closed") == 1
    assert rig.store.openings() == [] and rig.locker.openings == {}


def test_a_session_by_pickup_number_arms_only_when_its_pin_may_be_checked(tmp_path):
    """No card: a page could walk button, number, ``pin_typed``, cancel
    for ever.  ``pin_typed`` only hints; OK arms once the number's
    throttle lets the PIN be checked, and the pickup still opens."""
    from bibbox.locker.domain.messages import PickupNumberEntered
    from tests.domain.test_pickup_number import number_rig, place, start
    rig = number_rig(tmp_path)
    place(rig, "h1", ALICE_CARD, 1, "4711")
    disk = DiskAtPulse(rig)
    for _ in range(3):
        start(rig)
        rig.controller.post(PickupNumberEntered("4711"))
        rig.run()
        typed(rig)
        assert disk.rows() == {}                     # nothing written for a typed PIN
        rig.controller.post(KioskAction("cancel"))
        rig.run()
    start(rig)
    rig.controller.post(PickupNumberEntered("4711"))
    rig.run()
    typed(rig)
    rig.pin(ALICE_PIN)
    assert [n for n, row in disk.seen if row] == [1]


def test_a_jam_the_disk_refused_is_written_and_alarmed_once_it_is_back(rig, monkeypatch):
    """The door never opens and the disk refuses the jam's write: the
    opening waits, not due again, and the jam is recorded (audit line,
    alarm, the hold ready again) by the first write the disk takes."""
    from bibbox.locker.domain.core import STORAGE_RETRY_S
    disk = WholeDiskRefusal(rig, monkeypatch)
    rig.place("h1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]
    disk.refuse = True
    rig.advance(rig.cfg.timing.door_open_timeout_s + 1)      # a jam; its write refused
    assert 1 in rig.locker.openings and rig.locker.openings[1].jammed
    disk.refuse = False
    rig.advance(STORAGE_RETRY_S + 1)
    assert audit_actions(rig, 1).count("door_jammed") == 1
    assert ("door_jammed", 1) in {(a["alarm"], a["compartment"]) for a in rig.state["alarms"]}
    assert rig.locker.openings == {} and rig.store.openings() == []
    assert rig.store.hold("h1").state is HoldState.READY
