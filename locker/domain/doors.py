"""Doors: what each door is doing, and the openings in flight.

:class:`Doors` owns the door tracks (not persisted: re-read at start) and
the openings (persisted write-ahead, so a restart knows what was in flight).
It answers with results -- the new door state, the doors that are due --
and leaves what they mean for holds, sessions and alarms to the locker.

An opening is written before its relay is asked to pulse: use cases that
open a door as part of a larger change call :meth:`Doors.plan`, write with
:meth:`Doors.write_openings` in their own unit, then :meth:`Doors.started`.

A patron's pickup may be written ahead earlier, while the PIN is typed or
checked (:meth:`Doors.arm`): an accepted PIN then pulses at once
(:meth:`Doors.start_armed`) and writes the opening in full just after
(:meth:`Doors.write_unwritten`), so the disk's flush is not on the way
from PIN to lock.  An armed row is an opening not seen open: a restart drops
it like any other (ADR 3, ADR 10).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from bibbox.locker.domain.errors import StoreError
from bibbox.locker.domain.model import AlarmKind, DoorState, EventType, Opening, OpenPurpose

ARMED_REASON = "PIN being checked"   # an armed row's reason (see Doors.arm)
FORCED_SETTLE_S = 2.0   # a forced-door alarm clears once the door stays shut this long
# An opening whose lock never reported firing this long after it was asked
# for (a board that did not confirm, a bus unplugged: the unlock is dropped,
# never sent late) ends as a jam.  Well past a queue of pulses one coil at a time.
UNFIRED_S = 30.0
# The alarms :meth:`Doors.due` raises or clears by time.
WATCHED_ALARMS = (AlarmKind.DOOR_HELD_OPEN, AlarmKind.SENSOR_FLAPPING, AlarmKind.DOOR_FORCED)


@dataclass
class DoorTrack:
    """What we know of one door right now (not persisted: re-read at start)."""
    state: DoorState = DoorState.UNKNOWN
    energised: bool = False
    opened_mono: float | None = None
    edges: collections.deque = field(default_factory=lambda: collections.deque(maxlen=2000))


@dataclass(frozen=True)
class DoorsDue:
    """What the doors need now (see :meth:`Doors.due`)."""
    jammed: list     # openings fired with no door movement in time
    alarms: list     # (raise?, AlarmKind, number), in door order


class Doors:
    """Door tracks and openings, by compartment number."""

    def __init__(self, clock, store, relays, timing):
        self.clock, self.store, self.relays, self.timing = clock, store, relays, timing
        self.tracks: dict[int, DoorTrack] = {}
        self.openings: dict[int, Opening] = {}
        self.unstored_open: set[int] = set()   # seen open while the database refused it
        # Doors with a timer running (open, or a sensor edge not yet settled):
        # the only ones :meth:`due` and :meth:`deadlines` look at, so an idle
        # turn does no work per door.  A door leaves once nothing is pending.
        self.watched: set[int] = set()
        # Pickup openings written ahead for a PIN being checked, not started:
        # number -> the session they were armed for (see :meth:`arm`).
        self.armed: dict[int, str] = {}
        self.unwritten: list = []    # (Opening, patron) started armed, not yet written in full

    def read(self, numbers, readings):
        """The doors as they are at start (``readings``: number -> state)."""
        now = self.clock.monotonic()
        for number in numbers:
            state = DoorState(readings.get(number, "unknown"))
            self.tracks[number] = DoorTrack(
                state=state, opened_mono=now if state is DoorState.OPEN else None)
            if state is DoorState.OPEN:
                self.watched.add(number)

    def state_of(self, number):
        return self.tracks[number].state if number in self.tracks else None

    # -- opening --------------------------------------------------------------------
    def plan(self, numbers, purpose, *, session="", actor="", reason="", holds=None):
        """New openings for ``numbers`` (not written, not started);
        ``holds`` maps a number to the ids of the holds its pickup grants."""
        now = self.clock.monotonic()
        holds = holds or {}
        return [Opening(n, purpose, session, actor, reason, requested_mono=now,
                        holds=tuple(holds.get(n, ()))) for n in numbers]

    @staticmethod
    def write_openings(unit, openings, patron=None, rows=True):
        """Record the intent to open (write-ahead) in ``unit``: each
        opening's row (unless ``rows`` is False) and its audit line."""
        for o in openings:
            if rows:
                unit.put_opening(o)
            unit.audit(o.actor or "system", "unlock", compartment=o.compartment,
                       patron=patron, reason=o.reason)

    def started(self, openings):
        """``openings`` are committed: track them, then pulse their relays."""
        for o in openings:
            self.openings[o.compartment] = o
            self.armed.pop(o.compartment, None)    # its row is now this opening's
        for o in openings:
            self.relays.pulse(o.compartment, self.timing.pulse_s)

    def open(self, numbers, purpose, *, session="", actor="", reason="", patron=None,
             holds=None):
        """Open ``numbers`` as a use case of its own: write-ahead, then pulse."""
        new = self.plan(numbers, purpose, session=session, actor=actor, reason=reason,
                        holds=holds)
        with self.store.unit() as unit:
            self.write_openings(unit, new, patron)
        self.started(new)
        return new

    # -- armed pickups (ADR 10) --------------------------------------------------------
    def arm(self, numbers, session, actor):
        """Write ahead, in one unit, the pickup openings of ``numbers`` for
        ``session`` (the patron's PIN is typed or being checked), so that an
        accepted PIN need not wait for the disk.  Numbers with an opening
        under way are left to it; rows armed for another session are
        dropped.  Writes nothing when all are armed for ``session`` already.
        Raises StoreError (nothing armed) when the disk refuses."""
        wanted = {n for n in numbers if n not in self.openings}
        stale = {n for n, armed_for in self.armed.items() if armed_for != session}
        if not stale and all(self.armed.get(n) == session for n in wanted):
            return
        with self.store.unit() as unit:
            for n in stale - wanted:
                unit.drop_opening(n)
            for o in self.plan(sorted(wanted), OpenPurpose.PICKUP, session=session,
                               actor=actor, reason=ARMED_REASON):
                unit.put_opening(o)
        for n in stale:
            del self.armed[n]
        self.armed.update(dict.fromkeys(wanted, session))

    def armed_for(self, numbers, session):
        """True if every one of ``numbers`` is armed for ``session``."""
        return bool(numbers) and all(self.armed.get(n) == session for n in numbers)

    def start_armed(self, numbers, purpose, *, patron=None, session="", actor="", reason="",
                    holds=None):
        """Start openings of ``numbers`` armed for ``session`` (see
        :meth:`armed_for`): their write-ahead is on disk, so the relays
        pulse now.  They are written in full by :meth:`write_unwritten`,
        which the caller calls next."""
        new = self.plan(numbers, purpose, session=session, actor=actor, reason=reason,
                        holds=holds)
        self.unwritten += [(o, patron) for o in new]
        self.started(new)
        return new

    def write_unwritten(self):
        """Write the openings started armed (:meth:`start_armed`) in full,
        with their audit lines, and drop the rows armed and not opened, in
        one unit.  On StoreError they are kept for the next call (the
        locker's, once the disk takes writes again): the doors are already
        unlocking, and their audit lines must not be lost.  An opening that
        ended meanwhile (a jam whose own write the disk refused) gets its
        audit line, and its armed row goes."""
        with self.store.unit() as unit:
            for o, patron in self.unwritten:
                if self.openings.get(o.compartment) is o:     # still under way
                    self.write_openings(unit, [o], patron)
                else:
                    self.write_openings(unit, [o], patron, rows=False)
                    if o.compartment not in self.openings:
                        unit.drop_opening(o.compartment)
            self._drop_armed(unit)
        self.unwritten.clear()
        self.armed.clear()

    def disarm(self):
        """Drop every armed row (the PIN was refused, the patron left)."""
        with self.store.unit() as unit:
            self._drop_armed(unit)
        self.armed.clear()

    def _drop_armed(self, unit):
        for n in self.armed:
            if n not in self.openings:
                unit.drop_opening(n)

    # -- what the hardware reports --------------------------------------------------
    def relay_fired(self, number):
        """The coil of ``number`` is energised; returns its opening, if any."""
        self.tracks[number].energised = True
        opening = self.openings.get(number)
        if opening is not None:
            opening.fired = True
            opening.fired_mono = self.clock.monotonic()
            with self.store.unit() as unit:
                unit.event(EventType.LOCK_RELEASED, {"compartment": number,
                                                     "purpose": opening.purpose.value})
        return opening

    def relay_released(self, number):
        """True if ``number`` is a known door (now locked again)."""
        door = self.tracks.get(number)
        if door is None:
            return False
        door.energised = False
        return True

    def sensor_changed(self, number, is_open):
        """Record a sensor edge; the new DoorState, or None if the door is
        unknown or did not change."""
        door = self.tracks.get(number)
        new = DoorState.OPEN if is_open else DoorState.CLOSED
        if door is None or door.state is new:
            return None
        now = self.clock.monotonic()
        door.state = new
        door.edges.append(now)
        door.opened_mono = now if new is DoorState.OPEN else None
        self.watched.add(number)
        return new

    def too_many_edges(self, number):
        """The sensor moved more than ``flap_edges`` times in the flap window."""
        window, now = self.timing.flap_window_s, self.clock.monotonic()
        recent = sum(1 for t in self.tracks[number].edges if t >= now - window)
        return recent > self.timing.flap_edges

    def seen_open(self, number):
        """The door of an opening was seen open: a physical fact, kept in
        memory even if it cannot be stored.  Returns the opening if this is
        news, else None."""
        opening = self.openings.get(number)
        if opening is None or opening.seen_open:
            return None
        opening.seen_open = True
        opening.jammed = False
        return opening

    def store_seen_open(self, number):
        """Store that the opening's door was seen open (retried by the
        locker once the database takes writes again)."""
        opening = self.openings[number]
        try:
            with self.store.unit() as unit:
                unit.put_opening(opening)
                unit.event(EventType.DOOR_OPENED, {"compartment": number,
                                                   "purpose": opening.purpose.value})
        except StoreError:
            self.unstored_open.add(number)
            raise
        self.unstored_open.discard(number)

    def record_closed(self, number):
        """A door closed with no opening to finish."""
        with self.store.unit() as unit:
            unit.event(EventType.DOOR_CLOSED, {"compartment": number})

    # -- finishing openings (in the caller's unit) ------------------------------------
    @staticmethod
    def write_completed(unit, opening):
        unit.drop_opening(opening.compartment)
        unit.event(EventType.DOOR_CLOSED, {"compartment": opening.compartment,
                                           "purpose": opening.purpose.value})

    @staticmethod
    def write_jammed(unit, opening):
        unit.drop_opening(opening.compartment)
        unit.audit("system", "door_jammed", compartment=opening.compartment,
                   reason=opening.reason)

    @staticmethod
    def write_abandoned(unit, opening):
        unit.drop_opening(opening.compartment)
        unit.audit("system", "opening_abandoned", compartment=opening.compartment,
                   reason="restart before the door was seen open", detail=opening.reason)

    # -- time ---------------------------------------------------------------------------
    def _waiting(self, opening):
        return not opening.seen_open and not opening.jammed

    def _jams_at(self, opening):
        """When an opening still waiting for its door counts as jammed."""
        if opening.fired_mono is None:
            return opening.requested_mono + UNFIRED_S
        return opening.fired_mono + self.timing.door_open_timeout_s

    def due(self, now):
        """What is due at monotonic ``now`` (see :meth:`forget_settled`)."""
        t = self.timing
        jammed = [n for n, o in self.openings.items()
                  if self._waiting(o) and now >= self._jams_at(o)]
        alarms = []
        for number in sorted(self.watched):
            door = self.tracks[number]
            is_open = door.state is DoorState.OPEN and door.opened_mono is not None
            if is_open and now >= door.opened_mono + t.door_held_open_s:
                alarms.append((True, AlarmKind.DOOR_HELD_OPEN, number))
            if door.edges and now >= door.edges[-1] + t.flap_window_s:
                alarms.append((False, AlarmKind.SENSOR_FLAPPING, number))
            if door.state is DoorState.CLOSED and (
                    not door.edges or now >= door.edges[-1] + FORCED_SETTLE_S):
                alarms.append((False, AlarmKind.DOOR_FORCED, number))
        return DoorsDue(jammed, alarms)

    def forget_settled(self, now, is_raised):
        """Stop watching doors with nothing pending: shut (or unknown), past
        the flap and forced windows, with no door alarm of theirs up (one
        that could not be cleared keeps its door watched, to try again)."""
        settle_s = max(self.timing.flap_window_s, FORCED_SETTLE_S)
        settled = []
        for number in self.watched:
            door = self.tracks[number]
            if door.state is DoorState.OPEN or (door.edges and now < door.edges[-1] + settle_s):
                continue
            if not any(is_raised(kind, number) for kind in WATCHED_ALARMS):
                settled.append(number)
        self.watched.difference_update(settled)

    def deadlines(self, is_raised):
        """Monotonic times at which :meth:`due` will have work;
        ``is_raised(kind, number)`` tells which alarms are up."""
        t = self.timing
        times = [self._jams_at(o) for o in self.openings.values() if self._waiting(o)]
        for number in self.watched:
            door = self.tracks[number]
            if door.state is DoorState.OPEN and door.opened_mono is not None and \
                    not is_raised(AlarmKind.DOOR_HELD_OPEN, number):
                times.append(door.opened_mono + t.door_held_open_s)
            if door.edges and is_raised(AlarmKind.SENSOR_FLAPPING, number):
                times.append(door.edges[-1] + t.flap_window_s)
            if door.state is DoorState.CLOSED and door.edges and \
                    is_raised(AlarmKind.DOOR_FORCED, number):
                times.append(door.edges[-1] + FORCED_SETTLE_S)
        return times
