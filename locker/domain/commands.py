"""Staff and central commands: the use cases that span holds, doors and
alarms.

:class:`Commands` composes the locker's parts; :class:`~bibbox.locker.domain.core.Locker`
exposes each command under the same name and runs it on the controller
thread like every handler.  Each validates its arguments, refuses with
:class:`CommandError` (a stable ``code`` and a message for people) and
changes nothing when refused, writes its change in one store unit, and
returns a JSON-ready dict.
"""

from __future__ import annotations

from bibbox.locker.domain import views
from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.hold_specs import compartment_or_error, free_text_field
from bibbox.locker.domain.holds import Placement
from bibbox.locker.domain.model import AlarmKind, Compartment, DoorState, EventType, OpenPurpose

OPEN_PURPOSES = {"staff": OpenPurpose.STAFF, "central": OpenPurpose.CENTRAL,
                 "unloading": OpenPurpose.UNLOADING, "selftest": OpenPurpose.SELFTEST}


class Commands:
    """The staff and central commands over the locker's parts.
    ``compartments`` is the locker's own dict (changed in place)."""

    def __init__(self, store, compartments, holds, doors, alarms, dirty):
        self.store, self.compartments = store, compartments
        self.holds, self.doors, self.alarms, self.dirty = holds, doors, alarms, dirty

    def _placement(self):
        """Where a hold may go now (see :class:`Placement`)."""
        busy = frozenset(self.doors.openings)
        open_doors = frozenset(n for n, d in self.doors.tracks.items()
                               if d.state is DoorState.OPEN)
        unfit = self.holds.used_compartments() | self.alarms.suspect_compartments()
        free = [n for n, c in sorted(self.compartments.items())
                if n not in unfit and not c.out_of_service and n not in busy
                and n not in open_doors]
        return Placement(self.compartments, busy, open_doors, free)

    def announce_hold(self, hold_id, patron_hash, items, deadline=None, size=None,
                      pickup_number=None, pickup_code_hash=None, actor="central"):
        """Central announces a hold before staff load it.  Announcing a hold
        that exists already changes nothing and reports its state."""
        return self.holds.announce(hold_id, patron_hash, items, deadline, size,
                                   pickup_number, pickup_code_hash, actor)

    def sync_announced(self, holds, actor="central"):
        """Make the announced (not yet loaded) holds exactly ``holds``: add
        the new ones, cancel announced ones central no longer lists."""
        return self.holds.sync_announced(holds, actor)

    def announced_holds(self):
        """Holds central announced that are not loaded yet (for the staff page)."""
        return self.holds.announced()

    def cancel_hold(self, hold_id, actor, reason="cancelled"):
        """Cancel a hold.  One still in a compartment must then be unloaded."""
        return self.holds.cancel(hold_id, actor, reason, busy=set(self.doors.openings))

    def propose_compartment(self, size=None, patron_hash=None):
        """The smallest free compartment that fits ``size`` (or the patron's
        own compartment when sharing is allowed); None when nothing fits."""
        return self.holds.propose(size, patron_hash, self._placement())

    def load_hold(self, actor, *, hold_id=None, patron_hash=None, items=None, size=None,
                  compartment=None, pickup_days=None, pickup_number=None):
        """Start loading: open a compartment for a hold.  Either ``hold_id``
        (an announced hold) or ``patron_hash`` + ``items`` (a new hold).
        The hold in state LOADING and its door's opening are written in one
        unit; the hold becomes ready when the door is seen open and closed."""
        loading = self.holds.plan_loading(
            actor, self._placement(), hold_id=hold_id, patron_hash=patron_hash, items=items,
            size=size, compartment=compartment, pickup_days=pickup_days,
            pickup_number=pickup_number)
        openings = self.doors.plan([loading.compartment], OpenPurpose.LOADING,
                                   session=loading.id, actor=actor,
                                   reason=f"loading hold {loading.id}")
        with self.store.unit() as unit:
            unit.put_hold(loading)
            self.doors.write_openings(unit, openings)
        self.holds.put(loading)
        self.doors.started(openings)
        self.dirty(state=True)
        return {"hold_id": loading.id, "compartment": loading.compartment,
                "pickup_number": loading.pickup_number, "deadline": loading.deadline}

    def unload_list(self):
        """What must come out (see :func:`views.unload_list`)."""
        return views.unload_list(compartments=self.compartments, holds=self.holds.holds,
                                 alarms=self.alarms.active)

    def open_compartment(self, number, actor, reason, purpose="staff"):
        """Open a door by hand (staff or central).  A reason is required and
        audited; nothing is collected when it closes.  The opening and its
        event are one unit."""
        compartment_or_error(self.compartments, number)
        actor = free_text_field(actor, "actor", 64)
        reason = free_text_field(reason, "reason")
        if purpose not in OPEN_PURPOSES:
            raise CommandError("bad_argument", f"purpose must be one of {sorted(OPEN_PURPOSES)}")
        if number in self.doors.openings:
            raise CommandError("busy", f"compartment {number} is already being opened")
        openings = self.doors.plan([number], OPEN_PURPOSES[purpose], actor=actor,
                                   reason=reason)
        with self.store.unit() as unit:
            self.doors.write_openings(unit, openings)
            unit.event(EventType.MANUAL_OPEN, {"compartment": number, "actor": actor,
                                               "reason": reason, "purpose": purpose})
        self.doors.started(openings)
        self.dirty(state=True)
        return {"compartment": number, "opening": True}

    def confirm_removed(self, number, actor, reason="unloaded"):
        """Staff took the contents out and closed the door: every hold in the
        compartment is removed and the compartment is free."""
        compartment_or_error(self.compartments, number)
        actor = free_text_field(actor, "actor", 64)
        reason = free_text_field(reason, "reason")
        if number in self.doors.openings or self.doors.state_of(number) is DoorState.OPEN:
            raise CommandError("door_open", f"close door {number} first")
        return self.holds.remove_all(number, actor, reason)

    def move_hold(self, hold_id, to_number, actor):
        """Staff moved a hold's material to another compartment."""
        return self.holds.move(hold_id, to_number, actor, self.compartments,
                               busy=set(self.doors.openings))

    def set_out_of_service(self, number, reason, actor):
        """Take a compartment out of service (``reason``) or back (None)."""
        comp = compartment_or_error(self.compartments, number)
        actor = free_text_field(actor, "actor", 64)
        if reason is not None:
            reason = free_text_field(reason, "reason")
        if comp.out_of_service == reason or (reason is None and not comp.out_of_service):
            return {"compartment": number, "out_of_service": reason, "changed": False}
        new = Compartment(comp.number, comp.size, reason)
        with self.store.unit() as unit:
            unit.put_compartment(new)
            unit.event(EventType.COMPARTMENT_SERVICE, {"compartment": number,
                                                       "out_of_service": reason is not None,
                                                       "reason": reason or ""})
            unit.audit(actor, "out_of_service" if reason else "in_service",
                       compartment=number, reason=reason or "")
        self.compartments[number] = new
        self.dirty(state=True)
        return {"compartment": number, "out_of_service": reason, "changed": True}

    def expire_now(self, actor="central"):
        """Expire every ready hold whose deadline has passed, now."""
        return {"expired": self.holds.expire_due()}

    def clear_alarm(self, kind, number, actor):
        """Staff clear an alarm they have dealt with.  One whose cause is
        still there (a door still open) is raised again by the next event."""
        try:
            alarm_kind = AlarmKind(kind)
        except ValueError:
            raise CommandError("bad_argument", f"unknown alarm {kind!r}") from None
        key_number = None if number in (None, 0) else number
        if alarm_kind is not AlarmKind.READER_OFFLINE:
            compartment_or_error(self.compartments, number)
        if not self.alarms.is_raised(alarm_kind, key_number):
            raise CommandError("unknown_alarm", "that alarm is not raised")
        self.alarms.clear(alarm_kind, key_number, actor=free_text_field(actor, "actor", 64))
        return {"alarm": kind, "compartment": key_number, "cleared": True}

    def place_hold(self, hold, actor="system"):
        """Put a ready hold into a compartment directly (demo seeding, tests).
        Staff loading with door checks is :meth:`load_hold`."""
        return self.holds.place(hold, self.compartments, actor)
