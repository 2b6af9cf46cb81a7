"""The patron at the kiosk: card, PIN, verdict, doors, receipt.

:class:`Sessions` owns the one patron session and the kiosk notice.  It
decides what the patron sees and, once a patron may open doors, returns a
:class:`Pickup` for the locker to carry out: the doors are not its to open.
It writes only its own facts: the wrong-PIN counter and pickup denials.

A door left open: the opening screen counts down ``timing.close_door_s``
from the moment a door opens, and at zero shows the receipt (which reminds
the patron of each door still open).  Once every door is closed, the same
card shown again within ``timing.reopen_window_s`` returns a :class:`Reopen`
of the compartments that opened, so a patron who closed a door too early can
take what they forgot; the holds were collected when the doors closed.

The other way in, the pickup number and the PIN (an option), is
:class:`~bibbox.locker.domain.pickup_numbers.NumberEntrance`, mixed in here:
it leads to the same PIN screen, verdict and doors.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace

from bibbox.locker.domain import patrons
from bibbox.locker.domain.errors import CardFormatError, CommandError
from bibbox.locker.domain.identity import CardNumber, Pin, constant_time_equal
from bibbox.locker.domain.model import EventType, Item, LoanTicket
from bibbox.locker.domain.pickup_numbers import NumberEntrance, NumberThrottle
from bibbox.locker.domain.session_doors import SessionDoors
from bibbox.locker.domain.screens import (DENIED_SCREEN_S, SCREEN_CODE, SCREEN_DENIED,
                                          SCREEN_NUMBER, SCREEN_OPENING, SCREEN_PIN,
                                          SCREEN_RECEIPT, SCREEN_VERIFYING)

log = logging.getLogger("bibbox.locker")


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
    # The card itself, in memory only until the verifier has answered: a
    # library-system verifier names the patron by card number.
    card: CardNumber | None = field(default=None, repr=False)
    # The card sealed for the loans of what this patron collects (library
    # systems only); made from ``card`` before the card is let go.
    loan: LoanTicket | None = field(default=None, repr=False)
    reopen_until: float | None = None     # monotonic; the same card re-opens until then
    taken: set = field(default_factory=set)  # compartments opened and closed: collected
    receipt_issued: bool = False          # receipt.issued written (once per session)
    by_number: bool = False               # came by pickup number, not by card
    asked_at: float | None = None         # monotonic; a number session's PIN was typed
    number_failure_at: float | None = None  # monotonic; a number-path failure shows then
    left_behind: set = field(default_factory=set)  # compartments an item is still sensed in
    typed_hinted: bool = False            # this PIN attempt's typed-PIN hint went out

    def receipt_items(self):
        """The items the patron is getting: none from a door that jammed."""
        if self.verdict is None:
            return []
        jammed = {n for n, status in self.compartments.items()
                  if status == "jammed" and n not in self.taken}
        due_for, default = self.verdict.due or {}, self.verdict.default_due
        return [Item(i.barcode, i.title, due_for.get(i.barcode, default))
                for i in self.items if self.item_compartment.get(i.barcode) not in jammed]


@dataclass(frozen=True)
class Pickup:
    """The patron of ``session_id`` may take ``holds`` (ready, theirs)."""
    session_id: str
    patron_hash: str
    holds: list
    verdict: patrons.Verdict


@dataclass(frozen=True)
class Reopen:
    """The patron of ``session_id`` showed the card again in the reopen
    window: open ``compartments`` (theirs, closed again) once more."""
    session_id: str
    patron_hash: str
    compartments: list


@dataclass(frozen=True)
class PinCheck:
    """Ask the verifier about ``pin`` for the session ``session_id``."""
    session_id: str
    patron_hash: str
    pin: Pin
    card: CardNumber | None = field(default=None, repr=False)


class Sessions(NumberEntrance, SessionDoors):
    """The patron session.  ``dirty(kiosk=..., state=...)`` is told which
    snapshots a change made stale; ``active_holds()`` gives the holds a
    pickup number is looked up in."""

    def __init__(self, cfg, clock, store, hasher, dirty, sealer=None,
                 active_holds=lambda: ()):
        self.cfg, self.timing = cfg, cfg.timing
        self.sealer = sealer              # the Sealer port, when loans are made
        self.clock, self.store, self.hasher, self.dirty = clock, store, hasher, dirty
        self.session: PatronSession | None = None
        self.notice = ""                  # a transient kiosk notice code
        self.numbers_on = cfg.verifier.pickup_number_with_pin
        self.throttle = NumberThrottle(clock, store)
        self.active_holds = active_holds

    def _new_session(self, screen, patron_hash, seconds, **fields):
        """Start a session on ``screen`` that times out in ``seconds``."""
        self.session = PatronSession(uuid.uuid4().hex, patron_hash, screen,
                                     self.clock.monotonic() + seconds, **fields)
        self.notice = ""
        return self.session

    # -- card and PIN -------------------------------------------------------------
    def card_read(self, patron_hash, storage_down, card=None):
        """A card was read.  ``storage_down``: the database refuses writes.
        ``card`` is kept in the session (memory only) for the verifier.
        A :class:`Reopen` when it is the same card within the reopen window."""
        now = self.clock.monotonic()
        s = self.session
        if s and s.screen in (SCREEN_VERIFYING, SCREEN_OPENING):
            return self.notify("busy")
        if s and s.screen in (SCREEN_PIN, SCREEN_CODE) and (
                s.by_number or s.patron_hash != patron_hash):
            return self.notify("busy_other_card")
        if s and s.screen == SCREEN_CODE:
            return None  # the same card again while the code is typed: keep going
        if storage_down:
            self.session = PatronSession(uuid.uuid4().hex, patron_hash, SCREEN_DENIED, now)
            return self._show_unavailable(self.session)   # nothing could be recorded
        if s and s.screen == SCREEN_RECEIPT and s.patron_hash == patron_hash and \
                s.reopen_until is not None and now < s.reopen_until:
            return Reopen(s.id, s.patron_hash,
                          sorted(n for n, st in s.compartments.items() if st == "closed"))
        minutes = self.blocked_minutes(patron_hash)
        if minutes:
            self.session = PatronSession(uuid.uuid4().hex, patron_hash, SCREEN_DENIED,
                                         now + DENIED_SCREEN_S, message="card_blocked",
                                         minutes_blocked=minutes)
            self._record_denial("card_blocked")
            return self.dirty(kiosk=True)
        self.session = PatronSession(uuid.uuid4().hex, patron_hash, SCREEN_PIN,
                                     now + self.timing.pin_timeout_s, card=card)
        self.notice = ""
        return self.dirty(kiosk=True)

    def blocked_minutes(self, patron_hash):
        """Minutes (rounded up) the patron stays blocked by wrong PINs; 0: not."""
        _, blocked_until = self.store.pin_failures(patron_hash)
        if blocked_until is None or blocked_until <= self.clock.wall():
            return 0
        return int((blocked_until - self.clock.wall()) // 60) + 1

    def pin_entered(self, text):
        """OK was pressed with ``text``; a :class:`PinCheck` to send to the
        verifier, or None.  On the number screen (a hardware keypad's OK)
        ``text`` is the pickup number."""
        s = self.session
        if s is not None and s.screen == SCREEN_NUMBER:
            return self.number_entered(text)
        if s is None or s.screen != SCREEN_PIN:
            return None  # a double-tapped OK or a PIN with no card: nothing to do
        try:
            pin = Pin.parse(text)
        except CardFormatError:
            s.message = "pin_format"
            self.dirty(kiosk=True)
            return None
        s.screen, s.message, s.keypad_digits = SCREEN_VERIFYING, "", 0
        s.typed_hinted = False             # a wrong PIN's next attempt may hint again
        s.deadline = self.clock.monotonic() + self.cfg.verifier.timeout_s + 2.0
        self.dirty(kiosk=True)
        if s.by_number and not self._number_may_ask(s):
            return None
        return PinCheck(s.id, s.patron_hash, pin, card=s.card)

    def pin_typed(self):
        """The keyed hash of the patron whose PIN is typed in full and not
        yet confirmed (the PIN screen), or None: OK, and an unlock, may
        follow within a second or so.  Once per PIN attempt: a page that
        posts it again and again moves no bus twice."""
        s = self.session
        if s is None or s.screen != SCREEN_PIN or not s.patron_hash or s.typed_hinted:
            return None
        s.typed_hinted = True
        return s.patron_hash

    def checking_pin(self, session_id):
        """True while the session ``session_id`` is at its PIN (or the
        offline pickup code): typed, being checked, or to be typed again."""
        s = self.session
        return s is not None and s.id == session_id and \
            s.screen in (SCREEN_PIN, SCREEN_VERIFYING, SCREEN_CODE)

    def keypad_digits(self, count):
        s = self.session
        if s is not None and s.screen in (SCREEN_PIN, SCREEN_NUMBER):
            s.keypad_digits = int(count)
            s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
            self.dirty(kiosk=True)

    def kiosk_action(self, action, storage_down=False):
        """``cancel`` (back to idle), ``extend`` (more time) or
        ``pickup_number`` (the idle screen's button, see :meth:`start_number`)."""
        if action == "pickup_number":
            return self.start_number(storage_down)
        s = self.session
        if s is None:
            return
        entry = (SCREEN_PIN, SCREEN_CODE, SCREEN_NUMBER)
        if action == "cancel":
            if s.screen in entry + (SCREEN_RECEIPT, SCREEN_DENIED):
                self.end("cancel")
        elif action == "extend":
            s.deadline = self.clock.monotonic() + (
                self.timing.pin_timeout_s if s.screen in entry else self.timing.kiosk_idle_s)
            self.dirty(kiosk=True)
        else:
            raise CommandError("unknown_action", f"unknown kiosk action {action!r}")

    # -- the verdict ---------------------------------------------------------------
    def verdict_received(self, session_id, verdict, ready_for, has_expired,
                         ready_with_items=None):
        """The verifier answered.  ``ready_for(patron_hash)`` lists the
        patron's holds ready now, ``has_expired(patron_hash)`` whether one
        expired, ``ready_with_items(barcodes)`` the ready holds holding any
        of those items, whoever they were loaded for.  A :class:`Pickup` if
        doors may open, else None.

        When the verdict reports the patron's holds (``verdict.holds``, from
        the library system) and ready holds here have all their items among
        them, exactly those holds open: the library system knows the patron
        behind every card (a library card and a health card name the same
        person).  When none matches, the holds loaded for this card open,
        as without a report: the library system may name holds by other ids
        than the item barcodes the locker was loaded with, and the loan it
        is then asked for is its own check."""
        s = self.session
        if s is None or s.id != session_id or s.screen != SCREEN_VERIFYING:
            return None  # the session timed out or was cancelled meanwhile
        if s.by_number and verdict.outcome in (patrons.WRONG_PIN, patrons.UNKNOWN):
            return self.number_verdict_failed(s, verdict.outcome)
        if verdict.outcome != patrons.WRONG_PIN:
            self._seal_for_loans(s, verdict)
            s.card = None  # no further PIN is checked in this session
        if verdict.outcome == patrons.ACCEPTED:
            if s.by_number:
                verdict = replace(verdict, reason=patrons.BY_PICKUP_NUMBER)
            ready = self._ready_holds(s, verdict, ready_for, ready_with_items)
            if not ready:
                self.forget_pin_failures(s.patron_hash)
                self.deny("only_expired" if has_expired(s.patron_hash) else "nothing_here")
                return None
            return Pickup(s.id, s.patron_hash, ready, verdict)   # the caller forgets failures
        if verdict.outcome == patrons.WRONG_PIN:
            self._wrong_pin(s)
            return None
        # the pickup code stands in for the verifier only beside a card: the
        # number and the code come in one message, so together they are no proof
        if verdict.outcome == patrons.UNAVAILABLE and not s.by_number and \
                self.cfg.verifier.offline_policy == "pickup-code" and any(
                    h.pickup_code_hash for h in ready_for(s.patron_hash)):
            s.screen, s.message = SCREEN_CODE, "central_offline"
            s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
            self.dirty(kiosk=True)
            return None
        code = {patrons.BLOCKED: "patron_blocked", patrons.UNKNOWN: "unknown_card",
                patrons.UNAVAILABLE: "service_unavailable"}.get(verdict.outcome,
                                                                 "service_unavailable")
        reason = verdict.reason if code == "patron_blocked" else ""
        if reason == "lost_card":
            code = "card_lost"      # its own message: the card is blocked, get a new one
        self.deny(code, reason=reason)
        return None

    def forget_pin_failures(self, patron_hash):
        """An accepted PIN: the patron's wrong PINs so far no longer count."""
        count, blocked_until = self.store.pin_failures(patron_hash)
        if count or blocked_until:
            with self.store.unit() as unit:
                unit.set_pin_failures(patron_hash, 0, None)

    @staticmethod
    def _ready_holds(s, verdict, ready_for, ready_with_items):
        """The holds this accepted patron may take (see ``verdict_received``)."""
        mine = ready_for(s.patron_hash)
        if verdict.holds is None or ready_with_items is None:
            return mine
        reported = ready_with_items(verdict.holds)
        if reported:
            return reported
        if mine:
            log.warning("the library system's hold list names none of the %d hold(s) "
                        "loaded for this patron; opening those as loaded", len(mine))
        return mine

    def _seal_for_loans(self, s, verdict):
        """Before the card is let go: seal it for the loans, when the patron
        may collect (accepted, or the library system unreachable and the
        pickup code may follow: the loan then waits with no-block)."""
        if self.sealer is None or s.card is None or \
                verdict.outcome not in (patrons.ACCEPTED, patrons.UNAVAILABLE):
            return
        s.loan = LoanTicket(self.sealer.seal(s.card),
                            offline=verdict.outcome == patrons.UNAVAILABLE)

    def loan_ticket(self, session_id):
        """The sealed loan identity of the session ``session_id`` (or None)."""
        s = self.session
        return s.loan if s and s.id == session_id else None

    def loan_made(self, item, due):
        """The library system lent ``item`` until ``due``: the receipt shows it."""
        s = self.session
        if s is None or s.verdict is None or not due or \
                item not in {i.barcode for i in s.items}:
            return
        s.verdict = replace(s.verdict, due={**(s.verdict.due or {}), item: due})
        self.dirty(kiosk=True)

    def pickup_code(self, text, ready_for):
        """Offline policy ``pickup-code``: the patron typed the code from
        their message.  A :class:`Pickup` of the holds whose code hash
        matches, or None; a wrong code counts like a wrong PIN."""
        s = self.session
        if s is None or s.screen != SCREEN_CODE:
            return None
        if not isinstance(text, str) or not text.strip().isalnum() or len(text) > 16:
            s.message = "code_format"
            self.dirty(kiosk=True)
            return None
        code = text.strip().upper()
        matching = [h for h in ready_for(s.patron_hash) if h.pickup_code_hash and
                    constant_time_equal(h.pickup_code_hash,
                                        self.hasher.pickup_code(h.id, code))]
        if not matching:
            self._wrong_pin(s)
            if s.screen == SCREEN_PIN:
                s.screen, s.message = SCREEN_CODE, "wrong_code"
            return None
        return Pickup(s.id, s.patron_hash, matching,
                      patrons.Verdict(patrons.ACCEPTED, reason=patrons.BY_PICKUP_CODE))

    def _one_more_wrong_pin(self, patron_hash):
        """The patron's (count, blocked_until) after one more wrong PIN: at
        ``timing.pin_tries`` the count restarts and the block begins."""
        count = self.store.pin_failures(patron_hash)[0] + 1
        if count >= self.timing.pin_tries:
            return 0, self.clock.wall() + self.timing.pin_block_minutes * 60
        return count, None

    def _wrong_pin(self, s):
        count, blocked_until = self._one_more_wrong_pin(s.patron_hash)
        with self.store.unit() as unit:
            unit.set_pin_failures(s.patron_hash, count, blocked_until)
        if blocked_until:
            s.minutes_blocked = int(self.timing.pin_block_minutes)
            return self.deny("card_blocked")
        s.screen, s.message = SCREEN_PIN, "wrong_pin"
        s.tries_left = self.timing.pin_tries - count
        s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
        self._record_denial("wrong_pin")
        return self.dirty(kiosk=True)

    # -- endings ----------------------------------------------------------------------
    def deny(self, code, reason=""):
        s = self.session
        s.screen, s.message = SCREEN_DENIED, code
        s.tries_left = None
        s.deadline = self.clock.monotonic() + DENIED_SCREEN_S
        self._record_denial(code, reason)
        self.dirty(kiosk=True)

    def storage_failed(self):
        """The database refuses writes: a patron who has not reached the
        doors yet is told the service is unavailable."""
        s = self.session
        if s is not None and s.screen not in (SCREEN_OPENING, SCREEN_RECEIPT, SCREEN_DENIED):
            self._show_unavailable(s)

    def _show_unavailable(self, s):
        s.screen, s.message, s.tries_left = SCREEN_DENIED, "service_unavailable", None
        s.compartments, s.items = {}, []
        s.deadline = self.clock.monotonic() + DENIED_SCREEN_S
        self.dirty(kiosk=True)

    def _record_denial(self, code, reason=""):
        data = {"reason": code}
        if reason:
            data["detail"] = reason
        with self.store.unit() as unit:
            unit.event(EventType.PICKUP_DENIED, data)
        log.info("pickup denied: %s", code)

    def end(self, why):
        if self.session is not None:
            log.debug("kiosk session ended (%s)", why)
        self.session = None
        self.notice = ""
        self.dirty(kiosk=True)

    def notify(self, code):
        self.notice = code
        self.dirty(kiosk=True)

    def reader_garbled(self):
        if self.session is None or self.session.screen in (SCREEN_RECEIPT, SCREEN_DENIED):
            self.notify("card_unreadable")

    def deadline(self):
        s = self.session
        if s is None:
            return None
        return min(t for t in (s.deadline, s.reopen_until, s.number_failure_at)
                   if t is not None)

    def time_passed(self, now):
        """Timeouts: the opening screen turns into the receipt (a door may
        still stand open), the reopen window closes, any other screen ends."""
        s = self.session
        if s is None:
            return
        if s.reopen_until is not None and now >= s.reopen_until:
            s.reopen_until = None
            self.dirty(kiosk=True)
        if s.number_failure_at is not None and now >= s.number_failure_at:
            return self._show_number_failure(s)
        if now < s.deadline:
            return
        if s.screen == SCREEN_OPENING:
            s.screen = SCREEN_RECEIPT
            s.deadline = now + self.timing.kiosk_idle_s
            self._issue_receipt(s)
            self.dirty(kiosk=True)
        else:
            self.end("timeout")
