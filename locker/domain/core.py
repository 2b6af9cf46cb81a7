"""The locker: its parts, composed into use cases.

:class:`Locker` owns every piece of runtime state through its parts --
:class:`~bibbox.locker.domain.sessions.Sessions` (the patron at the kiosk),
:class:`~bibbox.locker.domain.doors.Doors` (door tracks and openings),
:class:`~bibbox.locker.domain.alarms.Alarms` and
:class:`~bibbox.locker.domain.holds.Holds` -- and is only ever touched by one
thread (the controller thread, or a test calling it directly).  The parts
answer with results; the locker carries them out across parts.

Discipline: **one store unit per use case**.  A use case computes the new
state, writes it and its events in one unit, and only then updates memory
and fires relays, so a crash or a refused write at any point leaves the
database describing either the old or the new state.

It is driven by one handler per message (:mod:`bibbox.locker.domain.messages`,
dispatched by ``bibbox.locker.app.controller``) and by :meth:`Locker.on_time`;
it never sleeps and reads the clock only through the injected one.  Its
ports are in :mod:`bibbox.locker.domain.ports`.
"""

from __future__ import annotations

import logging

from bibbox.locker.domain import messages as msg
from bibbox.locker.domain.alarms import Alarms
from bibbox.locker.domain.clock import GuardedClock
from bibbox.locker.domain.commands import Commands
from bibbox.locker.domain.doors import DoorTrack, Doors
from bibbox.locker.domain.errors import CommandError, StoreError
from bibbox.locker.domain.hardware_events import HardwareEvents
from bibbox.locker.domain.holds import Holds
from bibbox.locker.domain.items import ItemChecks, ItemEvents
from bibbox.locker.domain.identity import PIN_LENGTH, pseudonym
from bibbox.locker.domain.model import AlarmKind, Compartment, DoorState, EventType, OpenPurpose
from bibbox.locker.domain.ports import (Clock, Hasher, Post, Publish, Relays, Sealer, Store,
                                        Verifier)
from bibbox.locker.domain.sessions import Reopen, Sessions
from bibbox.locker.domain import views

log = logging.getLogger("bibbox.locker")

STORAGE_RETRY_S = 10.0  # while the database refuses writes, try one this often
WALL_SEEN_KEY = "wall_seen"   # store meta: the newest wall time this locker saw


class Locker(HardwareEvents, ItemEvents):
    """The domain core.  See the module docstring for the contract."""

    def __init__(self, cfg, *, clock: Clock, store: Store, hasher: Hasher,
                 verifier: Verifier, relays: Relays,
                 post: Post = lambda message: None,
                 publish: Publish = lambda kind, value: None,
                 sealer: Sealer | None = None):
        self.cfg, self.store, self.hasher = cfg, store, hasher
        self.clock = clock if isinstance(clock, GuardedClock) else GuardedClock(clock)
        self.verifier, self.relays, self.post, self.publish = verifier, relays, post, publish
        self.timing = cfg.timing
        self.compartments: dict[int, Compartment] = {}
        self._sessions = Sessions(cfg, self.clock, store, hasher, self._dirty, sealer,
                                  active_holds=lambda: self._holds.holds.values())
        self._doors = Doors(self.clock, store, relays, cfg.timing)
        self._alarms = Alarms(store, self._dirty)
        self._holds = Holds(cfg, self.clock, store, self._dirty)
        self._commands = Commands(store, self.compartments, self._holds, self._doors,
                                  self._alarms, self._dirty)
        self.reader_online: bool | None = None
        self.library_online: bool | None = None     # None: no library system, or not asked yet
        self._loan_tickets = {}     # session id -> LoanTicket, while its doors are open
        self._recovery_due = False  # the disk took a write again: on_time finishes the rest
        self._items = ItemChecks()   # item sensors' reports and pending checks (items.py)
        self.next_expiry_check = 0.0
        self.kiosk_version = self.state_version = 0
        self._kiosk_dirty = self._state_dirty = True
        self._compartment_views = views.CompartmentViews()
        store.on_commit.append(self._after_commit)

    # -- the state, as readers know it ---------------------------------------------
    @property
    def holds(self):
        return self._holds.holds

    @property
    def openings(self):
        return self._doors.openings

    @property
    def doors(self):
        return self._doors.tracks

    @property
    def alarms(self):
        return self._alarms.active

    @property
    def session(self):
        return self._sessions.session

    @property
    def items_present(self):
        """Compartment -> item sensed, where a sensor has reported."""
        return self._items.present

    # -- start ---------------------------------------------------------------------------
    def start(self, door_readings: dict, item_readings: dict | None = None):
        """Load the store, reconcile it with the config and the doors (and
        item sensors, number -> present) as they are now, and close whatever
        a crash left half-done (a door found closed is checked against its
        item sensor as at run time).  Every relay is already off (the relay
        adapter starts them off).  A database that refuses writes (disk
        full, read-only) does not stop the start: what was read is served,
        the storage alarm is raised, no door opens."""
        known = {c.number: c for c in self.store.compartments()}
        changed = []
        for c in self.cfg.compartments:
            old = known.get(c.number)
            comp = Compartment(c.number, c.size, old.out_of_service if old else None)
            if old != comp:
                changed.append(comp)
            self.compartments[c.number] = comp
        self._items_read(item_readings or {})    # before the doors: see items.py
        self._holds.holds = {h.id: h for h in self.store.active_holds()}
        self._alarms.load(self.store.alarms())
        self.clock.remember_floor(self.store.meta(WALL_SEEN_KEY))
        self._doors.read(self.compartments, door_readings)
        self._guarded(self._write_start, changed)
        for opening in self.store.openings():
            self._guarded(self._recover_opening, opening)
        for alarm in list(self.alarms.values()):
            if alarm.kind in (AlarmKind.DOOR_FORCED, AlarmKind.DOOR_HELD_OPEN) and \
                    self._doors.state_of(alarm.compartment) is DoorState.CLOSED or \
                    alarm.kind in (AlarmKind.SENSOR_FLAPPING, AlarmKind.READER_OFFLINE):
                self._guarded(self._alarms.clear, alarm.kind, alarm.compartment)
        self._guarded(self._holds.expire_due)
        self._items_settled()
        self._dirty(kiosk=True, state=True)
        log.info("locker %s started: %d compartments, %d active holds, %d alarms",
                 self.cfg.locker.id, len(self.compartments), len(self.holds),
                 len(self.alarms))

    def _write_start(self, changed):
        with self.store.unit() as unit:
            for comp in changed:
                unit.put_compartment(comp)
            unit.set_meta(WALL_SEEN_KEY, repr(self.clock.wall()))

    def _remember_wall(self):
        with self.store.unit() as unit:
            unit.set_meta(WALL_SEEN_KEY, repr(self.clock.wall()))

    def _recover_opening(self, opening):
        """A door was being opened when we stopped.  Unseen opens are dropped
        (the holds stay ready, a loading hold waits again), in one unit; a
        door seen open and now closed completes -- a loading once its item
        sensor confirms it (items.py)."""
        door = self.doors.get(opening.compartment)
        if door is None or not opening.seen_open:
            with self.store.unit() as unit:
                back = self._holds.write_loading_aborted(unit, opening)
                self._doors.write_abandoned(unit, opening)
            self._holds.put(back)
            return
        self.openings[opening.compartment] = opening
        if door.state is DoorState.CLOSED:
            self._close_opening(opening.compartment, closed_while_down=True)

    def _guarded(self, fn, *args):
        try:
            return fn(*args)
        except StoreError as exc:
            self.storage_failed(exc)
            return None

    # -- storage ---------------------------------------------------------------------------
    def storage_failed(self, exc):
        """A write was refused (disk full, read-only database, I/O error).
        The unit rolled back, so nothing of that change was stored, and
        memory and relays only ever change after a commit: no door opens on
        it.  The storage alarm can only live in memory (the disk refuses it):
        it is published with the state, logged once, and cleared by the next
        write that succeeds (tried every ``STORAGE_RETRY_S``).  A patron who
        has not reached the doors yet is told the service is unavailable."""
        self.next_expiry_check = min(self.next_expiry_check,
                                     self.clock.monotonic() + STORAGE_RETRY_S)
        self._alarms.storage_failed(exc)
        self._sessions.storage_failed()

    def _after_commit(self, events):
        """A write succeeded: clear the storage alarm if it was up and report
        it after the fact; what the refused writes left undone is finished
        by the next :meth:`on_time`, once the handler whose commit this is
        has finished its own change."""
        if not self._alarms.is_raised(AlarmKind.STORAGE_ERROR):
            return
        try:
            self._alarms.storage_recovered()
            self._recovery_due = True
        except StoreError as exc:
            self.storage_failed(exc)
        except Exception:   # never let a commit's caller see this fail
            log.exception("clearing the storage alarm failed")

    def _finish_storage_recovery(self):
        """The disk takes writes again: write the openings started armed,
        store doors seen open, and finish door openings that completed or
        jammed meanwhile."""
        self._recovery_due = False
        try:
            if self._doors.unwritten:
                self._doors.write_unwritten()
            for number, opening in list(self.openings.items()):
                if number in self._doors.unstored_open:
                    self._doors.store_seen_open(number)
                if opening.seen_open and self._doors.state_of(number) is DoorState.CLOSED:
                    self._close_opening(number)
                elif opening.jammed:                  # its jam's write was refused
                    self._door_jammed(number)
        except StoreError as exc:
            self.storage_failed(exc)

    # -- time ---------------------------------------------------------------------------
    def next_deadline(self):
        """The monotonic time at which :meth:`on_time` has work, or None."""
        if self._recovery_due:
            return self.clock.monotonic()
        candidates = [self.next_expiry_check]
        if self.session:
            candidates.append(self._sessions.deadline())
        candidates += self._doors.deadlines(self._alarms.is_raised)
        items_due = self._items.next_due()
        if items_due is not None:
            candidates.append(items_due)
        return min(candidates)

    def on_time(self):
        """Run everything that is due now."""
        now = self.clock.monotonic()
        if self._recovery_due:
            self._finish_storage_recovery()
        self._sessions.time_passed(now)
        due = self._doors.due(now)
        for number in due.jammed:
            self._door_jammed(number)
        for raise_, kind, number in due.alarms:
            (self._alarms.raise_ if raise_ else self._alarms.clear)(kind, number)
        self._doors.forget_settled(now, self._alarms.is_raised)
        self._items_due(now)
        self._disarm_if_done()
        if now >= self.next_expiry_check:
            self.next_expiry_check = now + self.timing.expiry_check_s
            self._holds.expire_due()
            self._remember_wall()
        if self._recovery_due:        # a write above was the first the disk took again
            self._finish_storage_recovery()

    # -- the library system ------------------------------------------------------------
    def loan_settled(self, message: msg.LoanSettled):
        """The loan worker is done with a queued loan or check-in: the row
        goes (and with it the sealed identity) and its event is written, one
        unit; a refusal or a loan that waited too long raises the staff alarm;
        a due date reaches the receipt on the screen."""
        m = message
        data = {"hold_id": m.hold_id, "item": m.item, "kind": m.kind}
        alarm = None
        with self.store.unit() as unit:
            unit.settle_loan(m.loan_id)
            if m.outcome == "made":
                unit.event(EventType.LOAN_MADE, {**data, "due": m.due})
            elif m.outcome == "checked_in":
                unit.event(EventType.ITEM_CHECKED_IN, data)
            else:
                unit.event(EventType.LOAN_FAILED, {**data, "reason": m.outcome,
                                                   **({"message": m.reason} if m.reason else {})})
                unit.audit("library", "loan_failed", reason=m.outcome,
                           detail=f"{m.kind} of {m.item} (hold {m.hold_id})")
                alarm = self._alarms.write_raise(unit, AlarmKind.LOAN_FAILED, None)
        self._alarms.raised(alarm)
        if m.outcome == "made":
            self._sessions.loan_made(m.item, m.due)

    def library_online_changed(self, message: msg.LibraryOnline):
        """The library system became reachable or not: an event, the kiosk
        and the state say so."""
        if message.online == self.library_online:
            return
        first, self.library_online = self.library_online is None, message.online
        if not (first and message.online):
            with self.store.unit() as unit:
                unit.event(EventType.LIBRARY_STATUS, {"online": message.online})
            log.warning("the library system is %s", "reachable again" if message.online
                        else "unreachable")
        self._dirty(state=True, kiosk=True)

    def wake(self, message: msg.Wake):
        """Nothing to do but look at the clock again (see Controller.wake)."""

    # -- the patron ----------------------------------------------------------------------
    def card_read(self, message: msg.CardRead):
        """A card was read (reader or keypad)."""
        answer = self._sessions.card_read(
            self.hasher.patron(message.card),
            storage_down=self._alarms.is_raised(AlarmKind.STORAGE_ERROR), card=message.card)
        if isinstance(answer, Reopen):
            self._guarded(self._reopen_for_patron, answer)

    def pin_entered(self, message: msg.PinEntered):
        """OK with a PIN (card or pickup number): the check goes to the
        verifier, and the lock drivers are told which doors it may open."""
        check = self._sessions.pin_entered(message.text)
        if check is not None:
            numbers = self._hint_unlock(self.relays.expect_unlock, check.patron_hash)
            self.verifier.verify(check.patron_hash, check.pin, lambda verdict: self.post(
                msg.VerdictReceived(check.session_id, verdict)), card=check.card)
            self._arm(numbers, check.session_id, check.patron_hash)   # while it is checked

    def _hint_unlock(self, hint, patron_hash):
        """Call ``hint`` (the relays' ``expect_unlock`` or ``prepare_unlock``)
        with the compartments of the patron's ready holds (best effort: a
        library system's hold list may open others, and a denial opens
        none), and return them.  A hint only moves a lock bus's polls; a
        failing hint never stops the patron."""
        numbers = sorted({h.compartment for h in self._holds.ready_for(patron_hash)
                          if self._may_open(h.compartment)}) if patron_hash else []
        if numbers:
            try:
                hint(numbers)
            except Exception:
                log.warning("the unlock hint failed", exc_info=True)
        return numbers

    def _may_open(self, number):
        """A configured compartment in service with no opening under way."""
        return number in self.compartments and not self.compartments[number].out_of_service \
            and number not in self.openings

    def _pin_typed(self):
        """The PIN is typed in full, OK not pressed yet: hint the lock buses
        and write the patron's pickup ahead (ADR 10) -- not for a session
        that came by pickup number: no card, so the number's throttle
        decides at OK whether it may be checked (``pin_entered`` arms then)."""
        patron_hash = self._sessions.pin_typed()
        numbers = self._hint_unlock(self.relays.prepare_unlock, patron_hash)
        if numbers and not self._sessions.session.by_number:
            self._arm(numbers, self._sessions.session.id, patron_hash)

    def _arm(self, numbers, session_id, patron_hash):
        """Write ahead the pickup of ``numbers`` (see ``Doors.arm``); a disk
        that refuses raises the storage alarm, as the opening itself would."""
        if numbers:
            self._guarded(self._doors.arm, numbers, session_id, pseudonym(patron_hash))

    def _disarm_if_done(self):
        """Drop the armed rows once their session no longer checks a PIN."""
        if self._doors.armed and not self._sessions.checking_pin(
                next(iter(self._doors.armed.values()))):
            self._guarded(self._doors.disarm)

    def keypad_digits(self, message: msg.KeypadDigits):
        self._sessions.keypad_digits(message.count)
        if message.count == PIN_LENGTH:
            self._pin_typed()

    def kiosk_action(self, message: msg.KioskAction):
        """A kiosk button; ``pin_typed`` (the page's PIN is typed in full)
        hints the lock buses and arms the pickup, like a hardware keypad's
        last digit."""
        if message.action == "pin_typed":
            self._pin_typed()
            return
        self._sessions.kiosk_action(
            message.action, storage_down=self._alarms.is_raised(AlarmKind.STORAGE_ERROR))

    def pickup_number_entered(self, message: msg.PickupNumberEntered):
        """The patron typed a pickup number (see ``pickup_numbers``)."""
        self._sessions.number_entered(message.text)

    def verdict_received(self, message: msg.VerdictReceived):
        pickup = self._sessions.verdict_received(message.session_id, message.verdict,
                                                 self._holds.ready_for,
                                                 self._holds.has_expired,
                                                 self._holds.ready_with_items)
        if pickup is not None:
            self._open_for_patron(pickup)
            self._guarded(self._sessions.forget_pin_failures, pickup.patron_hash)  # off the PIN path

    def pickup_code_entered(self, message: msg.PickupCodeEntered):
        pickup = self._sessions.pickup_code(message.text, self._holds.ready_for)
        if pickup is not None:
            self._open_for_patron(pickup)

    def _open_for_patron(self, pickup):
        """Open the compartments of ``pickup`` that can open now: at once
        when all were armed for this session (their write-ahead is on disk;
        the full opening is written just after), else written ahead first."""
        to_open = self._sessions.plan_pickup(pickup, self._may_open)
        if not to_open:
            return
        patron = pseudonym(pickup.patron_hash)
        granted = {}
        for hold in pickup.holds:
            granted.setdefault(hold.compartment, []).append(hold.id)
        how = dict(session=pickup.session_id, actor=patron, reason="patron pickup",
                   holds=granted)
        armed = self._doors.armed_for(to_open, pickup.session_id)
        if armed:
            self._doors.start_armed(to_open, OpenPurpose.PICKUP, patron=patron, **how)
        else:
            self._doors.open(to_open, OpenPurpose.PICKUP, patron=patron, **how)
        ticket = self._sessions.loan_ticket(pickup.session_id)
        if ticket is not None:
            self._loan_tickets[pickup.session_id] = ticket
        self._sessions.pickup_started()
        if armed:
            self._guarded(self._doors.write_unwritten)

    def _reopen_for_patron(self, reopen):
        """The same card within the reopen window: open the patron's doors
        again, written ahead and audited like any opening."""
        to_open = [n for n in reopen.compartments if n in self.compartments and
                   not self.compartments[n].out_of_service and n not in self.openings]
        if not to_open:
            return
        patron = pseudonym(reopen.patron_hash)
        self._doors.open(to_open, OpenPurpose.PICKUP, session=reopen.session_id,
                         actor=patron, reason="patron reopen", patron=patron)
        self._sessions.reopen_started(to_open)

    # -- staff and central (see :mod:`bibbox.locker.domain.commands`) -------------------
    def holds_in(self, number):
        """Holds physically in a compartment (whatever their state)."""
        return self._holds.in_compartment(number)

    def announce_hold(self, hold_id, patron_hash, items, deadline=None, size=None,
                      pickup_number=None, pickup_code_hash=None, actor="central"):
        return self._commands.announce_hold(hold_id, patron_hash, items, deadline, size,
                                            pickup_number, pickup_code_hash, actor)

    def sync_announced(self, holds, actor="central"):
        return self._commands.sync_announced(holds, actor)

    def announced_holds(self):
        return self._commands.announced_holds()

    def cancel_hold(self, hold_id, actor, reason="cancelled"):
        return self._commands.cancel_hold(hold_id, actor, reason)

    def propose_compartment(self, size=None, patron_hash=None):
        return self._commands.propose_compartment(size, patron_hash)

    def load_hold(self, actor, *, hold_id=None, patron_hash=None, items=None, size=None,
                  compartment=None, pickup_days=None, pickup_number=None):
        result = self._commands.load_hold(
            actor, hold_id=hold_id, patron_hash=patron_hash, items=items, size=size,
            compartment=compartment, pickup_days=pickup_days, pickup_number=pickup_number)
        self._items.unconfirmed.pop(result["hold_id"], None)    # a new try
        return result

    def unload_list(self):
        return self._commands.unload_list()

    def open_compartment(self, number, actor, reason, purpose="staff"):
        return self._commands.open_compartment(number, actor, reason, purpose)

    def confirm_removed(self, number, actor, reason="unloaded"):
        result = self._commands.confirm_removed(number, actor, reason)
        self._watch_for_stray(number)     # the sensor still sees something inside
        return result

    def mark_collected(self, number, actor, reason):
        """Staff: a patron they opened ``number`` for took its ready holds
        (the door is closed again); see ``Holds.mark_collected_by_staff``."""
        if number in self._doors.openings or self._doors.state_of(number) is DoorState.OPEN:
            raise CommandError("door_open", f"close door {number} first")
        result = self._holds.mark_collected_by_staff(number, actor, reason)
        self._watch_for_stray(number)
        return result

    def move_hold(self, hold_id, to_number, actor):
        hold = self.holds.get(hold_id) if isinstance(hold_id, str) else None
        result = self._commands.move_hold(hold_id, to_number, actor)
        self._watch_for_stray(hold.compartment)   # the material left where it was?
        return result

    def set_out_of_service(self, number, reason, actor):
        return self._commands.set_out_of_service(number, reason, actor)

    def expire_now(self, actor="central"):
        return self._commands.expire_now(actor)

    def clear_alarm(self, kind, number, actor):
        return self._commands.clear_alarm(kind, number, actor)

    def place_hold(self, hold, actor="system"):
        return self._commands.place_hold(hold, actor)

    # -- snapshots ---------------------------------------------------------------------------
    def _dirty(self, kiosk=False, state=False):
        self._kiosk_dirty |= kiosk
        self._state_dirty |= state

    def flush(self):
        """Publish fresh snapshots for whatever changed since the last flush."""
        if self._kiosk_dirty:
            self._kiosk_dirty = False
            self.kiosk_version += 1
            self.publish("kiosk", self.kiosk_view())
        if self._state_dirty:
            self._state_dirty = False
            self.state_version += 1
            self.publish("state", self.state_view())

    def kiosk_view(self):
        """What the kiosk shows.  Holds no card number, PIN or patron hash."""
        return views.kiosk_view(version=self.kiosk_version, session=self.session,
                                notice=self._sessions.notice,
                                reader_online=self.reader_online,
                                locker_name=self.cfg.locker.name, now=self.clock.monotonic(),
                                library_online=self.library_online,
                                pickup_number=self._sessions.number_view())

    def compartment_state(self, number, holds=None):
        """free, loading, ready, opening, expired or out_of_service.
        ``holds`` (those inside, if the caller has them grouped) saves a scan."""
        if holds is None:
            holds = self.holds_in(number)
        return views.compartment_state(self.compartments[number], self.openings.get(number),
                                       holds)

    def state_view(self):
        """The locker as staff and central see it; no patron data."""
        return views.state_view(version=self.state_version, locker_id=self.cfg.locker.id,
                                compartments=self.compartments, holds=self.holds,
                                openings=self.openings, tracks=self.doors,
                                alarms=self.alarms, reader_online=self.reader_online,
                                default_track=DoorTrack(), tz=self._holds.tz,
                                library_online=self.library_online,
                                cache=self._compartment_views)
