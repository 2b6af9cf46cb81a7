"""The locker's handlers for what its hardware reports: readers, boards,
printers, relays and doors (item sensors: :mod:`bibbox.locker.domain.items`).

:class:`HardwareEvents` is a part of :class:`~bibbox.locker.domain.core.Locker`
(which inherits it) and uses the locker's parts -- ``_doors``, ``_alarms``,
``_sessions``, ``_holds`` and ``store`` -- under the same rules: one thread,
one store unit per use case, memory updated only after the commit.
"""

from __future__ import annotations

import logging

from bibbox.locker.domain import messages as msg
from bibbox.locker.domain.model import AlarmKind, DoorState, OpenPurpose

log = logging.getLogger("bibbox.locker")


class HardwareEvents:
    """Mixed into :class:`~bibbox.locker.domain.core.Locker`; see the module docstring."""

    def reader_online_changed(self, message: msg.ReaderOnline):
        if message.online == self.reader_online:
            return
        self.reader_online = message.online
        if message.online:
            self._alarms.clear(AlarmKind.READER_OFFLINE, None)
        else:
            self._alarms.raise_(AlarmKind.READER_OFFLINE, None)
        self._dirty(state=True, kiosk=True)

    def board_online_changed(self, message: msg.BoardOnline):
        """A lock board came back (its alarm clears; its doors report again)
        or went silent (an alarm for the board; its doors become unknown)."""
        if message.online:
            self._guarded(self._alarms.clear, AlarmKind.BOARD_OFFLINE, None, "system",
                          message.board)
        else:
            for number in message.compartments:
                door = self.doors.get(number)
                if door is not None:
                    door.state, door.opened_mono = DoorState.UNKNOWN, None
                self._items.present.pop(number, None)    # unknown: blocks nothing
            self._guarded(self._alarms.raise_, AlarmKind.BOARD_OFFLINE, None, message.board)
        self._dirty(state=True)

    def printer_status_changed(self, message: msg.PrinterStatus):
        """The receipt printer failed (``printer_offline`` alarm) or printed again."""
        change = self._alarms.clear if message.ok else self._alarms.raise_
        self._guarded(change, AlarmKind.PRINTER_OFFLINE, None)

    def reader_garbled(self, message: msg.ReaderGarbled):
        log.info("card read failed: %s", message.reason)
        self._sessions.reader_garbled()

    def relay_fired(self, message: msg.RelayFired):
        number = message.compartment
        if number not in self.doors:
            return
        opening = self._doors.relay_fired(number)
        if opening is not None and not opening.seen_open:
            self._sessions.door_status(number, "unlocked", opening.session)
        self._dirty(state=True)

    def relay_released(self, message: msg.RelayReleased):
        if self._doors.relay_released(message.compartment):
            self._dirty(state=True)

    def door_changed(self, message: msg.DoorChanged):
        """A door sensor changed.  Doors are event driven, never polled."""
        number = message.compartment
        new = self._doors.sensor_changed(number, message.is_open)
        if new is None:
            return
        if self._doors.too_many_edges(number):
            self._alarms.raise_(AlarmKind.SENSOR_FLAPPING, number)
        flapping = self._alarms.is_raised(AlarmKind.SENSOR_FLAPPING, number)
        if new is DoorState.OPEN:
            self._door_opened(number, flapping)
        else:
            self._door_closed(number, flapping)
        self._dirty(state=True)

    def _door_opened(self, number, flapping):
        opening = self._doors.seen_open(number)
        if opening is not None:
            self._guarded(self._doors.store_seen_open, number)
            self._guarded(self._alarms.clear, AlarmKind.DOOR_JAMMED, number)
            self._sessions.door_status(number, "open", opening.session)
        elif number not in self.openings and not flapping:
            self._alarms.raise_(AlarmKind.DOOR_FORCED, number)

    def _door_closed(self, number, flapping):
        self._alarms.clear(AlarmKind.DOOR_HELD_OPEN, number)
        opening = self.openings.get(number)
        if opening is not None and opening.seen_open:
            self._close_opening(number)
        elif not flapping:
            self._doors.record_closed(number)
            self._item_check_after_close(number)

    def _close_opening(self, number, closed_while_down=False):
        """The door of an opening was seen open and is closed now: complete
        it, unless a loading waits for its item sensor (see items.py)."""
        if not self._awaits_item(number, self.openings[number]):
            self._complete_opening(number, closed_while_down)

    def _complete_opening(self, number, closed_while_down=False):
        """The door of an opening has been opened and closed again: the
        opening ends, a loaded hold is ready, a patron's holds are
        collected -- one unit."""
        opening = self.openings[number]
        verdict, collected, ticket = None, [], None
        if opening.purpose is OpenPurpose.PICKUP:
            verdict = self._sessions.verdict_of(opening.session)
            collected = self._holds.collectable(number, opening.actor, verdict,
                                                opening.holds or None)
            ticket = self._loan_tickets.get(opening.session)
        loaded = alarm = None
        with self.store.unit() as unit:
            self._doors.write_completed(unit, opening)
            if opening.purpose is OpenPurpose.LOADING:
                loaded = self._holds.write_loaded(unit, opening)
            if self._holds.write_collected(unit, collected, opening, verdict,
                                           closed_while_down, ticket):
                alarm = self._alarms.write_raise(unit, AlarmKind.LOAN_FAILED, None)
        del self.openings[number]
        self._alarms.raised(alarm)
        if not any(o.session == opening.session for o in self.openings.values()):
            self._loan_tickets.pop(opening.session, None)
        if loaded is not None:
            self._holds.put(loaded)
            log.info("hold %s ready in compartment %d", loaded.id, number)
        self._holds.collected(collected)
        if opening.purpose is OpenPurpose.PICKUP:
            self._sessions.door_status(number, "closed", opening.session)
        self._item_check_after_close(number, opening, collected)
        self._dirty(state=True)

    def _door_jammed(self, number):
        """An unlock with no door movement: the command fired, the door did
        not open.  The opening ends, a loading hold waits to be loaded again
        and the jam alarm is raised -- one unit.  If the disk refuses it,
        the opening stays, marked jammed (not due again), until the disk
        takes writes again (``_finish_storage_recovery``) or its door opens."""
        opening = self.openings[number]
        opening.jammed = True
        with self.store.unit() as unit:
            self._doors.write_jammed(unit, opening)
            back = self._holds.write_loading_aborted(unit, opening)
            alarm = self._alarms.write_raise(unit, AlarmKind.DOOR_JAMMED, number)
        del self.openings[number]
        self._holds.put(back)
        self._alarms.raised(alarm)
        self._sessions.door_status(number, "jammed", opening.session)
        self._dirty(state=True)

