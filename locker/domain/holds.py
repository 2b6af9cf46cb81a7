"""Holds: announced by central, loaded by staff, collected, expired, removed.

:class:`Holds` owns the active holds.  Its commands validate first, refuse
with :class:`CommandError` (changing nothing), and return a JSON-ready dict.
What a hold needs from the rest of the locker (which compartments are being
opened, which are free) comes in as a :class:`Placement`; a hold change
that goes with a door opening or closing is written in the caller's unit
(``write_*``), and memory follows the commit (:meth:`Holds.put`).
Idempotent where a retry is likely: announcing the same hold again,
cancelling a cancelled hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bibbox.locker.domain import patrons
from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.hold_specs import (compartment_or_error, new_hold_id, parse_hold,
                                             pickup_days_or_error, free_text_field)
from bibbox.locker.domain.calendar import end_of_local_day, last_local_date, zone
from bibbox.locker.domain.identity import pseudonym
from bibbox.locker.domain.model import EventType, HoldState, Item, OpenPurpose

log = logging.getLogger("bibbox.locker")
LIBRARY_VERIFIERS = ("sip2", "fbs")
LOAN_CHECKOUT, LOAN_CHECKIN = "checkout", "checkin"


@dataclass(frozen=True)
class Placement:
    """Where holds may go now: the compartments, those being opened
    (``busy``), those with an open door, and the free ones in order."""
    compartments: dict
    busy: frozenset
    open_doors: frozenset
    free: list


def ready_event(hold, tz):
    return {"hold_id": hold.id, "compartment": hold.compartment,
            "pickup_number": hold.pickup_number, "deadline": hold.deadline,
            "deadline_date": last_local_date(hold.deadline, tz),
            "patron_hash": hold.patron_hash, "items": [i.as_dict() for i in hold.items]}


class Holds:
    """The active holds by id (``holds``)."""

    def __init__(self, cfg, clock, store, dirty):
        self.cfg, self.clock, self.store, self.dirty = cfg, clock, store, dirty
        # the library system lends on collection and takes back on unloading
        self.circulation = cfg.verifier.kind in LIBRARY_VERIFIERS
        self.tz = zone(cfg.locker.timezone)
        self.holds = {}

    # -- queries ------------------------------------------------------------------
    def in_compartment(self, number):
        """Holds physically in a compartment (whatever their state)."""
        return [h for h in self.holds.values() if h.compartment == number]

    def used_compartments(self):
        return {h.compartment for h in self.holds.values() if h.compartment is not None}

    def ready_for(self, patron_hash):
        """The patron's holds that may be collected now."""
        wall = self.clock.wall()
        return [h for h in self.holds.values() if h.patron_hash == patron_hash and
                h.state is HoldState.READY and not h.expired_at(wall) and
                h.compartment is not None]

    def ready_with_items(self, barcodes):
        """The ready holds (not expired, in a compartment) whose every item
        is in ``barcodes``, whoever they were loaded for."""
        wall = self.clock.wall()
        return [h for h in self.holds.values() if h.state is HoldState.READY and
                not h.expired_at(wall) and h.compartment is not None and
                all(i.barcode in barcodes for i in h.items)]

    def has_expired(self, patron_hash):
        wall = self.clock.wall()
        return any(h.state is HoldState.EXPIRED or
                   (h.state is HoldState.READY and h.expired_at(wall))
                   for h in self.holds.values() if h.patron_hash == patron_hash)

    def _or_error(self, hold_id):
        hold = self.holds.get(hold_id) if isinstance(hold_id, str) else None
        if hold is None:
            raise CommandError("unknown_hold", f"there is no active hold {hold_id!r}")
        return hold

    def _parse(self, spec):
        return parse_hold(spec, self.cfg.holds.sizes,
                          {h.pickup_number for h in self.holds.values()})

    def put(self, hold):
        """``hold`` is committed: keep it (None: nothing to keep)."""
        if hold is not None:
            self.holds[hold.id] = hold

    # -- central: announced holds ---------------------------------------------------
    def announce(self, hold_id, patron_hash, items, deadline=None, size=None,
                 pickup_number=None, pickup_code_hash=None, actor="central"):
        hold = self._parse({"hold_id": hold_id, "patron_hash": patron_hash, "items": items,
                            "deadline": deadline, "size": size,
                            "pickup_number": pickup_number,
                            "pickup_code_hash": pickup_code_hash})
        existing = self.holds.get(hold.id) or self.store.hold(hold.id)
        if existing is not None:
            return {"hold_id": hold.id, "state": existing.state.value, "changed": False}
        with self.store.unit() as unit:
            unit.put_hold(hold)
            unit.event(EventType.HOLD_ANNOUNCED, {"hold_id": hold.id,
                                                  "pickup_number": hold.pickup_number})
        self.holds[hold.id] = hold
        self.dirty(state=True)
        return {"hold_id": hold.id, "state": hold.state.value, "changed": True}

    def sync_announced(self, holds, actor="central"):
        if not isinstance(holds, list) or len(holds) > 5000:
            raise CommandError("bad_argument", "holds must be a list of at most 5000")
        parsed = [self._parse(spec) for spec in holds]  # all or nothing
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
        self.dirty(state=True)
        return {"added": len(added), "cancelled": len(stale), "announced": len(wanted)}

    def announced(self):
        return [{"hold_id": h.id, "pickup_number": h.pickup_number, "size": h.size,
                 "items": [i.as_dict() for i in h.items],
                 "patron": pseudonym(h.patron_hash)}
                for h in sorted(self.holds.values(), key=lambda h: h.id)
                if h.state is HoldState.ANNOUNCED]

    def cancel(self, hold_id, actor, reason, busy):
        """``busy``: compartments being opened."""
        actor = free_text_field(actor, "actor", 64)
        stored = self.store.hold(hold_id) if isinstance(hold_id, str) else None
        if stored is not None and stored.state is HoldState.CANCELLED:
            return {"hold_id": hold_id, "state": "cancelled", "changed": False}
        hold = self._or_error(hold_id)
        if hold.state is HoldState.LOADING or hold.compartment in busy:
            raise CommandError("busy", "the compartment of this hold is being opened; "
                               "try again when its door is closed")
        cancelled = hold.with_(state=HoldState.CANCELLED)
        with self.store.unit() as unit:
            unit.put_hold(cancelled)
            unit.event(EventType.HOLD_CANCELLED, {"hold_id": hold.id,
                                                  "compartment": hold.compartment,
                                                  "reason": free_text_field(reason, "reason")})
            unit.audit(actor, "hold_cancelled", compartment=hold.compartment,
                       patron=pseudonym(hold.patron_hash), reason=reason,
                       detail=f"hold {hold.id}")
        if hold.compartment is None:
            del self.holds[hold.id]
        else:
            self.holds[hold.id] = cancelled
        self.dirty(state=True)
        return {"hold_id": hold.id, "state": "cancelled", "changed": True,
                "compartment": hold.compartment}

    # -- staff: loading ------------------------------------------------------------
    def propose(self, size, patron_hash, where: Placement):
        """The smallest free compartment that fits ``size`` (or the patron's
        own compartment when sharing is allowed); None when nothing fits."""
        sizes, comps = list(self.cfg.holds.sizes), where.compartments
        if size is not None and size not in sizes:
            raise CommandError("bad_argument", f"size must be one of {sizes}")
        rank = sizes.index(size) if size else 0
        if self.cfg.holds.share_compartments and patron_hash:
            for hold in self.holds.values():
                number = hold.compartment
                if hold.patron_hash == patron_hash and hold.state is HoldState.READY and \
                        number not in where.busy and not comps[number].out_of_service and \
                        sizes.index(comps[number].size) >= rank:
                    return number
        fitting = [n for n in where.free if sizes.index(comps[n].size) >= rank]
        return min(fitting, key=lambda n: (sizes.index(comps[n].size), n), default=None)

    def plan_loading(self, actor, where: Placement, *, hold_id=None, patron_hash=None,
                     items=None, size=None, compartment=None, pickup_days=None,
                     pickup_number=None):
        """The hold, in state LOADING in its compartment: validated, not
        written (the caller writes it with the door's opening, one unit)."""
        actor = free_text_field(actor, "actor", 64)
        if hold_id is not None and hold_id in self.holds:
            hold = self.holds[hold_id]
            if hold.state is not HoldState.ANNOUNCED:
                raise CommandError("hold_not_announced",
                                   f"hold {hold_id} is {hold.state.value}, not waiting to be loaded")
        else:
            hold = self._parse({"hold_id": hold_id or new_hold_id(self._taken),
                                "patron_hash": patron_hash, "items": items,
                                "size": size, "pickup_number": pickup_number})
            if self.store.hold(hold.id) is not None:
                raise CommandError("duplicate_hold", f"hold {hold.id} exists already")
        pickup_days_or_error(pickup_days)
        if compartment is None:
            compartment = self.propose(size or hold.size, hold.patron_hash, where)
            if compartment is None:
                raise CommandError("no_free_compartment",
                                   "no free compartment of that size or larger")
        else:
            self._check_loadable(compartment, hold, where)
        days = pickup_days if pickup_days is not None else self.cfg.holds.pickup_days
        deadline = hold.deadline
        if not deadline or pickup_days is not None:   # the end of a local day, DST or not
            deadline = end_of_local_day(self.clock.wall(), days, self.tz)
        return hold.with_(state=HoldState.LOADING, compartment=compartment,
                          deadline=deadline, size=where.compartments[compartment].size)

    def _taken(self, hold_id):
        return hold_id in self.holds or self.store.hold(hold_id) is not None

    def _check_loadable(self, compartment, hold, where):
        comp = compartment_or_error(where.compartments, compartment)
        if comp.out_of_service:
            raise CommandError("out_of_service", f"compartment {compartment} is out of service")
        if compartment in where.busy:
            raise CommandError("busy", f"compartment {compartment} is being opened")
        if compartment in where.open_doors:
            raise CommandError("door_open", f"door {compartment} is open; close it "
                               "first or choose another door")
        inside = self.in_compartment(compartment)
        others = [h for h in inside if h.patron_hash != hold.patron_hash]
        mine = [h for h in inside if h.patron_hash == hold.patron_hash]
        if others or (mine and not self.cfg.holds.share_compartments):
            raise CommandError("compartment_in_use",
                               f"compartment {compartment} holds another hold")

    def write_loaded(self, unit, opening):
        """The loading door opened and closed: the hold is ready (or None)."""
        hold = self.holds.get(opening.session)
        if hold is None or hold.state is not HoldState.LOADING:
            return None
        ready = hold.with_(state=HoldState.READY)
        unit.put_hold(ready)
        unit.event(EventType.HOLD_READY, ready_event(ready, self.tz))
        unit.audit(opening.actor, "loaded", compartment=ready.compartment,
                   patron=pseudonym(ready.patron_hash), detail=f"hold {ready.id}")
        return ready

    def write_loading_aborted(self, unit, opening, reason="door did not open"):
        """The loading door never opened: the hold waits to be loaded again."""
        hold = self.holds.get(opening.session)
        if opening.purpose is not OpenPurpose.LOADING or hold is None or \
                hold.state is not HoldState.LOADING:
            return None
        back = hold.with_(state=HoldState.ANNOUNCED, compartment=None)
        unit.put_hold(back)
        unit.audit(opening.actor, "loading_failed", compartment=hold.compartment,
                   reason=reason, detail=f"hold {hold.id}")
        return back

    def write_load_unconfirmed(self, unit, opening):
        """The loading door opened and closed but the item sensor saw
        nothing inside: as :meth:`write_loading_aborted`, with the event
        ``hold.load_unconfirmed``."""
        back = self.write_loading_aborted(unit, opening, reason="item not seen")
        if back is not None:
            unit.event(EventType.HOLD_LOAD_UNCONFIRMED, {
                "hold_id": back.id, "compartment": opening.compartment,
                "pickup_number": back.pickup_number})
        return back

    # -- collecting ----------------------------------------------------------------
    def collectable(self, number, actor, verdict, granted=None):
        """The ready holds in ``number`` that the pickup's opening granted
        (ids in ``granted``; when None -- an opening written before openings
        named their holds, or a reopen -- those of pseudonym ``actor``), as
        loaned (due dates from ``verdict``), state COLLECTED."""
        due_for = (verdict.due if verdict else {}) or {}
        default = verdict.default_due if verdict else None
        return [hold.with_(state=HoldState.COLLECTED,
                           items=tuple(Item(i.barcode, i.title, due_for.get(i.barcode, default))
                                       for i in hold.items))
                for hold in self.holds.values()
                if hold.compartment == number and hold.state is HoldState.READY and
                (hold.id in granted if granted is not None
                 else pseudonym(hold.patron_hash) == actor)]

    def write_collected(self, unit, collected, opening, verdict, closed_while_down,
                        ticket=None):
        """The collected holds, their events and, when the library system
        lends (``circulation``), one queued loan per item, sealed to the
        patron by ``ticket`` (a :class:`LoanTicket`).  Without a ticket (the
        daemon restarted while the door was open) the loan cannot be made:
        a ``loan.failed`` event per item says so, and the caller raises the
        staff alarm (returns True then)."""
        lost = False
        for hold in collected:
            unit.put_hold(hold)
            loans = "none"
            if self.circulation:
                loans = "queued" if ticket is not None else "failed"
                for item in hold.items:
                    if ticket is not None:
                        unit.queue_loan(LOAN_CHECKOUT, hold.id, item.barcode,
                                        patron_hash=hold.patron_hash, sealed=ticket.sealed,
                                        offline=ticket.offline)
                    else:
                        lost = True
                        unit.event(EventType.LOAN_FAILED, {
                            "hold_id": hold.id, "item": item.barcode, "kind": LOAN_CHECKOUT,
                            "reason": "no_identity"})
            unit.event(EventType.HOLD_COLLECTED, {
                "hold_id": hold.id, "compartment": opening.compartment,
                "patron_hash": hold.patron_hash,
                "items": [i.as_dict() for i in hold.items],
                "verified_by": verdict.reason if verdict and verdict.reason in (
                    patrons.BY_PICKUP_CODE, patrons.BY_PICKUP_NUMBER) else "pin",
                "loans": loans,
                "closed_while_offline": closed_while_down})
            owner = pseudonym(hold.patron_hash)
            unit.audit(opening.actor, "collected", compartment=opening.compartment,
                       patron=opening.actor, reason="patron pickup",
                       detail=f"hold {hold.id}" if owner == opening.actor
                       else f"hold {hold.id}, loaded for {owner}")
        return lost

    def collected(self, holds):
        for hold in holds:
            del self.holds[hold.id]
            log.info("hold %s collected from compartment %d", hold.id, hold.compartment)

    def mark_collected_by_staff(self, number, actor, reason):
        """Staff opened ``number`` for a patron on the phone, who took the
        items: its ready holds become collected, with ``reason`` (required,
        as typed) in the audit log.  No loan is made (the patron was not
        identified at the locker): with a library system, a ``loan.failed``
        per item says so.  Returns the holds' ids."""
        actor = free_text_field(actor, "actor", 64)
        reason = free_text_field(reason, "reason")
        if not reason.strip():
            raise CommandError("reason_required", "say why the holds are marked collected")
        ready = [h for h in self.in_compartment(number) if h.state is HoldState.READY]
        if not ready:
            raise CommandError("nothing_to_collect", f"compartment {number} holds nothing ready")
        with self.store.unit() as unit:
            for hold in ready:
                unit.put_hold(hold.with_(state=HoldState.COLLECTED))
                if self.circulation:
                    for item in hold.items:
                        unit.event(EventType.LOAN_FAILED, {
                            "hold_id": hold.id, "item": item.barcode, "kind": LOAN_CHECKOUT,
                            "reason": "no_identity"})
                unit.event(EventType.HOLD_COLLECTED, {
                    "hold_id": hold.id, "compartment": number,
                    "patron_hash": hold.patron_hash,
                    "items": [i.as_dict() for i in hold.items], "verified_by": "staff",
                    "loans": "failed" if self.circulation else "none",
                    "closed_while_offline": False})
                unit.audit(actor, "collected_by_staff", compartment=number,
                           patron=pseudonym(hold.patron_hash), reason=reason.strip(),
                           detail=f"hold {hold.id}")
        self.collected(ready)
        self.dirty(state=True)
        return [h.id for h in ready]

    # -- staff: removing, moving, placing ----------------------------------------------
    def remove_all(self, number, actor, reason):
        """Staff took everything out of ``number`` (its door is closed)."""
        holds = self.in_compartment(number)
        with self.store.unit() as unit:
            for hold in holds:
                unit.put_hold(hold.with_(state=HoldState.REMOVED))
                unit.event(EventType.HOLD_REMOVED, {"hold_id": hold.id, "compartment": number,
                                                    "reason": reason,
                                                    "was": hold.state.value})
                unit.audit(actor, "removed", compartment=number,
                           patron=pseudonym(hold.patron_hash), reason=reason,
                           detail=f"hold {hold.id} ({hold.state.value})")
                if self.circulation and hold.state in (HoldState.EXPIRED, HoldState.CANCELLED):
                    for item in hold.items:   # back to the shelf or the next reservation
                        unit.queue_loan(LOAN_CHECKIN, hold.id, item.barcode)
        for hold in holds:
            del self.holds[hold.id]
        self.dirty(state=True)
        return {"compartment": number, "removed": [h.id for h in holds]}

    def move(self, hold_id, to_number, actor, compartments, busy):
        hold = self._or_error(hold_id)
        target = compartment_or_error(compartments, to_number)
        actor = free_text_field(actor, "actor", 64)
        if hold.compartment is None:
            raise CommandError("not_in_locker", f"hold {hold_id} is not in a compartment")
        if target.out_of_service:
            raise CommandError("out_of_service", f"compartment {to_number} is out of service")
        if any(h.patron_hash != hold.patron_hash for h in self.in_compartment(to_number)):
            raise CommandError("compartment_in_use", f"compartment {to_number} is in use")
        if {hold.compartment, to_number} & busy:
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
        self.dirty(state=True)
        return {"hold_id": hold.id, "compartment": to_number}

    def place(self, hold, compartments, actor="system"):
        """Put a ready hold into a compartment directly (demo, tests)."""
        if hold.compartment not in compartments:
            raise CommandError("unknown_compartment",
                               f"compartment {hold.compartment} does not exist")
        if hold.id in self.holds:
            raise CommandError("duplicate_hold", f"hold {hold.id} already exists")
        hold = hold.with_(state=HoldState.READY)
        with self.store.unit() as unit:
            unit.put_hold(hold)
            unit.event(EventType.HOLD_READY, ready_event(hold, self.tz))
            unit.audit(actor, "hold_placed", compartment=hold.compartment,
                       patron=pseudonym(hold.patron_hash), detail=f"hold {hold.id}")
        self.holds[hold.id] = hold
        self.dirty(state=True)
        return hold

    # -- time ---------------------------------------------------------------------------
    def expire_due(self):
        """Expire every ready hold whose deadline has passed; how many."""
        wall = self.clock.wall()
        due = [h for h in self.holds.values()
               if h.state is HoldState.READY and h.expired_at(wall)]
        if not due:
            return 0
        with self.store.unit() as unit:
            for hold in due:
                unit.put_hold(hold.with_(state=HoldState.EXPIRED))
                unit.event(EventType.HOLD_EXPIRED, {
                    "hold_id": hold.id, "compartment": hold.compartment,
                    "deadline": hold.deadline,
                    "deadline_date": last_local_date(hold.deadline, self.tz)})
        for hold in due:
            self.holds[hold.id] = hold.with_(state=HoldState.EXPIRED)
            log.info("hold %s in compartment %s expired", hold.id, hold.compartment)
        self.dirty(state=True)
        return len(due)
