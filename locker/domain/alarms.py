"""The locker's alarms: which are raised, and their records.

:class:`Alarms` owns the raised alarms.  Raising or clearing one writes it,
its event and its audit line in one store unit, and only then changes
memory.  A use case that raises an alarm as part of a larger change uses
:meth:`Alarms.write_raise` inside its own unit and :meth:`Alarms.raised`
after the commit.

The storage alarm is the exception: the disk refuses it, so it lives in
memory only (:meth:`Alarms.storage_failed`) and is recorded after the fact
once writes succeed again (:meth:`Alarms.storage_recovered`).
"""

from __future__ import annotations

import logging

from bibbox.locker.domain.model import Alarm, AlarmKind, EventType

log = logging.getLogger("bibbox.locker")

# Alarms that make a compartment unfit to take a new hold: its door or
# sensor in doubt, or an item sensed inside that should not be there.
SUSPECT = (AlarmKind.DOOR_JAMMED, AlarmKind.DOOR_FORCED, AlarmKind.SENSOR_FLAPPING,
           AlarmKind.UNEXPECTED_ITEM, AlarmKind.ITEM_LEFT_BEHIND)


class Alarms:
    """The raised alarms by key.  ``dirty(state=..., kiosk=...)`` is told
    which snapshots a change made stale."""

    def __init__(self, store, dirty):
        self.store, self.dirty = store, dirty
        self.active: dict[str, Alarm] = {}
        self.storage_error = ""       # why the disk refused, while it does

    def load(self, rows):
        """The alarms stored by a previous run."""
        self.active = {}
        for row in rows:
            kind = AlarmKind(row["kind"])
            board = row["key"].split(":", 1)[1] if kind is AlarmKind.BOARD_OFFLINE else ""
            alarm = Alarm(kind, row["compartment"], board)
            self.active[alarm.key] = alarm

    def is_raised(self, kind, compartment=None, board=""):
        """Is ``kind`` up for ``compartment`` (or lock ``board``)?  Builds the
        key as :attr:`Alarm.key` does, with no object per call."""
        key = f"{kind.value}:{board}" if board else f"{kind.value}:{compartment or 0}"
        return key in self.active

    def suspect_compartments(self):
        """Compartments unfit for a new hold (see :data:`SUSPECT`)."""
        return {a.compartment for a in self.active.values() if a.kind in SUSPECT}

    # -- raising and clearing ---------------------------------------------------
    def write_raise(self, unit, kind, compartment, board=""):
        """Record ``kind`` in ``unit``; the Alarm to pass to :meth:`raised`
        after the commit, or None if it is raised already.  ``board`` names
        the lock board of a board alarm ("bus/board")."""
        alarm = Alarm(kind, compartment, board)
        if alarm.key in self.active:
            return None
        unit.raise_alarm(alarm.key, kind.value, compartment)
        unit.event(EventType.ALARM_RAISED, {"alarm": kind.value, "compartment": compartment,
                                            **_board(board)})
        unit.audit("system", "alarm_raised", compartment=compartment, reason=kind.value,
                   detail=board)
        return alarm

    def raised(self, alarm):
        """``alarm`` (from :meth:`write_raise`) is committed."""
        if alarm is None:
            return
        self.active[alarm.key] = alarm
        log.warning("ALARM raised: %s%s%s", alarm.kind.value,
                    f" (compartment {alarm.compartment})" if alarm.compartment else "",
                    f" (board {alarm.board})" if alarm.board else "")
        self.dirty(state=True)

    def raise_(self, kind, compartment, board=""):
        """Raise ``kind`` in a unit of its own (nothing if raised already)."""
        if self.is_raised(kind, compartment, board):
            return
        with self.store.unit() as unit:
            alarm = self.write_raise(unit, kind, compartment, board)
        self.raised(alarm)

    def clear(self, kind, compartment, actor="system", board=""):
        """Clear ``kind`` in a unit of its own (nothing if not raised)."""
        alarm = Alarm(kind, compartment, board)
        if alarm.key not in self.active:
            return
        with self.store.unit() as unit:
            unit.clear_alarm(alarm.key)
            unit.event(EventType.ALARM_CLEARED, {"alarm": kind.value,
                                                 "compartment": compartment, **_board(board)})
            unit.audit(actor, "alarm_cleared", compartment=compartment, reason=kind.value,
                       detail=board)
        del self.active[alarm.key]
        log.warning("alarm cleared: %s%s%s", kind.value,
                    f" (compartment {compartment})" if compartment else "",
                    f" (board {board})" if board else "")
        self.dirty(state=True)

    # -- the storage alarm --------------------------------------------------------
    def storage_failed(self, exc):
        """The disk refused a write.  True if this raised the storage alarm
        (logged once), False if it was up already."""
        alarm = Alarm(AlarmKind.STORAGE_ERROR, None)
        if alarm.key in self.active:
            log.debug("database write refused again: %s", exc)
            return False
        self.active[alarm.key] = alarm
        self.storage_error = str(exc)
        log.critical("ALARM raised: storage_error: %s; nothing of that change was "
                     "stored and no door opens until the database accepts writes "
                     "again (disk full? read-only?)", exc)
        self.dirty(state=True, kiosk=True)
        return True

    def storage_recovered(self):
        """A write succeeded: clear the storage alarm and record, after the
        fact, that it was raised and cleared.  False if it was not up."""
        key = Alarm(AlarmKind.STORAGE_ERROR, None).key
        if key not in self.active:
            return False
        del self.active[key]
        log.warning("alarm cleared: storage_error (the database accepts writes again)")
        self.dirty(state=True, kiosk=True)
        with self.store.unit() as unit:
            for type_ in (EventType.ALARM_RAISED, EventType.ALARM_CLEARED):
                unit.event(type_, {"alarm": AlarmKind.STORAGE_ERROR.value,
                                   "compartment": None})
            unit.audit("system", "alarm_raised", reason=AlarmKind.STORAGE_ERROR.value,
                       detail=self.storage_error[:200])
            unit.audit("system", "alarm_cleared", reason=AlarmKind.STORAGE_ERROR.value)
        return True


def _board(board):
    """The event field naming a lock board, only for board alarms."""
    return {"board": board} if board else {}
