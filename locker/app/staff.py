"""The staff page's use cases and queries, in the application layer.

:class:`StaffService` takes the :class:`~bibbox.locker.app.controller.Controller`
and runs every use case on the controller thread (``controller.call``),
returning plain data (dicts, lists, numbers).  The web layer calls it by
name and never sees the :class:`Locker`.  It reads the locker only through
the locker's public methods and its readable ``holds``, ``openings``,
``doors``, ``alarms``, ``compartments``, ``store``, ``hasher`` and ``cfg``.

Three things do not run on the controller thread: hashing a card (the
locker's hasher is immutable), and the two reads of the audit log and of
"is this a patron's card?", which use a database connection of the calling
thread (``store.reader()``), so a long audit query never stalls the doors.

Commands naming a compartment take ``fp``, the fingerprint of the
compartment as the page showed it (:func:`fingerprint`); a compartment that
changed since is refused with ``stale`` and nothing happens.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from bibbox.locker.domain.calendar import days_left, zone
from bibbox.locker.domain.errors import CardFormatError, CommandError
from bibbox.locker.domain.identity import CardNumber, pseudonym
from bibbox.locker.domain.model import HoldState

log = logging.getLogger("bibbox.staff")


def refused(code, message, **params):
    """A CommandError whose ``params`` fill the page's translated message."""
    exc = CommandError(code, message)
    exc.params = params
    return exc


def fingerprint(comp, holds):
    """What the page must have seen of a compartment to act on it: its state,
    service, alarms and holds (from the ``state`` snapshot and its holds)."""
    basis = repr((comp["state"], comp.get("out_of_service"), tuple(comp.get("alarms") or ()),
                  tuple(sorted((h.id, h.state.value) for h in holds))))
    return hashlib.blake2b(basis.encode(), digest_size=6).hexdigest()


def _tile(comp, holds, opening, now, tz):
    state = comp["state"]
    if state == "free" and any(h.state.value == "cancelled" for h in holds):
        state = "unload"
    return {
        "n": comp["number"], "size": comp["size"], "state": state,
        "door": comp["door"], "lock": comp["lock"], "alarms": comp["alarms"],
        "oos": comp.get("out_of_service"), "deadline": comp.get("deadline"),
        "deadline_date": comp.get("deadline_date"),
        "days_left": days_left(comp.get("deadline"), now, tz),   # local calendar days
        "holds": [{"id": h.id, "pickup": h.pickup_number, "state": h.state.value,
                   "items": len(h.items), "patron": pseudonym(h.patron_hash),
                   "deadline": h.deadline} for h in sorted(holds, key=lambda h: h.id)],
        "opening": ({"purpose": opening.purpose.value, "seen_open": opening.seen_open,
                     "actor": opening.actor} if opening is not None else None),
        "fp": fingerprint(comp, holds),
    }


def _hold_status(locker, hold_id):
    hold = locker.holds.get(hold_id) or locker.store.hold(hold_id)
    if hold is None:
        return {"hold_id": hold_id, "state": "unknown"}
    number = hold.compartment
    opening = locker.openings.get(number) if number is not None else None
    door = locker.doors.get(number) if number is not None else None
    return {"hold_id": hold.id, "state": hold.state.value, "compartment": number,
            "pickup_number": hold.pickup_number, "deadline": hold.deadline,
            "items": len(hold.items), "patron": pseudonym(hold.patron_hash),
            "door": door.state.value if door else None,
            "opening": ({"purpose": opening.purpose.value, "seen_open": opening.seen_open,
                         "fired": opening.fired} if opening else None),
            "alarms": sorted(a.kind.value for a in locker.alarms.values()
                             if number is not None and a.compartment == number),
            # the last loading's compartment, when its item sensor saw nothing
            "load_unconfirmed": (locker.item_load_unconfirmed(hold.id)
                                 if hold.state is HoldState.ANNOUNCED else None)}


def _item_lookup(locker, barcode):
    found = {"announced": None, "in_locker": None}
    for hold in locker.holds.values():
        if any(i.barcode == barcode for i in hold.items):
            if hold.state.value == "announced" and found["announced"] is None:
                found["announced"] = {
                    "hold_id": hold.id, "pickup_number": hold.pickup_number,
                    "size": hold.size, "patron": pseudonym(hold.patron_hash),
                    "items": [i.as_dict() for i in hold.items]}
            elif hold.compartment is not None:
                found["in_locker"] = {"hold_id": hold.id, "compartment": hold.compartment,
                                      "state": hold.state.value}
    return found


def _item_in_locker(compartment):
    return refused("item_in_locker", "that item is in the locker already", n=compartment)


class StaffService:
    """The staff page's use cases over one controller (see the module doc)."""

    def __init__(self, controller):
        self.controller = controller
        self._readers = threading.local()

    # -- helpers ---------------------------------------------------------------
    def _run(self, fn):
        return self.controller.call(fn)

    def _check_fresh(self, locker, number, fp):
        """Refuse (``stale``) when compartment ``number`` is not as the page saw it."""
        if fp is None:
            return
        if not isinstance(fp, str):
            raise CommandError("bad_argument", "fp must be text")
        locker.flush()
        comp = next((c for c in self.controller.board.get("state")["compartments"]
                     if c["number"] == number), None)
        if comp is None:
            raise CommandError("unknown_compartment", f"there is no compartment {number!r}")
        if fingerprint(comp, locker.holds_in(number)) != fp:
            raise refused("stale", f"compartment {number} changed since the page showed it",
                          n=number, state=comp["state"])

    def _reader(self):
        """This thread's read connection to the locker's database."""
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self.controller.locker.store.reader()
            self._readers.conn = conn
        return conn

    # -- time and change -----------------------------------------------------------
    def now(self):
        """Wall time of the locker's clock."""
        return self.controller.clock.wall()

    def wait_for_change(self, version, timeout):
        """Return once the locker's state is newer than ``version``, or after
        ``timeout`` seconds."""
        self.controller.board.wait_newer("state", version, timeout=timeout)

    # -- queries ---------------------------------------------------------------------
    def overview(self, unless_version=None):
        """The compartment tiles: ``{version, tiles, alarms, reader_online,
        sizes}``; None if the state's version is still ``unless_version``."""
        board = self.controller.board

        def build(locker):
            locker.flush()
            state = board.get("state")
            if unless_version is not None and state["version"] == unless_version:
                return None
            by_comp = {}
            for hold in locker.holds.values():
                if hold.compartment is not None:
                    by_comp.setdefault(hold.compartment, []).append(hold)
            now, tz = locker.clock.wall(), zone(locker.cfg.locker.timezone)
            tiles = [_tile(c, by_comp.get(c["number"], []), locker.openings.get(c["number"]),
                           now, tz)
                     for c in state["compartments"]]
            return {"version": state["version"], "tiles": tiles, "alarms": state["alarms"],
                    "reader_online": state.get("reader_online"),
                    "sizes": list(locker.cfg.holds.sizes)}
        return self._run(build)

    def announced(self):
        return self._run(lambda locker: locker.announced_holds())

    def unload_list(self):
        return self._run(lambda locker: locker.unload_list())

    def hold_statuses(self, hold_ids):
        """The state, compartment, door, opening and alarms of each hold."""
        return self._run(lambda locker: [_hold_status(locker, i) for i in hold_ids])

    def item_lookup(self, barcode):
        """``{"announced": hold or None, "in_locker": hold or None}`` for an item."""
        return self._run(lambda locker: _item_lookup(locker, barcode))

    def hash_card(self, card: CardNumber) -> str:
        """The patron hash of a card (the keyed hash; the card is not kept)."""
        return self.controller.locker.hasher.patron(card)

    def patron_known(self, patron_hash):
        """Is ``patron_hash`` a local patron or the patron of any hold?"""
        return self.controller.locker.store.patron_known(patron_hash, conn=self._reader())

    def card_is_known_patron(self, text):
        """Does ``text`` read as the card of a patron the locker knows?"""
        try:
            patron_hash = self.hash_card(CardNumber.parse(text))
        except CardFormatError:
            return False
        return self.patron_known(patron_hash)

    def patron_proposal(self, patron_hash, size=None):
        """(the compartment proposed for this patron, the compartments that
        hold the patron's holds now)."""
        return self._run(lambda locker: (
            locker.propose_compartment(size or None, patron_hash),
            sorted({h.compartment for h in locker.holds.values()
                    if h.patron_hash == patron_hash and h.compartment is not None})))

    def propose(self, *, size=None, patron_hash=None, hold_id=None):
        """``{compartment, size}`` proposed for a new load or an announced hold."""
        def propose(locker):
            ph, sz = patron_hash, size
            if hold_id is not None:
                hold = locker.holds.get(hold_id) if isinstance(hold_id, str) else None
                if hold is None:
                    raise CommandError("unknown_hold", f"there is no active hold {hold_id!r}")
                ph, sz = hold.patron_hash, size or hold.size
            number = locker.propose_compartment(sz, ph)
            return {"compartment": number,
                    "size": locker.compartments[number].size if number else None}
        return self._run(propose)

    # -- the audit log -------------------------------------------------------------
    def record_audit(self, actor, action, *, reason="", detail="", compartment=None):
        """Write one audit row on the controller thread; never raises (a
        failure is logged)."""
        def write(locker):
            with locker.store.unit() as unit:
                unit.audit(actor, action, compartment=compartment, reason=reason,
                           detail=detail)
        try:
            self._run(write)
        except Exception:
            log.exception("could not write the audit row %s for %s", action, actor)

    def audit_page(self, filters, limit):
        """At most ``limit`` audit rows matching ``filters``, newest first
        (see :mod:`bibbox.locker.store.audit` for the filters)."""
        return self.controller.locker.store.audit_page(filters, limit, conn=self._reader())

    def audit_rows_for_csv(self, filters):
        """Every matching audit row, newest first, read in batches (a generator,
        read on the thread that iterates it)."""
        yield from self.controller.locker.store.audit_rows_for_csv(filters,
                                                                   conn=self._reader())

    # -- commands --------------------------------------------------------------------
    def load(self, actor, *, hold_id, items=None, patron_hash=None, size=None,
             compartment=None, pickup_days=None, fp=None):
        """Load a hold: an announced one (``hold_id`` only) or a new one
        (``items`` and ``patron_hash``).  A hold already loading or ready
        answers its status with ``replayed``."""
        def load(locker):
            existing = locker.holds.get(hold_id)
            if existing is not None and existing.state.value in ("loading", "ready"):
                return dict(_hold_status(locker, hold_id), replayed=True)
            if compartment is not None:
                self._check_fresh(locker, compartment, fp)
            for item in (items or []):
                clash = _item_lookup(locker, item["barcode"])["in_locker"]
                if clash:
                    raise _item_in_locker(clash["compartment"])
            if existing is not None:   # announced (by central, or back after a jammed door)
                result = locker.load_hold(actor, hold_id=hold_id, size=size,
                                          compartment=compartment, pickup_days=pickup_days)
            else:
                result = locker.load_hold(actor, hold_id=hold_id, patron_hash=patron_hash,
                                          items=items, size=size, compartment=compartment,
                                          pickup_days=pickup_days)
            return dict(_hold_status(locker, result["hold_id"]), **result)
        return self._run(load)

    def open(self, actor, number, reason, purpose, fp=None):
        def run(locker):
            self._check_fresh(locker, number, fp)
            return locker.open_compartment(number, actor, reason, purpose)
        return self._run(run)

    def removed(self, actor, number, reason, fp=None):
        def run(locker):
            self._check_fresh(locker, number, fp)
            return locker.confirm_removed(number, actor, reason)
        return self._run(run)

    def mark_collected(self, actor, number, reason, fp=None):
        """The patron on the phone took what staff opened ``number`` for: its
        ready holds become collected, ``reason`` audited as typed."""
        def run(locker):
            self._check_fresh(locker, number, fp)
            return {"collected": locker.mark_collected(number, actor, reason)}
        return self._run(run)

    def cancel(self, actor, hold_id, reason):
        return self._run(lambda locker: locker.cancel_hold(hold_id, actor, reason))

    def move(self, actor, hold_id, to, fp=None):
        def run(locker):
            self._check_fresh(locker, to, fp)
            return locker.move_hold(hold_id, to, actor)
        return self._run(run)

    def set_out_of_service(self, actor, number, reason, fp=None):
        """``reason`` None puts the compartment back in service."""
        def run(locker):
            self._check_fresh(locker, number, fp)
            return locker.set_out_of_service(number, reason, actor)
        return self._run(run)

    def clear_alarm(self, actor, kind, number=None):
        return self._run(lambda locker: locker.clear_alarm(kind, number, actor))
