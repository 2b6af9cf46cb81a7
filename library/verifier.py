"""The ``sip2`` and ``fbs`` adapters of the verifier port: the library
system checks the patron.

``verify(patron_hash, pin, done, card=card)`` queues the check for one
worker thread and returns at once; the worker asks the library system
(63, patron information) and calls ``done`` exactly once with the
:class:`~bibbox.locker.domain.patrons.Verdict` of :func:`verdict_for`, or
``unavailable`` when it cannot be reached, does not answer in time or
answers something that does not parse.  The card and the PIN go to the
library system and nowhere else: not into a log, not kept after the call.

The locker's own wrong-PIN lockout stays in front: a ``wrong_pin`` verdict
counts towards it like any other, and a blocked card never reaches here.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from decimal import Decimal

from bibbox.locker.domain import patrons
from bibbox.locker.domain.free_text import MASK_IT, clean
from bibbox.locker.domain.patrons import Verdict

from bibbox.library.sip2 import LibraryError, LibraryUnavailable, ReplyError

log = logging.getLogger("bibbox.library")
DEFAULT_FEE_LIMIT = Decimal("200")


def verdict_for(reply, fee_limit_default=DEFAULT_FEE_LIMIT) -> Verdict:
    """The verdict for a patron status (24) or information (64) reply.

    In this order: not a valid patron (BL N) -> unknown; PIN not valid
    (CQ N) -> wrong PIN; no PIN check in the reply -> unavailable (a locker
    must not open on a card alone); card reported lost (flag 4) -> blocked
    ``lost_card``; excessive fines or fees (flags 10, 11) or the fee amount
    BV at or over the limit (CC when sent, else ``fee_limit_default``) ->
    blocked ``fees``; charge privileges denied (flag 0) -> blocked
    ``library``; else accepted."""
    if reply.valid_patron is False:
        return Verdict(patrons.UNKNOWN)
    if reply.valid_pin is False:
        return Verdict(patrons.WRONG_PIN)
    if reply.valid_pin is None:
        return Verdict(patrons.UNAVAILABLE, reason="pin_not_checked")
    if reply.card_lost:
        return Verdict(patrons.BLOCKED, reason="lost_card")
    limit = getattr(reply, "fee_limit", None)
    limit = fee_limit_default if limit is None else limit
    over_limit = reply.fee_amount is not None and reply.fee_amount >= limit
    if reply.excessive_fines or reply.excessive_fees or over_limit:
        return Verdict(patrons.BLOCKED, reason="fees")
    if reply.charge_denied:
        return Verdict(patrons.BLOCKED, reason="library")
    return Verdict(patrons.ACCEPTED)


def screen_messages(reply) -> list[str]:
    """The reply's AF messages, through the one sanitiser (CPR masked)."""
    out = []
    for text in reply.screen_messages:
        try:
            out.append(clean(text, "screen message", policy=MASK_IT, max_len=200))
        except ValueError:
            continue            # empty or too long: not shown
    return out


class LibraryVerifier:
    """See the module docstring.  ``client`` is a
    :class:`~bibbox.library.client.LibraryClient`."""

    def __init__(self, client, *, fee_limit_default=DEFAULT_FEE_LIMIT, reachability=None):
        self.client = client
        self.reachability = reachability     # told whether the library system answered
        self.fee_limit_default = Decimal(str(fee_limit_default))
        self._queue: queue.Queue = queue.Queue()
        self._thread = None
        self._lock = threading.Lock()

    def verify(self, patron_hash, pin, done, *, card=None):
        if card is None:
            log.warning("patron check without a card: the library system needs it")
            return self._answer(done, Verdict(patrons.UNAVAILABLE, reason="no_card"))
        self._ensure_worker()
        self._queue.put((card, pin, done))

    def close(self):
        """Stop the worker after the checks already queued."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)
        self.client.close()

    def _ensure_worker(self):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name="bibbox-library-verifier")
                self._thread.start()

    def _work(self):
        while True:
            job = self._queue.get()
            if job is None:
                return
            card, pin, done = job
            del job
            verdict = self.check(card, pin)
            del card, pin
            self._answer(done, verdict)

    def check(self, card, pin) -> Verdict:
        """Ask the library system now (blocking) and map its answer."""
        verdict = self._check(card, pin)
        if self.reachability is not None:
            self.reachability.seen(verdict.reason != "offline")
        return verdict

    def _check(self, card, pin) -> Verdict:
        try:
            reply = self.client.patron_information(card, pin)
        except LibraryUnavailable:
            log.warning("patron check: the library system cannot be reached")
            return Verdict(patrons.UNAVAILABLE, reason="offline")
        except ReplyError as exc:
            log.warning("patron check: unusable answer (%s)", exc.reason)
            return Verdict(patrons.UNAVAILABLE, reason="bad_answer")
        except LibraryError as exc:
            log.warning("patron check failed: %s", exc)
            return Verdict(patrons.UNAVAILABLE, reason="library_error")
        except Exception:
            log.exception("patron check failed unexpectedly")
            return Verdict(patrons.UNAVAILABLE, reason="library_error")
        verdict = verdict_for(reply, self.fee_limit_default)
        if verdict.outcome == patrons.ACCEPTED:
            verdict = dataclasses.replace(verdict, holds=self.client.reported_holds(reply))
        log.info("patron check answered: %s %s", verdict.outcome, verdict.reason)
        return verdict

    @staticmethod
    def _answer(done, verdict):
        try:
            done(verdict)
        except Exception:
            log.exception("the verifier's done callback failed")
