"""The locker's state machine: patron sessions, doors, alarms, holds.

:class:`Locker` owns every piece of runtime state and is only ever touched by
one thread (the controller thread, or a test calling it directly).  It is
driven by ``on_*`` message handlers and by :meth:`Locker.on_time`; it never
sleeps and never reads the clock except through the injected one.

Discipline: each handler computes the new state, writes it and its events in
one store unit, and only then updates memory and fires relays, so a crash at
any point leaves the database describing either the old or the new state.

Ports (all injected):
- ``relays.pulse(compartment, seconds)``: energise a coil for a capped pulse;
  the adapter reports back with ``on_relay_fired`` / ``on_relay_released``.
- ``verifier.verify(patron_hash, pin, done)`` (see :mod:`locker.patrons`).
- ``post(name, *args)``: queue a message for this same locker (used for
  answers that come back from other threads).
- ``publish(snapshot_kind, value)``: hand a fresh snapshot to readers.
"""

from __future__ import annotations

import collections
import logging
import uuid
from dataclasses import dataclass, field

from bibbox.locker.domain import patrons
from bibbox.locker.domain.commands import CommandsMixin
from bibbox.locker.domain.errors import CardFormatError, CommandError, StoreError
from bibbox.locker.domain.identity import Pin, constant_time_equal, pseudonym
from bibbox.locker.domain.model import (Alarm, AlarmKind, Compartment, DoorState, EventType, Hold,
                    HoldState, Item, Opening, OpenPurpose)

log = logging.getLogger("bibbox.locker")

# Kiosk screens and messages: the kiosk page translates these codes.
SCREEN_IDLE, SCREEN_PIN, SCREEN_VERIFYING = "idle", "pin", "verifying"
SCREEN_OPENING, SCREEN_RECEIPT, SCREEN_DENIED = "opening", "receipt", "denied"
SCREEN_CODE = "code"   # central is offline: the pickup code from the patron's message
DENIED_SCREEN_S = 12.0
FORCED_SETTLE_S = 2.0   # a forced-door alarm clears once the door stays shut this long
STORAGE_RETRY_S = 10.0  # while the database refuses writes, try one this often
WALL_SEEN_KEY = "wall_seen"   # store meta: the newest wall time this locker saw


class GuardedClock:
    """The injected clock, with a wall time that never runs far backwards.

    Pulses, timeouts and alarms use ``monotonic()``, which never jumps.
    Deadlines use ``wall()``.  A Pi has no battery clock: after a power cut
    it boots with an old time (fake-hwclock) until NTP steps it forward, and
    a bad RTC can even set it years back.  So ``wall()`` keeps an anchor --
    the newest trusted wall time and the monotonic time it was read at --
    and, while the system clock reads more than ``TOLERANCE_S`` behind
    ``anchor + elapsed monotonic time``, returns that estimate instead: holds
    then expire when their deadline has really passed, and deadlines given
    meanwhile are not in the past once NTP puts the clock right.  Forward
    jumps are trusted (NTP after a power cut) and logged.  The locker
    persists the newest wall time it saw (store meta ``wall_seen``) and
    restores it at start (:meth:`remember_floor`): real time cannot be
    before it.

    Limit: a clock set wrongly *forward* (a bad RTC in 2040) is believed, as
    nothing here can tell it from a long power cut."""

    TOLERANCE_S = 120.0
    JUMP_LOG_S = 300.0

    def __init__(self, clock):
        self.inner = clock
        self._anchor = None      # (wall, monotonic) of the newest trusted reading
        self.behind_s = 0.0      # how far the system clock is behind, while it is

    def monotonic(self):
        return self.inner.monotonic()

    def remember_floor(self, wall_seen):
        """Real time is not before ``wall_seen`` (a previous run saw it)."""
        try:
            floor = float(wall_seen)
        except (TypeError, ValueError):
            return
        raw, mono = self.inner.wall(), self.inner.monotonic()
        if self._anchor is not None and floor <= self._estimate(mono):
            return
        if raw >= floor - self.TOLERANCE_S:
            self._anchor = (raw, mono)      # later than last seen: downtime, not a jump
        else:
            self._anchor = (floor, mono)
            self.wall()                     # says that the clock is behind

    def _estimate(self, mono):
        wall, at = self._anchor
        return wall + (mono - at)

    def wall(self):
        raw, mono = self.inner.wall(), self.inner.monotonic()
        if self._anchor is None:
            self._anchor = (raw, mono)
            return raw
        estimate = self._estimate(mono)
        if raw >= estimate - self.TOLERANCE_S:
            if self.behind_s:
                log.warning("wall clock is right again (it was %.0f s behind)", self.behind_s)
                self.behind_s = 0.0
            elif raw > estimate + self.JUMP_LOG_S:
                log.warning("wall clock jumped forward by %.0f s (NTP after a power cut?)",
                            raw - estimate)
            self._anchor = (raw, mono)
            return raw
        if not self.behind_s:
            log.warning("wall clock is %.0f s behind the newest time this locker saw; "
                        "deadlines use that time plus the time elapsed since, until the "
                        "clock is set (NTP)", estimate - raw)
        self.behind_s = estimate - raw
        return estimate


@dataclass
class DoorTrack:
    """What we know of one door right now (not persisted: re-read at start)."""
    state: DoorState = DoorState.UNKNOWN
    energised: bool = False
    opened_mono: float | None = None
    edges: collections.deque = field(default_factory=lambda: collections.deque(maxlen=2000))


@dataclass
class PatronSession:
    """One patron at the kiosk, from card to receipt."""
    id: str
    patron_hash: str
    screen: str
    deadline: float                    # monotonic; the screen's timeout
    message: str = ""
    tries_left: int | None = None
    compartments: dict = field(default_factory=dict)   # number -> status
    items: list = field(default_factory=list)          # Item, for the receipt
    verdict: patrons.Verdict | None = None
    minutes_blocked: int | None = None
    keypad_digits: int = 0
    item_compartment: dict = field(default_factory=dict)   # barcode -> compartment


class Locker(CommandsMixin):
    """The domain core.  See the module docstring for the contract."""

    def __init__(self, cfg, *, clock, store, hasher, verifier, relays,
                 post=lambda *a: None, publish=lambda kind, value: None):
        self.cfg, self.store = cfg, store
        self.clock = clock if isinstance(clock, GuardedClock) else GuardedClock(clock)
        self.hasher, self.verifier, self.relays = hasher, verifier, relays
        self.post, self.publish = post, publish
        self.timing = cfg.timing
        self.compartments: dict[int, Compartment] = {}
        self.holds: dict[str, Hold] = {}
        self.openings: dict[int, Opening] = {}
        self.alarms: dict[str, Alarm] = {}
        self.doors: dict[int, DoorTrack] = {}
        self.session: PatronSession | None = None
        self.notice = ""                  # a transient kiosk notice code
        self.reader_online: bool | None = None
        self.next_expiry_check = 0.0
        self.kiosk_version = 0
        self.state_version = 0
        self._kiosk_dirty = self._state_dirty = True
        self._storage_error = ""
        self._unstored_open = set()   # doors seen open while the database refused it
        if isinstance(getattr(store, "on_commit", None), list):
            store.on_commit.append(self._after_commit)

    # ------------------------------------------------------------------ start
    def start(self, door_readings: dict):
        """Load the store, reconcile it with the config and the doors as they
        are now, and close whatever a crash left half-done.  Every relay is
        already off (the relay adapter starts them off).  A database that
        refuses writes (disk full, read-only) does not stop the start: what
        was read is served, the storage alarm is raised, no door opens."""
        known = {c.number: c for c in self.store.compartments()}
        changed = []
        for c in self.cfg.compartments:
            old = known.get(c.number)
            comp = Compartment(c.number, c.size, old.out_of_service if old else None)
            if old != comp:
                changed.append(comp)
            self.compartments[c.number] = comp
        self.holds = {h.id: h for h in self.store.active_holds()}
        self.alarms = {}
        for row in self.store.alarms():
            alarm = Alarm(AlarmKind(row["kind"]), row["compartment"])
            self.alarms[alarm.key] = alarm
        self.clock.remember_floor(self.store.meta(WALL_SEEN_KEY))
        now = self.clock.monotonic()
        for number in self.compartments:
            state = DoorState(door_readings.get(number, "unknown"))
            self.doors[number] = DoorTrack(state=state,
                                           opened_mono=now if state is DoorState.OPEN else None)
        self._guarded(self._write_start, changed)
        for opening in self.store.openings():
            self._guarded(self._recover_opening, opening)
        for key, alarm in list(self.alarms.items()):
            door = self.doors.get(alarm.compartment)
            if alarm.kind in (AlarmKind.DOOR_FORCED, AlarmKind.DOOR_HELD_OPEN) \
                    and door is not None and door.state is DoorState.CLOSED:
                self._guarded(self._clear_alarm, alarm.kind, alarm.compartment)
            elif alarm.kind in (AlarmKind.SENSOR_FLAPPING, AlarmKind.READER_OFFLINE):
                self._guarded(self._clear_alarm, alarm.kind, alarm.compartment)
        self._guarded(self._expire_holds)
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

    def _guarded(self, fn, *args):
        try:
            return fn(*args)
        except StoreError as exc:
            self.storage_failed(exc)
            return None

    # ------------------------------------------------------------ storage
    def storage_failed(self, exc):
        """A write was refused (disk full, read-only database, I/O error).
        The unit rolled back, so nothing of that change was stored, and
        memory and relays only ever change after a commit: no door opens on
        it.  The storage alarm can only live in memory (the disk refuses it):
        it is published with the state, logged once, and cleared by the next
        write that succeeds (tried every ``STORAGE_RETRY_S``).  A patron who
        has not reached the doors yet is told the service is unavailable."""
        alarm = Alarm(AlarmKind.STORAGE_ERROR, None)
        now = self.clock.monotonic()
        self.next_expiry_check = min(self.next_expiry_check, now + STORAGE_RETRY_S)
        if alarm.key not in self.alarms:
            self.alarms[alarm.key] = alarm
            self._storage_error = str(exc)
            log.critical("ALARM raised: storage_error: %s; nothing of that change was "
                         "stored and no door opens until the database accepts writes "
                         "again (disk full? read-only?)", exc)
            self._dirty(state=True, kiosk=True)
        else:
            log.debug("database write refused again: %s", exc)
        s = self.session
        if s is not None and s.screen not in (SCREEN_OPENING, SCREEN_RECEIPT, SCREEN_DENIED):
            self._storage_deny(s)

    def _storage_deny(self, s):
        s.screen, s.message, s.tries_left = SCREEN_DENIED, "service_unavailable", None
        s.compartments, s.items = {}, []
        s.deadline = self.clock.monotonic() + DENIED_SCREEN_S
        self._dirty(kiosk=True)

    def _after_commit(self, events):
        """A write succeeded: clear the storage alarm if it was up, report it
        after the fact, and finish door openings that completed meanwhile."""
        key = Alarm(AlarmKind.STORAGE_ERROR, None).key
        if key not in self.alarms:
            return
        try:
            del self.alarms[key]
            log.warning("alarm cleared: storage_error (the database accepts writes again)")
            self._dirty(state=True, kiosk=True)
            with self.store.unit() as unit:
                for type_ in (EventType.ALARM_RAISED, EventType.ALARM_CLEARED):
                    unit.event(type_, {"alarm": AlarmKind.STORAGE_ERROR.value,
                                       "compartment": None})
                unit.audit("system", "alarm_raised", reason=AlarmKind.STORAGE_ERROR.value,
                           detail=self._storage_error[:200])
                unit.audit("system", "alarm_cleared", reason=AlarmKind.STORAGE_ERROR.value)
            for number, opening in list(self.openings.items()):
                if number in self._unstored_open:
                    self._store_seen_open(number, opening)
                door = self.doors.get(number)
                if opening.seen_open and door is not None and door.state is DoorState.CLOSED:
                    self._complete_opening(number)
        except StoreError as exc:
            self.storage_failed(exc)
        except Exception:   # never let a commit's caller see this fail
            log.exception("clearing the storage alarm failed")

    def _recover_opening(self, opening: Opening):
        """A door was being opened when we stopped.  Unseen opens are dropped
        (the holds stay ready); a door seen open and now closed completes."""
        door = self.doors.get(opening.compartment)
        if door is None or not opening.seen_open:
            if opening.purpose is OpenPurpose.LOADING:
                self._abort_loading(opening)
            with self.store.unit() as unit:
                unit.drop_opening(opening.compartment)
                unit.audit("system", "opening_abandoned", compartment=opening.compartment,
                           reason="restart before the door was seen open")
            return
        self.openings[opening.compartment] = opening
        if door.state is DoorState.CLOSED:
            self._complete_opening(opening.compartment, closed_while_down=True)

    # ------------------------------------------------------------ time
    def next_deadline(self):
        """The monotonic time at which :meth:`on_time` has work, or None."""
        candidates = [self.next_expiry_check]
        if self.session:
            candidates.append(self.session.deadline)
        t = self.timing
        for number, opening in self.openings.items():
            if opening.fired_mono is not None and not opening.seen_open and not opening.jammed:
                candidates.append(opening.fired_mono + t.door_open_timeout_s)
        for number, door in self.doors.items():
            if door.state is DoorState.OPEN and door.opened_mono is not None and \
                    Alarm(AlarmKind.DOOR_HELD_OPEN, number).key not in self.alarms:
                candidates.append(door.opened_mono + t.door_held_open_s)
            if door.edges and Alarm(AlarmKind.SENSOR_FLAPPING, number).key in self.alarms:
                candidates.append(door.edges[-1] + t.flap_window_s)
            if door.state is DoorState.CLOSED and door.edges and \
                    Alarm(AlarmKind.DOOR_FORCED, number).key in self.alarms:
                candidates.append(door.edges[-1] + FORCED_SETTLE_S)
        return min(candidates)

    def on_time(self):
        """Run everything that is due now."""
        now = self.clock.monotonic()
        t = self.timing
        if self.session and now >= self.session.deadline:
            self._end_session("timeout")
        for number, opening in list(self.openings.items()):
            if opening.fired_mono is not None and not opening.seen_open and \
                    not opening.jammed and now >= opening.fired_mono + t.door_open_timeout_s:
                self._door_jammed(number)
        for number, door in self.doors.items():
            if door.state is DoorState.OPEN and door.opened_mono is not None and \
                    now >= door.opened_mono + t.door_held_open_s:
                self._raise_alarm(AlarmKind.DOOR_HELD_OPEN, number)
            if door.edges and now >= door.edges[-1] + t.flap_window_s:
                self._clear_alarm(AlarmKind.SENSOR_FLAPPING, number)
            if door.state is DoorState.CLOSED and (
                    not door.edges or now >= door.edges[-1] + FORCED_SETTLE_S):
                self._clear_alarm(AlarmKind.DOOR_FORCED, number)
        if now >= self.next_expiry_check:
            self.next_expiry_check = now + t.expiry_check_s
            self._expire_holds()
            self._remember_wall()

    def _expire_holds(self):
        wall = self.clock.wall()
        due = [h for h in self.holds.values()
               if h.state is HoldState.READY and h.expired_at(wall)]
        if not due:
            return
        with self.store.unit() as unit:
            for hold in due:
                unit.put_hold(hold.with_(state=HoldState.EXPIRED))
                unit.event(EventType.HOLD_EXPIRED, {
                    "hold_id": hold.id, "compartment": hold.compartment,
                    "deadline": hold.deadline})
        for hold in due:
            self.holds[hold.id] = hold.with_(state=HoldState.EXPIRED)
            log.info("hold %s in compartment %s expired", hold.id, hold.compartment)
        self._dirty(state=True)

    def on_tick(self):
        """Nothing to do but look at the clock again (see Controller.wake)."""

    # ------------------------------------------------------------ patron
    def on_card(self, card):
        """A card was read (reader or keypad).  ``card`` is a CardNumber."""
        patron_hash = self.hasher.patron(card)
        now = self.clock.monotonic()
        s = self.session
        if s and s.screen in (SCREEN_VERIFYING, SCREEN_OPENING):
            return self._notify("busy")
        if s and s.screen in (SCREEN_PIN, SCREEN_CODE) and s.patron_hash != patron_hash:
            return self._notify("busy_other_card")
        if s and s.screen == SCREEN_CODE:
            return  # the same card again while the code is typed: keep going
        if Alarm(AlarmKind.STORAGE_ERROR, None).key in self.alarms:
            self.session = PatronSession(uuid.uuid4().hex, patron_hash, SCREEN_DENIED, now)
            return self._storage_deny(self.session)   # nothing could be recorded
        count, blocked_until = self.store.pin_failures(patron_hash)
        if blocked_until is not None and blocked_until > self.clock.wall():
            minutes = int((blocked_until - self.clock.wall()) // 60) + 1
            self.session = PatronSession(uuid.uuid4().hex, patron_hash, SCREEN_DENIED,
                                         now + DENIED_SCREEN_S, message="card_blocked",
                                         minutes_blocked=minutes)
            self._record_denial("card_blocked")
            return self._dirty(kiosk=True)
        self.session = PatronSession(uuid.uuid4().hex, patron_hash, SCREEN_PIN,
                                     now + self.timing.pin_timeout_s)
        self.notice = ""
        self._dirty(kiosk=True)

    def on_pin(self, text):
        """The patron pressed OK with ``text`` on the PIN pad."""
        s = self.session
        if s is None or s.screen != SCREEN_PIN:
            return  # a double-tapped OK or a PIN with no card: nothing to do
        try:
            pin = Pin.parse(text)
        except CardFormatError:
            s.message = "pin_format"
            return self._dirty(kiosk=True)
        s.screen, s.message, s.keypad_digits = SCREEN_VERIFYING, "", 0
        s.deadline = self.clock.monotonic() + self.cfg.verifier.timeout_s + 2.0
        session_id = s.id
        self._dirty(kiosk=True)
        self.verifier.verify(s.patron_hash, pin,
                             lambda verdict: self.post("verdict", session_id, verdict))

    def on_keypad(self, count):
        """A physical PIN pad has ``count`` digits typed (the kiosk shows dots)."""
        s = self.session
        if s is not None and s.screen == SCREEN_PIN:
            s.keypad_digits = int(count)
            s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
            self._dirty(kiosk=True)

    def on_kiosk(self, action):
        """Kiosk buttons: ``cancel`` (back to idle) or ``extend`` (more time)."""
        s = self.session
        if s is None:
            return
        if action == "cancel":
            if s.screen in (SCREEN_PIN, SCREEN_CODE, SCREEN_RECEIPT, SCREEN_DENIED):
                self._end_session("cancel")
        elif action == "extend":
            s.deadline = self.clock.monotonic() + (
                self.timing.pin_timeout_s if s.screen in (SCREEN_PIN, SCREEN_CODE)
                else self.timing.kiosk_idle_s)
            self._dirty(kiosk=True)
        else:
            raise CommandError("unknown_action", f"unknown kiosk action {action!r}")

    def on_verdict(self, session_id, verdict: patrons.Verdict):
        s = self.session
        if s is None or s.id != session_id or s.screen != SCREEN_VERIFYING:
            return  # the session timed out or was cancelled meanwhile
        if verdict.outcome == patrons.ACCEPTED:
            return self._accepted(s, verdict)
        if verdict.outcome == patrons.WRONG_PIN:
            return self._wrong_pin(s)
        if verdict.outcome == patrons.UNAVAILABLE and \
                self.cfg.verifier.offline_policy == "pickup-code" and any(
                    h.pickup_code_hash for h in self._ready_holds(s.patron_hash)):
            s.screen, s.message = SCREEN_CODE, "central_offline"
            s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
            return self._dirty(kiosk=True)
        code = {patrons.BLOCKED: "patron_blocked", patrons.UNKNOWN: "unknown_card",
                patrons.UNAVAILABLE: "service_unavailable"}.get(verdict.outcome,
                                                                 "service_unavailable")
        self._deny(s, code, reason=verdict.reason if code == "patron_blocked" else "")

    def on_pickup_code(self, text):
        """Offline policy ``pickup-code``: the patron typed the pickup code
        from their message.  Opens only holds whose code hash matches; a
        wrong code counts like a wrong PIN."""
        s = self.session
        if s is None or s.screen != SCREEN_CODE:
            return
        if not isinstance(text, str) or not text.strip().isalnum() or len(text) > 16:
            s.message = "code_format"
            return self._dirty(kiosk=True)
        code = text.strip().upper()
        matching = [h for h in self._ready_holds(s.patron_hash) if h.pickup_code_hash and
                    constant_time_equal(h.pickup_code_hash,
                                        self.hasher.pickup_code(h.id, code))]
        if not matching:
            self._wrong_pin(s)
            if s.screen == SCREEN_PIN:
                s.screen, s.message = SCREEN_CODE, "wrong_code"
            return
        self._open_for_patron(s, matching, patrons.Verdict(patrons.ACCEPTED,
                                                           reason="pickup_code"))

    def _ready_holds(self, patron_hash):
        wall = self.clock.wall()
        return [h for h in self.holds.values() if h.patron_hash == patron_hash and
                h.state is HoldState.READY and not h.expired_at(wall) and
                h.compartment is not None]

    def _wrong_pin(self, s):
        count, _ = self.store.pin_failures(s.patron_hash)
        count += 1
        tries = self.timing.pin_tries
        blocked_until = None
        if count >= tries:
            blocked_until = self.clock.wall() + self.timing.pin_block_minutes * 60
        with self.store.unit() as unit:
            unit.set_pin_failures(s.patron_hash, 0 if blocked_until else count,
                                  blocked_until)
        if blocked_until:
            s.minutes_blocked = int(self.timing.pin_block_minutes)
            return self._deny(s, "card_blocked")
        s.screen, s.message, s.tries_left = SCREEN_PIN, "wrong_pin", tries - count
        s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
        self._record_denial("wrong_pin")
        self._dirty(kiosk=True)

    def _accepted(self, s, verdict):
        count, blocked_until = self.store.pin_failures(s.patron_hash)
        if count or blocked_until:
            with self.store.unit() as unit:
                unit.set_pin_failures(s.patron_hash, 0, None)
        wall = self.clock.wall()
        mine = [h for h in self.holds.values() if h.patron_hash == s.patron_hash]
        ready = self._ready_holds(s.patron_hash)
        if not ready:
            expired = any(h.state is HoldState.EXPIRED or
                          (h.state is HoldState.READY and h.expired_at(wall)) for h in mine)
            return self._deny(s, "only_expired" if expired else "nothing_here")
        self._open_for_patron(s, ready, verdict)

    def _open_for_patron(self, s, ready, verdict):
        """Open the compartments holding ``ready`` for session ``s``."""
        s.verdict = verdict
        numbers = sorted({h.compartment for h in ready})
        to_open = []
        for number in numbers:
            comp = self.compartments.get(number)
            if comp is None or comp.out_of_service or number in self.openings:
                s.compartments[number] = "unavailable"
            else:
                to_open.append(number)
                s.compartments[number] = "queued"
        s.items = [i for h in ready if h.compartment in to_open for i in h.items]
        s.item_compartment = {i.barcode: h.compartment for h in ready for i in h.items}
        if not to_open:
            return self._deny(s, "compartment_unavailable")
        self._open(to_open, OpenPurpose.PICKUP, session=s.id,
                   actor=pseudonym(s.patron_hash), reason="patron pickup",
                   patron=pseudonym(s.patron_hash))
        s.screen, s.message = SCREEN_OPENING, ""
        s.deadline = self.clock.monotonic() + self.timing.door_open_timeout_s + \
            self.timing.kiosk_idle_s
        self._dirty(kiosk=True, state=True)

    def _deny(self, s, code, reason=""):
        s.screen, s.message = SCREEN_DENIED, code
        s.tries_left = None
        s.deadline = self.clock.monotonic() + DENIED_SCREEN_S
        self._record_denial(code, reason)
        self._dirty(kiosk=True)

    def _record_denial(self, code, reason=""):
        data = {"reason": code}
        if reason:
            data["detail"] = reason
        with self.store.unit() as unit:
            unit.event(EventType.PICKUP_DENIED, data)
        log.info("pickup denied: %s", code)

    def _end_session(self, why):
        if self.session is not None:
            log.debug("kiosk session ended (%s)", why)
        self.session = None
        self.notice = ""
        self._dirty(kiosk=True)

    def _notify(self, code):
        self.notice = code
        self._dirty(kiosk=True)

    def _session_progress(self):
        """Move the patron's screen on once every door has finished."""
        s = self.session
        if s is None or s.screen != SCREEN_OPENING:
            return
        if all(v in ("closed", "jammed", "unavailable") for v in s.compartments.values()):
            s.screen = SCREEN_RECEIPT
            s.deadline = self.clock.monotonic() + self.timing.kiosk_idle_s
        self._dirty(kiosk=True)

    def _session_door(self, number, status, session_id=None):
        s = self.session
        if s and number in s.compartments and (session_id is None or s.id == session_id):
            s.compartments[number] = status
            if status == "open":
                s.deadline = max(s.deadline, self.clock.monotonic() + self.timing.kiosk_idle_s)
            self._session_progress()

    # ------------------------------------------------------------ doors
    def _open(self, numbers, purpose, *, session="", actor="", reason="", patron=None):
        """Record intent (write-ahead), then ask the relays to pulse."""
        now = self.clock.monotonic()
        new = [Opening(n, purpose, session, actor, reason, requested_mono=now)
               for n in numbers]
        with self.store.unit() as unit:
            for o in new:
                unit.put_opening(o)
                unit.audit(actor or "system", "unlock", compartment=o.compartment,
                           patron=patron, reason=reason)
        for o in new:
            self.openings[o.compartment] = o
        for o in new:
            self.relays.pulse(o.compartment, self.timing.pulse_s)

    def on_relay_fired(self, number, pulse_s):
        door = self.doors.get(number)
        if door is None:
            return
        door.energised = True
        opening = self.openings.get(number)
        if opening is not None:
            opening.fired = True
            opening.fired_mono = self.clock.monotonic()
            with self.store.unit() as unit:
                unit.event(EventType.LOCK_RELEASED, {"compartment": number,
                                                     "purpose": opening.purpose.value})
            if not opening.seen_open:
                self._session_door(number, "unlocked", opening.session)
        self._dirty(state=True)

    def on_relay_released(self, number):
        door = self.doors.get(number)
        if door is not None:
            door.energised = False
            self._dirty(state=True)

    def on_door(self, number, is_open):
        """A door sensor changed.  Doors are event driven, never polled."""
        door = self.doors.get(number)
        if door is None:
            return
        new = DoorState.OPEN if is_open else DoorState.CLOSED
        if door.state is new:
            return
        now = self.clock.monotonic()
        door.state = new
        door.edges.append(now)
        flapping = self._check_flapping(number, door, now)
        if new is DoorState.OPEN:
            door.opened_mono = now
            self._door_opened(number, flapping)
        else:
            door.opened_mono = None
            self._door_closed(number, flapping)
        self._dirty(state=True)

    def _check_flapping(self, number, door, now):
        window = self.timing.flap_window_s
        recent = sum(1 for t in door.edges if t >= now - window)
        if recent > self.timing.flap_edges:
            self._raise_alarm(AlarmKind.SENSOR_FLAPPING, number)
        return Alarm(AlarmKind.SENSOR_FLAPPING, number).key in self.alarms

    def _door_opened(self, number, flapping):
        opening = self.openings.get(number)
        if opening is not None and not opening.seen_open:
            opening.seen_open = True     # a physical fact: kept even if not stored
            try:
                self._store_seen_open(number, opening)
            except StoreError as exc:    # stored once the database takes writes again
                self._unstored_open.add(number)
                self.storage_failed(exc)
            if opening.jammed:
                opening.jammed = False
            self._guarded(self._clear_alarm, AlarmKind.DOOR_JAMMED, number)
            self._session_door(number, "open", opening.session)
        elif opening is None and not flapping:
            self._raise_alarm(AlarmKind.DOOR_FORCED, number)

    def _store_seen_open(self, number, opening):
        with self.store.unit() as unit:
            unit.put_opening(opening)
            unit.event(EventType.DOOR_OPENED, {"compartment": number,
                                               "purpose": opening.purpose.value})
        self._unstored_open.discard(number)

    def _door_closed(self, number, flapping):
        self._clear_alarm(AlarmKind.DOOR_HELD_OPEN, number)
        opening = self.openings.get(number)
        if opening is not None and opening.seen_open:
            self._complete_opening(number)
        elif not flapping:
            with self.store.unit() as unit:
                unit.event(EventType.DOOR_CLOSED, {"compartment": number})

    def _complete_opening(self, number, closed_while_down=False):
        """The door of an opening has been opened and closed again."""
        opening = self.openings.get(number)
        collected = []
        if opening.purpose is OpenPurpose.PICKUP:
            patron_hash = None
            s = self.session
            verdict = s.verdict if s and s.id == opening.session else None
            for hold in self.holds.values():
                if hold.compartment == number and hold.state is HoldState.READY and \
                        pseudonym(hold.patron_hash) == opening.actor:
                    collected.append(self._loaned(hold, verdict))
                    patron_hash = hold.patron_hash
        loaded = None
        with self.store.unit() as unit:
            unit.drop_opening(number)
            unit.event(EventType.DOOR_CLOSED, {"compartment": number,
                                               "purpose": opening.purpose.value})
            if opening.purpose is OpenPurpose.LOADING:
                loaded = self._finish_loading(opening, unit)
            for hold in collected:
                unit.put_hold(hold)
                unit.event(EventType.HOLD_COLLECTED, {
                    "hold_id": hold.id, "compartment": number,
                    "patron_hash": hold.patron_hash,
                    "items": [i.as_dict() for i in hold.items],
                    "verified_by": "pickup_code" if verdict and
                    verdict.reason == "pickup_code" else "pin",
                    "closed_while_offline": closed_while_down})
                unit.audit(opening.actor, "collected", compartment=number,
                           patron=opening.actor, reason="patron pickup",
                           detail=f"hold {hold.id}")
        del self.openings[number]
        if loaded is not None:
            self.holds[loaded.id] = loaded
            log.info("hold %s ready in compartment %d", loaded.id, number)
        for hold in collected:
            del self.holds[hold.id]
            log.info("hold %s collected from compartment %d", hold.id, number)
        if opening.purpose is OpenPurpose.PICKUP:
            self._session_door(number, "closed", opening.session)
        self._dirty(state=True)

    @staticmethod
    def _loaned(hold, verdict):
        due_for = (verdict.due if verdict else {}) or {}
        default = verdict.default_due if verdict else None
        items = tuple(Item(i.barcode, i.title, due_for.get(i.barcode, default))
                      for i in hold.items)
        return hold.with_(state=HoldState.COLLECTED, items=items)

    def _door_jammed(self, number):
        """An unlock with no door movement: the command fired, the door did
        not open.  The holds stay as they were."""
        opening = self.openings.pop(number)
        with self.store.unit() as unit:
            unit.drop_opening(number)
            unit.audit("system", "door_jammed", compartment=number,
                       reason=opening.reason)
        if opening.purpose is OpenPurpose.LOADING:
            self._abort_loading(opening)
        self._raise_alarm(AlarmKind.DOOR_JAMMED, number)
        self._session_door(number, "jammed", opening.session)
        self._dirty(state=True)

    # ------------------------------------------------------------ alarms
    def on_reader_online(self, online):
        if online == self.reader_online:
            return
        self.reader_online = online
        if online:
            self._clear_alarm(AlarmKind.READER_OFFLINE, None)
        else:
            self._raise_alarm(AlarmKind.READER_OFFLINE, None)
        self._dirty(state=True, kiosk=True)

    def on_reader_garbled(self, reason):
        log.info("card read failed: %s", reason)
        if self.session is None or self.session.screen in (SCREEN_RECEIPT, SCREEN_DENIED):
            self._notify("card_unreadable")

    def _raise_alarm(self, kind, compartment):
        alarm = Alarm(kind, compartment)
        if alarm.key in self.alarms:
            return
        with self.store.unit() as unit:
            unit.raise_alarm(alarm.key, kind.value, compartment)
            unit.event(EventType.ALARM_RAISED, {"alarm": kind.value,
                                                "compartment": compartment})
            unit.audit("system", "alarm_raised", compartment=compartment,
                       reason=kind.value)
        self.alarms[alarm.key] = alarm
        log.warning("ALARM raised: %s%s", kind.value,
                    f" (compartment {compartment})" if compartment else "")
        self._dirty(state=True)

    def _clear_alarm(self, kind, compartment, actor="system"):
        alarm = Alarm(kind, compartment)
        if alarm.key not in self.alarms:
            return
        with self.store.unit() as unit:
            unit.clear_alarm(alarm.key)
            unit.event(EventType.ALARM_CLEARED, {"alarm": kind.value,
                                                 "compartment": compartment})
            unit.audit(actor, "alarm_cleared", compartment=compartment,
                       reason=kind.value)
        del self.alarms[alarm.key]
        log.warning("alarm cleared: %s%s", kind.value,
                    f" (compartment {compartment})" if compartment else "")
        self._dirty(state=True)

    # ------------------------------------------------------------ holds (admin)
    def place_hold(self, hold: Hold, actor="system"):
        """Put a ready hold into a compartment directly (demo seeding, tests).
        Staff loading with door checks lives in the staff workflow."""
        if hold.compartment not in self.compartments:
            raise CommandError("unknown_compartment",
                               f"compartment {hold.compartment} does not exist")
        if hold.id in self.holds:
            raise CommandError("duplicate_hold", f"hold {hold.id} already exists")
        hold = hold.with_(state=HoldState.READY)
        with self.store.unit() as unit:
            unit.put_hold(hold)
            unit.event(EventType.HOLD_READY, {
                "hold_id": hold.id, "compartment": hold.compartment,
                "pickup_number": hold.pickup_number, "deadline": hold.deadline,
                "patron_hash": hold.patron_hash,
                "items": [i.as_dict() for i in hold.items]})
            unit.audit(actor, "hold_placed", compartment=hold.compartment,
                       patron=pseudonym(hold.patron_hash), detail=f"hold {hold.id}")
        self.holds[hold.id] = hold
        self._dirty(state=True)
        return hold

    # ------------------------------------------------------------ snapshots
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
        s = self.session
        now = self.clock.monotonic()
        view = {"version": self.kiosk_version, "screen": SCREEN_IDLE,
                "notice": self.notice, "reader_online": self.reader_online is not False,
                "locker_name": self.cfg.locker.name}
        if s is not None:
            view.update({
                "screen": s.screen, "message": s.message, "tries_left": s.tries_left,
                "seconds_left": max(0, round(s.deadline - now)),
                "minutes_blocked": s.minutes_blocked,
                "keypad_digits": s.keypad_digits,
                "compartments": [{"number": n, "status": st}
                                 for n, st in sorted(s.compartments.items())],
                "items": [i.as_dict() for i in self._receipt_items(s)],
            })
        return view

    def _receipt_items(self, s):
        """The items the patron is getting: none from a door that jammed."""
        if s.verdict is None:
            return []
        jammed = {n for n, status in s.compartments.items() if status == "jammed"}
        due_for, default = s.verdict.due or {}, s.verdict.default_due
        return [Item(i.barcode, i.title, due_for.get(i.barcode, default))
                for i in s.items if s.item_compartment.get(i.barcode) not in jammed]

    def compartment_state(self, number, holds=None):
        """free, loading, ready, opening, expired or out_of_service.
        ``holds`` (those inside, if the caller has them grouped) saves a scan."""
        comp = self.compartments[number]
        if comp.out_of_service:
            return "out_of_service"
        opening = self.openings.get(number)
        if opening is not None:
            return "loading" if opening.purpose is OpenPurpose.LOADING else "opening"
        if holds is None:
            holds = [h for h in self.holds.values() if h.compartment == number]
        states = {h.state for h in holds}
        for state in (HoldState.LOADING, HoldState.EXPIRED, HoldState.READY):
            if state in states:
                return {"loading": "loading", "expired": "expired",
                        "ready": "ready"}[state.value]
        return "free"

    def state_view(self):
        """The locker as staff and central see it; no patron data."""
        comps = []
        inside = collections.defaultdict(list)     # one pass, not one per compartment
        for h in self.holds.values():
            if h.compartment is not None and h.state.in_locker:
                inside[h.compartment].append(h)
        alarms_at = collections.defaultdict(list)
        for a in self.alarms.values():
            alarms_at[a.compartment].append(a.kind.value)
        for number, comp in sorted(self.compartments.items()):
            door = self.doors.get(number, DoorTrack())
            holds = inside.get(number, [])
            comps.append({
                "number": number, "size": comp.size,
                "state": self.compartment_state(number, holds),
                "door": door.state.value,
                "lock": "released" if door.energised else "locked",
                "alarms": sorted(alarms_at.get(number, [])),
                "occupied": bool(holds),
                "out_of_service": comp.out_of_service,
                "deadline": min((h.deadline for h in holds), default=None),
            })
        return {"version": self.state_version, "locker_id": self.cfg.locker.id,
                "compartments": comps,
                "alarms": [{"alarm": a.kind.value, "compartment": a.compartment}
                           for a in sorted(self.alarms.values(), key=lambda a: a.key)],
                "reader_online": self.reader_online}

