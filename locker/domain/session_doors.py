"""The patron's doors, as the kiosk session follows them: which of a
pickup's compartments open, each door's progress (queued, unlocked, open,
closed, jammed), the receipt once every door is done and the reopen window
after it, and what the item sensors say was left behind.

:class:`SessionDoors` is part of :class:`~bibbox.locker.domain.sessions.Sessions`
(which inherits it) and works on its ``session``, ``clock``, ``timing``,
``store`` and ``dirty``; like the rest of the locker it runs on the
controller thread only.
"""

from __future__ import annotations

import logging

from bibbox.locker.domain.errors import StoreError
from bibbox.locker.domain.model import EventType
from bibbox.locker.domain.screens import SCREEN_OPENING, SCREEN_RECEIPT

log = logging.getLogger("bibbox.locker")

DOOR_DONE = ("closed", "jammed", "unavailable")   # a door the patron is through with


class SessionDoors:
    """Mixed into :class:`~bibbox.locker.domain.sessions.Sessions`; see the module docstring."""

    def plan_pickup(self, pickup, can_open):
        """Which of the pickup's compartments to open (``can_open(number)``);
        the session shows the others as unavailable.  [] denies."""
        s = self.session
        s.verdict = pickup.verdict
        to_open = []
        for number in sorted({h.compartment for h in pickup.holds}):
            if can_open(number):
                to_open.append(number)
                s.compartments[number] = "queued"
            else:
                s.compartments[number] = "unavailable"
        s.items = [i for h in pickup.holds if h.compartment in to_open for i in h.items]
        s.item_compartment = {i.barcode: h.compartment for h in pickup.holds for i in h.items}
        if not to_open:
            self.deny("compartment_unavailable")
        return to_open

    def pickup_started(self):
        """The pickup's doors are opening."""
        s = self.session
        s.screen, s.message = SCREEN_OPENING, ""
        s.deadline = self.clock.monotonic() + self.timing.door_open_timeout_s + \
            self.timing.kiosk_idle_s
        self.dirty(kiosk=True, state=True)

    def reopen_started(self, numbers):
        """The doors of a :class:`Reopen` are opening again."""
        s = self.session
        for number in numbers:
            s.compartments[number] = "queued"
        s.reopen_until = None
        self.pickup_started()

    def door_status(self, number, status, session_id=None):
        """A door of the session moved on (unlocked, open, closed, jammed).
        The receipt shows as soon as every door is done; the reopen window
        starts then."""
        s = self.session
        if not (s and number in s.compartments and (session_id is None or s.id == session_id)):
            return
        s.compartments[number] = status
        if status == "closed":
            s.taken.add(number)
        now = self.clock.monotonic()
        if status == "open" and s.screen == SCREEN_OPENING:
            s.deadline = now + self.timing.close_door_s
        if s.screen not in (SCREEN_OPENING, SCREEN_RECEIPT):
            return
        if all(v in DOOR_DONE for v in s.compartments.values()):
            s.screen = SCREEN_RECEIPT
            # the same card reopens; a patron who came by number showed none
            window = 0.0 if s.by_number else self.timing.reopen_window_s
            closed = any(v == "closed" for v in s.compartments.values())
            s.reopen_until = now + window if window and closed else None
            s.deadline = now + max(self.timing.kiosk_idle_s, window if closed else 0.0)
            self._issue_receipt(s)
        self.dirty(kiosk=True)

    def _issue_receipt(self, s):
        """Write ``receipt.issued`` once per session: what the patron took,
        with titles and due dates, for central to mail (the patron by keyed
        hash, never a card number).  A refused write loses only the event:
        the receipt stays on the screen."""
        items = s.receipt_items()
        if s.receipt_issued or not items:
            return
        s.receipt_issued = True
        data = {"patron_hash": s.patron_hash,
                "compartments": sorted(s.taken),
                "items": [i.as_dict() for i in items]}
        try:
            with self.store.unit() as unit:
                unit.event(EventType.RECEIPT_ISSUED, data)
        except StoreError:
            log.warning("receipt.issued could not be stored; the screen shows the receipt")

    # -- item sensors (see :mod:`bibbox.locker.domain.items`) -------------------------
    def item_left(self, number, session_id):
        """An item is still sensed in ``number`` after the patron closed it:
        the receipt says so (and how to open the door again)."""
        s = self.session
        if s and s.id == session_id and number in s.compartments and \
                number not in s.left_behind:
            s.left_behind.add(number)
            self.dirty(kiosk=True)

    def item_taken(self, number):
        """The sensor of ``number`` sees it empty now."""
        s = self.session
        if s and number in s.left_behind:
            s.left_behind.discard(number)
            self.dirty(kiosk=True)

    def patron_of(self, session_id):
        """The patron hash of the session ``session_id`` if it is the current one."""
        s = self.session
        return s.patron_hash if s and s.id == session_id else ""

    def reopen_ends(self, session_id):
        """Until when (monotonic) the patron of ``session_id`` may still
        open their doors again by card, or None: the reopen window, or, while
        a door of theirs is still open, a whole window from now."""
        s = self.session
        if s is None or s.id != session_id:
            return None
        if s.screen == SCREEN_OPENING:
            return self.clock.monotonic() + self.timing.reopen_window_s
        return s.reopen_until

    def verdict_of(self, session_id):
        """The verdict of the session ``session_id`` if it is the current one."""
        s = self.session
        return s.verdict if s and s.id == session_id else None

