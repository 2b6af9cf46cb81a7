"""Item sensors: whether something is inside a compartment, and what follows.

A compartment has an item sensor when its Kerong bus has ``item_sensors =
true`` (the board's IR input) or it has an ``item_pin`` (GPIO).  Its reports
(``ItemSensed``) drive three checks, each decided ``timing.item_grace_s``
after the fact that starts it, because an IR sensor is polled and may
report a moment after the door:

* **Loading.**  When a loading door closes and the sensor sees nothing, the
  hold does not become ready yet.  If the item is seen within the grace
  window, it does; if not, the loading ends as a jammed one does: the hold
  waits to be loaded again, the compartment is free, with a
  ``hold.load_unconfirmed`` event and a ``loading_failed`` audit line
  ("item not seen"); the staff page says so.
* **Pickup.**  When a patron's door closes, their holds are collected as
  always (loans too).  If the sensor still sees an item after the grace
  window and nothing else should be inside, the kiosk tells the patron
  they left something behind (the same card opens the door again within
  ``timing.reopen_window_s``) and ``item.left_behind`` is sent, once per
  patron and compartment.  Still there when the patron can no longer
  reopen: the ``item_left_behind`` alarm.
* **Wrong compartment.**  An item seen for the grace window behind a
  closed door of a compartment that should be empty (no hold in it, no
  door being opened) raises ``unexpected_item``.  With the loading check,
  staff see both halves of a mix-up.

Both alarms clear when the sensor reports the compartment empty, or when
staff clear them.  A compartment with no sensor, or whose sensor has not
reported (a board offline, say), is never checked: unknown presence
blocks nothing.  Pending checks wait in a heap, so a turn does no work per
door.

**Across a restart.**  The start learns what the sensors report before it
restores the openings in flight and applies the doors, so a door found
closed is checked as if it had just closed: a loading is ready if the item
is seen (at once or within the grace window), else unconfirmed as above; a
patron's holds are collected and an item still sensed is left behind --
``item.left_behind`` (patron and holds from the holds collected at that
close) and, the patron's session being gone, the alarm after the grace
window, with nothing on the kiosk.  An item sensed where nothing belongs
is left behind by the patron who collected the compartment's last holds
(the store remembers them), else it starts the wrong-compartment check; a
door open at start decides nothing until it closes.  The pending checks
themselves are not stored: a left-behind check under way when the daemon
stopped loses the patron's reopen window and is decided again after the
grace window (``item.left_behind`` unless the audit shows it went out, then
the alarm); a patron's reopen (no holds granted) closed while the daemon
was down reports neither patron nor holds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass

from bibbox.locker.domain import messages as msg
from bibbox.locker.domain.identity import pseudonym
from bibbox.locker.domain.model import AlarmKind, DoorState, EventType, HoldState, OpenPurpose

log = logging.getLogger("bibbox.locker")

LOAD, LEFT, STRAY = "load", "left", "stray"     # what a pending check decides
ITEM_ALARMS = (AlarmKind.UNEXPECTED_ITEM, AlarmKind.ITEM_LEFT_BEHIND)
MAX_UNCONFIRMED = 200       # loadings the sensor did not confirm, kept for the staff page


@dataclass(frozen=True)
class Check:
    """A decision of ``kind`` due at monotonic ``due`` about one compartment."""
    kind: str
    due: float


@dataclass
class LeftBehind:
    """Who closed a door on an item: the patron's session, keyed hash and
    the holds they collected, and whether ``item.left_behind`` was sent."""
    session: str
    patron_hash: str
    hold_ids: tuple
    told: bool = False


class ItemChecks:
    """What the sensors report (``present``: number -> bool, only where a
    sensor reported), the pending :class:`Check` per compartment, in a heap
    by due time (a replaced check's entry is skipped when it surfaces), and
    the :class:`LeftBehind` of each compartment a patron left something in
    (until the sensor sees it empty)."""

    def __init__(self):
        self.present: dict[int, bool] = {}
        self.pending: dict[int, Check] = {}
        self.left: dict[int, LeftBehind] = {}
        self.unconfirmed: dict[str, int] = {}    # hold id -> compartment, newest last
        self._heap: list = []
        self._order = itertools.count()

    def start(self, number, check):
        """Make ``check`` the pending check of ``number`` (replacing any)."""
        self.pending[number] = check
        heapq.heappush(self._heap, (check.due, next(self._order), number, check))

    def stop(self, number):
        return self.pending.pop(number, None)

    def kind(self, number):
        check = self.pending.get(number)
        return check.kind if check is not None else None

    def next_due(self):
        """The earliest due time of a pending check, or None."""
        heap = self._heap
        while heap and self.pending.get(heap[0][2]) is not heap[0][3]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now):
        """The (number, check) pairs due at ``now``, no longer pending."""
        out = []
        while (when := self.next_due()) is not None and when <= now:
            _, _, number, check = heapq.heappop(self._heap)
            del self.pending[number]
            out.append((number, check))
        return out

    def remember_unconfirmed(self, hold_id, number):
        self.unconfirmed.pop(hold_id, None)
        self.unconfirmed[hold_id] = number
        while len(self.unconfirmed) > MAX_UNCONFIRMED:
            del self.unconfirmed[next(iter(self.unconfirmed))]


class ItemEvents:
    """Mixed into :class:`~bibbox.locker.domain.core.Locker` (which owns
    ``_items``, an :class:`ItemChecks`); see the module docstring."""

    # -- what the sensors report ---------------------------------------------------
    def item_sensed(self, message: msg.ItemSensed):
        """A compartment's item sensor changed (or reported for the first time)."""
        number, present = message.compartment, bool(message.present)
        if number not in self.compartments or self._items.present.get(number) is present:
            return
        self._items.present[number] = present
        check = self._items.pending.get(number)
        if present:
            if check is not None and check.kind == LOAD:
                self._items.stop(number)
                if number in self.openings and \
                        self._doors.state_of(number) is DoorState.CLOSED:
                    self._guarded(self._complete_opening, number)
            elif check is None:
                self._watch_for_stray(number)
            return
        if check is not None and check.kind != LOAD:
            self._items.stop(number)
        self._items.left.pop(number, None)
        self._sessions.item_taken(number)
        for kind in ITEM_ALARMS:
            self._guarded(self._alarms.clear, kind, number)

    def _items_read(self, readings):
        """Start, before any door or opening is restored: what the sensors
        report (number -> present, only those that answered), so that a door
        found closed on a restored opening is checked as at run time."""
        self._items.present = {number: bool(present) for number, present in readings.items()
                               if number in self.compartments}

    def _items_settled(self):
        """Start, once openings, doors and holds are settled: an item sensed
        where nothing belongs starts the wrong-compartment check (a restored
        opening has started its own check already); a compartment seen empty
        clears its item alarms."""
        for number, present in sorted(self._items.present.items()):
            if present:
                self._recall_left_behind(number)
                self._watch_for_stray(number)
                continue
            for kind in ITEM_ALARMS:
                self._guarded(self._alarms.clear, kind, number)

    def _recall_left_behind(self, number):
        """Start: an item sensed in a compartment whose holds last left it
        with a patron (collected) is theirs, left behind -- a check that was
        pending when the daemon stopped, or a door closed while it was down
        (the restored opening has done this already).  ``told`` when its
        ``item.left_behind`` went out before the stop (the audit says)."""
        if number in self._items.left or not self._item_stays(number):
            return
        last = self.store.last_holds_out(number)
        if not last or any(h.state is not HoldState.COLLECTED for h in last):
            return
        self._items.left[number] = LeftBehind(
            "", last[0].patron_hash, tuple(h.id for h in last),
            told=self.store.audited_since("item_left_behind", number, last[0].updated_at))

    def item_load_unconfirmed(self, hold_id):
        """The compartment a hold's last loading was not confirmed in (the
        sensor saw nothing), while the hold waits to be loaded again; or None."""
        return self._items.unconfirmed.get(hold_id)

    # -- hooks the door handlers call ---------------------------------------------
    def _awaits_item(self, number, opening):
        """A loading door closed and the sensor sees nothing (yet): True
        while the locker waits for it (the opening stays in flight)."""
        if opening.purpose is not OpenPurpose.LOADING or \
                self._items.present.get(number) is not False:
            return False
        if self._items.kind(number) != LOAD:
            self._items.start(number, Check(LOAD, self.clock.monotonic() +
                                            self.timing.item_grace_s))
        return True

    def _item_check_after_close(self, number, opening=None, collected=()):
        """A door closed (``opening`` done, ``collected`` the holds taken):
        an item still sensed is left behind (a patron's door) or unexpected."""
        if opening is None or opening.purpose is not OpenPurpose.PICKUP:
            self._watch_for_stray(number)
            return
        if not self._item_stays(number):
            return
        left = self._items.left.get(number)
        if left is None or left.session != opening.session:    # else: a reopen, closed again
            self._items.left[number] = LeftBehind(
                opening.session, collected[0].patron_hash if collected else
                self._sessions.patron_of(opening.session), tuple(h.id for h in collected))
        self._items.start(number, Check(LEFT, self.clock.monotonic() +
                                        self.timing.item_grace_s))

    def _watch_for_stray(self, number):
        """Start the wrong-compartment check if an item is sensed where
        nothing should be (and no other check or item alarm is pending); a
        patron's item seen again (its board was offline) is theirs still."""
        if number in self._items.pending or not self._item_stays(number) or \
                any(self._alarms.is_raised(kind, number) for kind in ITEM_ALARMS):
            return
        kind = LEFT if number in self._items.left else STRAY
        self._items.start(number, Check(kind, self.clock.monotonic() +
                                        self.timing.item_grace_s))

    def _item_stays(self, number):
        """An item is sensed behind a closed door, with no door being opened
        and no hold that belongs inside."""
        return self._items.present.get(number) is True and number not in self.openings and \
            self._doors.state_of(number) is DoorState.CLOSED and not self.holds_in(number)

    # -- time ---------------------------------------------------------------------------
    def _items_due(self, now):
        decide = {LOAD: self._load_due, LEFT: self._left_due, STRAY: self._stray_due}
        for number, check in self._items.due(now):
            self._guarded(decide[check.kind], number, check)

    def _load_due(self, number, check):
        """The grace window of a loading ended: ready if the item was seen
        (or the sensor fell silent), else the hold waits to be loaded again."""
        opening = self.openings.get(number)
        if opening is None or not opening.seen_open or \
                self._doors.state_of(number) is not DoorState.CLOSED:
            return                  # the door opened again: its closing decides
        if self._items.present.get(number) is not False:
            self._complete_opening(number)
            return
        with self.store.unit() as unit:
            self._doors.write_completed(unit, opening)
            back = self._holds.write_load_unconfirmed(unit, opening)
        del self.openings[number]
        self._holds.put(back)
        if back is not None:
            self._items.remember_unconfirmed(back.id, number)
            log.warning("hold %s not ready: the item sensor of compartment %d saw nothing",
                        back.id, number)
        self._dirty(state=True)

    def _left_due(self, number, check):
        """An item is still sensed after a patron closed the door: tell the
        patron and central once; raise the alarm once the patron can no
        longer open the door again by card."""
        left = self._items.left.get(number)
        if left is None or not self._item_stays(number):
            return              # taken, or the door open again: its closing decides
        if not left.told:
            data = {"compartment": number, "hold_ids": list(left.hold_ids)}
            if left.patron_hash:
                data["patron_hash"] = left.patron_hash
            with self.store.unit() as unit:
                unit.event(EventType.ITEM_LEFT_BEHIND, data)
                unit.audit("system", "item_left_behind", compartment=number,
                           patron=pseudonym(left.patron_hash) if left.patron_hash else None,
                           detail=f"hold {left.hold_ids[0]}" if left.hold_ids else "")
            left.told = True
            log.warning("an item was left behind in compartment %d", number)
        self._sessions.item_left(number, left.session)
        until = self._sessions.reopen_ends(left.session)
        if until is not None and until > self.clock.monotonic():
            self._items.start(number, Check(LEFT, until))
        else:
            self._alarms.raise_(AlarmKind.ITEM_LEFT_BEHIND, number)

    def _stray_due(self, number, check):
        if self._item_stays(number):
            self._alarms.raise_(AlarmKind.UNEXPECTED_ITEM, number)
