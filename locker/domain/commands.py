"""Commands from staff and from central, as methods of the locker core.

Mixed into :class:`locker.core.Locker`, so they run on the controller thread
like every handler.  Each validates its arguments, refuses with
:class:`CommandError` (a stable ``code`` and a message for people) and
changes nothing when refused, and returns a JSON-ready dict.  Idempotent
where a retry is likely: announcing the same hold again, cancelling a
cancelled hold, setting the out-of-service state it already has.
"""

from __future__ import annotations

import logging
import random

from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.identity import pseudonym
from bibbox.locker.domain.model import EventType, Hold, HoldState, Item, OpenPurpose, DoorState
from bibbox.locker.domain.patterns import HEX64_RE, HOLD_ID_RE, MAX_ITEMS

log = logging.getLogger("bibbox.locker")


def _text(value, name, max_len=200, required=True):
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_len:
        raise CommandError("bad_argument",
                           f"{name} must be text of 1-{max_len} characters")
    return value.strip()


class CommandsMixin:
    """Staff and central commands.  See the module docstring."""

    # -- lookups ---------------------------------------------------------------
    def _compartment_or_error(self, number):
        if isinstance(number, bool) or not isinstance(number, int) or \
                number not in self.compartments:
            raise CommandError("unknown_compartment", f"there is no compartment {number!r}")
        return self.compartments[number]

    def _hold_or_error(self, hold_id):
        hold = self.holds.get(hold_id) if isinstance(hold_id, str) else None
        if hold is None:
            raise CommandError("unknown_hold", f"there is no active hold {hold_id!r}")
        return hold

    def holds_in(self, number):
        """Holds physically in a compartment (whatever their state)."""
        return [h for h in self.holds.values() if h.compartment == number]

    def _free_compartments(self):
        used = {h.compartment for h in self.holds.values() if h.compartment is not None}
        suspect = {a.compartment for a in self.alarms.values()
                   if a.kind.value in ("door_jammed", "door_forced", "sensor_flapping")}
        return [n for n, c in sorted(self.compartments.items())
                if n not in used and n not in suspect and not c.out_of_service
                and n not in self.openings and self.doors[n].state is not DoorState.OPEN]

    def _new_pickup_number(self):
        taken = {h.pickup_number for h in self.holds.values()}
        rng = random.Random()
        for _ in range(1000):
            number = f"{rng.randint(1000, 9999)}"
            if number not in taken:
                return number
        raise CommandError("no_pickup_number", "no free pickup number")

    # -- central: announced holds ---------------------------------------------------
    def _parse_hold(self, spec, actor):
        """Validate an announced hold; return a Hold in state ANNOUNCED."""
        if not isinstance(spec, dict):
            raise CommandError("bad_argument", "a hold must be an object")
        hold_id = spec.get("hold_id")
        if not isinstance(hold_id, str) or not HOLD_ID_RE.match(hold_id):
            raise CommandError("bad_argument", "hold_id must be 1-64 letters, digits or ._:-")
        patron_hash = spec.get("patron_hash")
        if not isinstance(patron_hash, str) or not HEX64_RE.match(patron_hash):
            raise CommandError("bad_argument",
                               "patron_hash must be the 64-hex keyed hash of the card")
        items = spec.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
            raise CommandError("bad_argument", f"items must be a list of 1-{MAX_ITEMS} items")
        parsed = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise CommandError("bad_argument", f"items[{i}] must be an object")
            parsed.append(Item(_text(item.get("barcode"), f"items[{i}].barcode", 64),
                               _text(item.get("title", ""), f"items[{i}].title", 200,
                                     required=False)))
        deadline = spec.get("deadline")
        if deadline is not None and (isinstance(deadline, bool) or
                                     not isinstance(deadline, (int, float))):
            raise CommandError("bad_argument", "deadline must be Unix seconds")
        size = spec.get("size")
        if size is not None and size not in self.cfg.holds.sizes:
            raise CommandError("bad_argument", f"size must be one of {self.cfg.holds.sizes}")
        pickup_number = spec.get("pickup_number") or self._new_pickup_number()
        _text(pickup_number, "pickup_number", 16)
        code_hash = spec.get("pickup_code_hash")
        if code_hash is not None and (not isinstance(code_hash, str) or
                                      not HEX64_RE.match(code_hash)):
            raise CommandError("bad_argument", "pickup_code_hash must be 64 hex")
        return Hold(id=hold_id, patron_hash=patron_hash, items=tuple(parsed),
                    pickup_number=str(pickup_number),
                    deadline=float(deadline) if deadline is not None else 0.0,
                    state=HoldState.ANNOUNCED, size=size, pickup_code_hash=code_hash)

    def announce_hold(self, hold_id, patron_hash, items, deadline=None, size=None,
                      pickup_number=None, pickup_code_hash=None, actor="central"):
        """Central announces a hold before staff load it.  Announcing a hold
        that exists already changes nothing and reports its state."""
        hold = self._parse_hold({"hold_id": hold_id, "patron_hash": patron_hash,
                                 "items": items, "deadline": deadline, "size": size,
                                 "pickup_number": pickup_number,
                                 "pickup_code_hash": pickup_code_hash}, actor)
        existing = self.holds.get(hold.id) or self.store.hold(hold.id)
        if existing is not None:
            return {"hold_id": hold.id, "state": existing.state.value, "changed": False}
        with self.store.unit() as unit:
            unit.put_hold(hold)
            unit.event(EventType.HOLD_ANNOUNCED, {"hold_id": hold.id,
                                                  "pickup_number": hold.pickup_number})
        self.holds[hold.id] = hold
        self._dirty(state=True)
        return {"hold_id": hold.id, "state": hold.state.value, "changed": True}

    def sync_announced(self, holds, actor="central"):
        """Make the announced (not yet loaded) holds exactly ``holds``: add
        the new ones, cancel announced ones central no longer lists."""
        if not isinstance(holds, list) or len(holds) > 5000:
            raise CommandError("bad_argument", "holds must be a list of at most 5000")
        parsed = [self._parse_hold(spec, actor) for spec in holds]  # all or nothing
        wanted = {h.id for h in parsed}
        stale = [h for h in self.holds.values()
                 if h.state is HoldState.ANNOUNCED and h.id not in wanted]
        added = [h for h in parsed if h.id not in self.holds and self.store.hold(h.id) is None]
        with self.store.unit() as unit:
            for hold in added:
                unit.put_hold(hold)
                unit.event(EventType.HOLD_ANNOUNCED, {"hold_id": hold.id,
                                                      "pickup_number": hold.pickup_number})
            for hold in stale:
                unit.put_hold(hold.with_(state=HoldState.CANCELLED))
                unit.event(EventType.HOLD_CANCELLED, {"hold_id": hold.id,
                                                      "compartment": None,
                                                      "reason": "not in central's list"})
        for hold in added:
            self.holds[hold.id] = hold
        for hold in stale:
            del self.holds[hold.id]
        self._dirty(state=True)
        return {"added": len(added), "cancelled": len(stale), "announced": len(wanted)}

    def announced_holds(self):
        """Holds central announced that are not loaded yet (for the staff page)."""
        return [{"hold_id": h.id, "pickup_number": h.pickup_number, "size": h.size,
                 "items": [i.as_dict() for i in h.items],
                 "patron": pseudonym(h.patron_hash)}
                for h in sorted(self.holds.values(), key=lambda h: h.id)
                if h.state is HoldState.ANNOUNCED]

    def cancel_hold(self, hold_id, actor, reason="cancelled"):
        """Cancel a hold.  One still in a compartment must then be unloaded."""
        _text(actor, "actor", 64)
        stored = self.store.hold(hold_id) if isinstance(hold_id, str) else None
        if stored is not None and stored.state is HoldState.CANCELLED:
            return {"hold_id": hold_id, "state": "cancelled", "changed": False}
        hold = self._hold_or_error(hold_id)
        if hold.state is HoldState.LOADING or hold.compartment in self.openings:
            raise CommandError("busy", "the compartment of this hold is being opened; "
                               "try again when its door is closed")
        cancelled = hold.with_(state=HoldState.CANCELLED)
        with self.store.unit() as unit:
            unit.put_hold(cancelled)
            unit.event(EventType.HOLD_CANCELLED, {"hold_id": hold.id,
                                                  "compartment": hold.compartment,
                                                  "reason": _text(reason, "reason")})
            unit.audit(actor, "hold_cancelled", compartment=hold.compartment,
                       patron=pseudonym(hold.patron_hash), reason=reason,
                       detail=f"hold {hold.id}")
        if hold.compartment is None:
            del self.holds[hold.id]
        else:
            self.holds[hold.id] = cancelled
        self._dirty(state=True)
        return {"hold_id": hold.id, "state": "cancelled", "changed": True,
                "compartment": hold.compartment}

    # -- staff: loading ------------------------------------------------------------
    def propose_compartment(self, size=None, patron_hash=None):
        """The smallest free compartment that fits ``size`` (or the patron's
        own compartment when sharing is allowed); None when nothing fits."""
        sizes = list(self.cfg.holds.sizes)
        if size is not None and size not in sizes:
            raise CommandError("bad_argument", f"size must be one of {sizes}")
        rank = sizes.index(size) if size else 0
        if self.cfg.holds.share_compartments and patron_hash:
            for hold in self.holds.values():
                number = hold.compartment
                if hold.patron_hash == patron_hash and hold.state is HoldState.READY and \
                        number not in self.openings and \
                        not self.compartments[number].out_of_service and \
                        sizes.index(self.compartments[number].size) >= rank:
                    return number
        fitting = [n for n in self._free_compartments()
                   if sizes.index(self.compartments[n].size) >= rank]
        return min(fitting, key=lambda n: (sizes.index(self.compartments[n].size), n),
                   default=None)

    def load_hold(self, actor, *, hold_id=None, patron_hash=None, items=None, size=None,
                  compartment=None, pickup_days=None, pickup_number=None):
        """Start loading: open a compartment for a hold.  Either ``hold_id``
        (an announced hold) or ``patron_hash`` + ``items`` (a new hold).
        The hold becomes ready when the door is seen open and closed again."""
        _text(actor, "actor", 64)
        if hold_id is not None and hold_id in self.holds:
            hold = self.holds[hold_id]
            if hold.state is not HoldState.ANNOUNCED:
                raise CommandError("hold_not_announced",
                                   f"hold {hold_id} is {hold.state.value}, not waiting to be loaded")
        else:
            hold = self._parse_hold({"hold_id": hold_id or self._new_hold_id(),
                                     "patron_hash": patron_hash, "items": items,
                                     "size": size, "pickup_number": pickup_number}, actor)
            if self.store.hold(hold.id) is not None:
                raise CommandError("duplicate_hold", f"hold {hold.id} exists already")
        if pickup_days is not None and (isinstance(pickup_days, bool) or
                                        not isinstance(pickup_days, (int, float)) or
                                        not 1 <= pickup_days <= 60):
            raise CommandError("bad_argument", "pickup days must be 1-60")
        if compartment is None:
            compartment = self.propose_compartment(size or hold.size, hold.patron_hash)
            if compartment is None:
                raise CommandError("no_free_compartment",
                                   "no free compartment of that size or larger")
        else:
            comp = self._compartment_or_error(compartment)
            if comp.out_of_service:
                raise CommandError("out_of_service",
                                   f"compartment {compartment} is out of service")
            if compartment in self.openings:
                raise CommandError("busy", f"compartment {compartment} is being opened")
            if self.doors[compartment].state is DoorState.OPEN:
                raise CommandError("door_open", f"door {compartment} is open; close it "
                                   "first or choose another door")
            others = [h for h in self.holds_in(compartment) if h.patron_hash != hold.patron_hash]
            mine = [h for h in self.holds_in(compartment) if h.patron_hash == hold.patron_hash]
            if others or (mine and not self.cfg.holds.share_compartments):
                raise CommandError("compartment_in_use",
                                   f"compartment {compartment} holds another hold")
        days = pickup_days if pickup_days is not None else self.cfg.holds.pickup_days
        deadline = hold.deadline or (self.clock.wall() + days * 86400)
        if pickup_days is not None:
            deadline = self.clock.wall() + days * 86400
        loading = hold.with_(state=HoldState.LOADING, compartment=compartment,
                             deadline=deadline, size=self.compartments[compartment].size)
        with self.store.unit() as unit:
            unit.put_hold(loading)
        self.holds[loading.id] = loading
        self._open([compartment], OpenPurpose.LOADING, session=loading.id, actor=actor,
                   reason=f"loading hold {loading.id}")
        self._dirty(state=True)
        return {"hold_id": loading.id, "compartment": compartment,
                "pickup_number": loading.pickup_number, "deadline": deadline}

    def _new_hold_id(self):
        while True:
            hold_id = f"L-{random.randint(0, 16**8 - 1):08x}"
            if hold_id not in self.holds and self.store.hold(hold_id) is None:
                return hold_id

    def _finish_loading(self, opening, unit):
        """The loading door opened and closed: the hold is ready."""
        hold = self.holds.get(opening.session)
        if hold is None or hold.state is not HoldState.LOADING:
            return None
        ready = hold.with_(state=HoldState.READY)
        unit.put_hold(ready)
        unit.event(EventType.HOLD_READY, {
            "hold_id": ready.id, "compartment": ready.compartment,
            "pickup_number": ready.pickup_number, "deadline": ready.deadline,
            "patron_hash": ready.patron_hash, "items": [i.as_dict() for i in ready.items]})
        unit.audit(opening.actor, "loaded", compartment=ready.compartment,
                   patron=pseudonym(ready.patron_hash), detail=f"hold {ready.id}")
        return ready

    def _abort_loading(self, opening):
        """The loading door never opened: the hold waits to be loaded again."""
        hold = self.holds.get(opening.session)
        if hold is None or hold.state is not HoldState.LOADING:
            return
        back = hold.with_(state=HoldState.ANNOUNCED, compartment=None)
        with self.store.unit() as unit:
            unit.put_hold(back)
            unit.audit(opening.actor, "loading_failed", compartment=hold.compartment,
                       reason="door did not open", detail=f"hold {hold.id}")
        self.holds[hold.id] = back

    # -- staff: unloading, moving, opening ------------------------------------------
    def unload_list(self):
        """What must come out: expired and cancelled holds still inside, and
        compartments that need a look (jammed, forced, out of service with
        content)."""
        out = []
        for hold in sorted(self.holds.values(), key=lambda h: (h.compartment or 0, h.id)):
            if hold.compartment is not None and hold.state in (HoldState.EXPIRED,
                                                               HoldState.CANCELLED):
                out.append({"compartment": hold.compartment, "hold_id": hold.id,
                            "why": hold.state.value,
                            "items": [i.as_dict() for i in hold.items]})
        for number, comp in sorted(self.compartments.items()):
            kinds = [a.kind.value for a in self.alarms.values() if a.compartment == number]
            if comp.out_of_service and self.holds_in(number):
                kinds.append("out_of_service")
            for kind in kinds:
                if kind in ("door_jammed", "door_forced", "out_of_service"):
                    out.append({"compartment": number, "hold_id": None, "why": kind,
                                "items": []})
        return out

    def open_compartment(self, number, actor, reason, purpose="staff"):
        """Open a door by hand (staff or central).  A reason is required and
        audited; nothing is collected when it closes."""
        self._compartment_or_error(number)
        _text(actor, "actor", 64)
        reason = _text(reason, "reason")
        purposes = {"staff": OpenPurpose.STAFF, "central": OpenPurpose.CENTRAL,
                    "unloading": OpenPurpose.UNLOADING, "selftest": OpenPurpose.SELFTEST}
        if purpose not in purposes:
            raise CommandError("bad_argument", f"purpose must be one of {sorted(purposes)}")
        if number in self.openings:
            raise CommandError("busy", f"compartment {number} is already being opened")
        self._open([number], purposes[purpose], actor=actor, reason=reason)
        with self.store.unit() as unit:
            unit.event(EventType.MANUAL_OPEN, {"compartment": number, "actor": actor,
                                               "reason": reason, "purpose": purpose})
        self._dirty(state=True)
        return {"compartment": number, "opening": True}

    def confirm_removed(self, number, actor, reason="unloaded"):
        """Staff took the contents out and closed the door: every hold in the
        compartment is removed and the compartment is free."""
        self._compartment_or_error(number)
        _text(actor, "actor", 64)
        reason = _text(reason, "reason")
        if number in self.openings or self.doors[number].state is DoorState.OPEN:
            raise CommandError("door_open", f"close door {number} first")
        holds = self.holds_in(number)
        with self.store.unit() as unit:
            for hold in holds:
                unit.put_hold(hold.with_(state=HoldState.REMOVED))
                unit.event(EventType.HOLD_REMOVED, {"hold_id": hold.id, "compartment": number,
                                                    "reason": reason,
                                                    "was": hold.state.value})
                unit.audit(actor, "removed", compartment=number,
                           patron=pseudonym(hold.patron_hash), reason=reason,
                           detail=f"hold {hold.id} ({hold.state.value})")
        for hold in holds:
            del self.holds[hold.id]
        self._dirty(state=True)
        return {"compartment": number, "removed": [h.id for h in holds]}

    def move_hold(self, hold_id, to_number, actor):
        """Staff moved a hold's material to another compartment."""
        hold = self._hold_or_error(hold_id)
        target = self._compartment_or_error(to_number)
        _text(actor, "actor", 64)
        if hold.compartment is None:
            raise CommandError("not_in_locker", f"hold {hold_id} is not in a compartment")
        if target.out_of_service:
            raise CommandError("out_of_service", f"compartment {to_number} is out of service")
        if any(h.patron_hash != hold.patron_hash for h in self.holds_in(to_number)):
            raise CommandError("compartment_in_use", f"compartment {to_number} is in use")
        if {hold.compartment, to_number} & set(self.openings):
            raise CommandError("busy", "a door involved is being opened")
        moved = hold.with_(compartment=to_number, size=target.size)
        with self.store.unit() as unit:
            unit.put_hold(moved)
            unit.event(EventType.HOLD_MOVED, {"hold_id": hold.id, "from": hold.compartment,
                                              "to": to_number})
            unit.audit(actor, "hold_moved", compartment=to_number,
                       patron=pseudonym(hold.patron_hash),
                       detail=f"hold {hold.id} from {hold.compartment}")
        self.holds[hold.id] = moved
        self._dirty(state=True)
        return {"hold_id": hold.id, "compartment": to_number}

    def set_out_of_service(self, number, reason, actor):
        """Take a compartment out of service (``reason``) or back (None)."""
        comp = self._compartment_or_error(number)
        _text(actor, "actor", 64)
        if reason is not None:
            reason = _text(reason, "reason")
        if comp.out_of_service == reason or (reason is None and not comp.out_of_service):
            return {"compartment": number, "out_of_service": reason, "changed": False}
        new = comp.__class__(comp.number, comp.size, reason)
        with self.store.unit() as unit:
            unit.put_compartment(new)
            unit.event(EventType.COMPARTMENT_SERVICE, {"compartment": number,
                                                       "out_of_service": reason is not None,
                                                       "reason": reason or ""})
            unit.audit(actor, "out_of_service" if reason else "in_service",
                       compartment=number, reason=reason or "")
        self.compartments[number] = new
        self._dirty(state=True)
        return {"compartment": number, "out_of_service": reason, "changed": True}

    def expire_now(self, actor="central"):
        """Expire every ready hold whose deadline has passed, now."""
        before = sum(1 for h in self.holds.values() if h.state is HoldState.EXPIRED)
        self._expire_holds()
        after = sum(1 for h in self.holds.values() if h.state is HoldState.EXPIRED)
        return {"expired": after - before}

    def clear_alarm(self, kind, number, actor):
        """Staff clear an alarm they have dealt with.  One whose cause is
        still there (a door still open) is raised again by the next event."""
        from bibbox.locker.domain.model import AlarmKind
        try:
            alarm_kind = AlarmKind(kind)
        except ValueError:
            raise CommandError("bad_argument", f"unknown alarm {kind!r}") from None
        key_number = None if number in (None, 0) else number
        if alarm_kind is not AlarmKind.READER_OFFLINE:
            self._compartment_or_error(number)
        from bibbox.locker.domain.model import Alarm
        if Alarm(alarm_kind, key_number).key not in self.alarms:
            raise CommandError("unknown_alarm", "that alarm is not raised")
        self._clear_alarm(alarm_kind, key_number, actor=_text(actor, "actor", 64))
        return {"alarm": kind, "compartment": key_number, "cleared": True}
