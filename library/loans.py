"""The loan worker: sends the circulation queue to the library system, in
order, off the controller thread.

The queue (``bibbox.locker.store.loans.LoanQueue``) holds loans (11,
checkout, on collection) and check-ins (09, on unloading), written in the
same transaction as the collection or unloading.  :class:`LoanWorker` sends
the oldest first and never passes one that did not reach the library system
(order kept); when it cannot reach it, it backs off (doubling, capped) and
tries again, so nothing queued is lost.  What it learns goes to the
controller as a ``LoanSettled`` message, which deletes the row (and the
sealed identity with it) in the same unit as the event.

Exactly once in effect: a loan is deleted only after the library system
answered; if the answer is lost (the server died mid-checkout, the daemon
stopped), the loan is sent again.  A repeated checkout the library system
refuses is looked up in the patron's charged items (63): lent to this
patron already counts as made.  A loan sent after its first attempt failed,
or queued while the library system was unreachable, goes with the no-block
flag; every loan carries its original transaction date.  A loan older than
``max_wait_s`` is dropped (``expired``): event, staff alarm, identity gone.
"""

from __future__ import annotations

import logging
import threading
import time

from bibbox.locker.domain import messages as msg
from bibbox.library.sip2 import LibraryError, LibraryUnavailable, ReplyError, sip_date
from bibbox.library.sealing import SealError
from bibbox.library.verifier import screen_messages

log = logging.getLogger("bibbox.library")

BACKOFF_S = (1.0, 60.0)      # first wait after a failure, and the cap
IDLE_CHECK_S = 30.0          # look at the queue this often even unwoken
STATUS_CHECK_S = 60.0        # probe (99) an unreachable library system this often


def iso_due(value: str) -> str | None:
    """``YYYY-MM-DD`` from a SIP2 due date (``YYYYMMDD...``), else None."""
    digits = (value or "").strip()[:8]
    if len(digits) == 8 and digits.isdigit():
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    return None


class Reachability:
    """Whether the library system answers, as last seen by any of its
    users (the verifier, the loan worker); a change is posted to the
    controller as ``LibraryOnline``.  Thread-safe."""

    def __init__(self, post):
        self.post, self.online = post, None
        self._lock = threading.Lock()

    def seen(self, online: bool) -> None:
        with self._lock:
            if online == self.online:
                return
            self.online = online
        self.post(msg.LibraryOnline(online))


class LoanWorker:
    """See the module docstring.  ``queue`` is a LoanQueue, ``client`` a
    :class:`~bibbox.library.client.LibraryClient`, ``unsealer`` a
    :class:`~bibbox.library.sealing.CardUnsealer`, ``post`` the controller's."""

    def __init__(self, queue, client, unsealer, post, *, max_wait_s, reachability=None,
                 wall=time.time, backoff_s=BACKOFF_S):
        self.queue, self.client, self.unsealer, self.post = queue, client, unsealer, post
        self.max_wait_s, self.wall, self.backoff_s = max_wait_s, wall, backoff_s
        self.reachability = reachability or Reachability(post)
        self._settled: set[int] = set()    # posted, not yet deleted by the controller
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = None
        self.sent = 0                      # loans and check-ins settled by this worker

    # -- running ------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="bibbox-loan-worker")
        self._thread.start()
        return self

    def wake(self, *_):
        """Something was queued (a commit hook): look now."""
        self._wake.set()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.queue.close()
        self.client.close()        # its connection to the library system

    def _run(self):
        failures = 0
        while not self._stop.is_set():
            try:
                reached = self.drain()
            except Exception:
                log.exception("the loan worker failed; trying again")
                reached = False
            if reached:
                failures = 0
                self._wake.wait(IDLE_CHECK_S if self.reachability.online is not False
                                else STATUS_CHECK_S)
                self._wake.clear()
                if self.reachability.online is False:
                    self._probe()
            else:
                failures += 1
                delay = min(self.backoff_s[1], self.backoff_s[0] * 2 ** (failures - 1))
                self._stop.wait(delay)   # a commit does not cut a back-off short

    def _probe(self):
        try:
            self.client.status()
        except LibraryError:
            return
        self.reachability.seen(True)

    # -- one pass -------------------------------------------------------------------
    def drain(self) -> bool:
        """Send what is queued, oldest first, until the queue is empty (True)
        or the library system cannot be reached (False; the rest waits)."""
        while not self._stop.is_set():
            rows = self.queue.pending()
            self._settled &= {row.id for row in rows}
            rows = [row for row in rows if row.id not in self._settled]
            if not rows:
                return True
            for row in rows:
                if self.wall() - row.created_at > self.max_wait_s:
                    self._settle(row, "expired")
                    continue
                try:
                    outcome = self._send(row)
                except LibraryUnavailable:
                    return self._unreached(row, "cannot be reached")
                except ReplyError as exc:
                    return self._unreached(row, f"unusable answer ({exc.reason})")
                except SealError:
                    outcome = ("refused", None, "identity_unreadable")
                except LibraryError as exc:
                    return self._unreached(row, str(exc))
                self.reachability.seen(True)
                self._settle(row, *outcome)
        return True

    def _unreached(self, row, why):
        log.warning("%s of a queued item: the library system %s; retrying later",
                    row.kind, why)
        self.reachability.seen(False)
        try:
            self.queue.count_attempt(row.id)
        except Exception:
            log.exception("counting a loan attempt failed")
        return False

    def _settle(self, row, outcome, due=None, reason=""):
        self._settled.add(row.id)
        self.sent += 1
        log.info("%s of item %s (hold %s): %s", row.kind, row.item, row.hold_id, outcome)
        self.post(msg.LoanSettled(row.id, row.kind, row.hold_id, row.item, outcome,
                                  due, reason))

    def _send(self, row):
        """One row to the library system: ``(outcome, due, reason)``."""
        date = sip_date(row.created_at)
        no_block = row.offline
        if row.kind == "checkin":
            reply = self.client.checkin(row.item, no_block=no_block, date=date)
            if reply.ok:
                return "checked_in", None, ""
            return "refused", None, _why(reply)
        card = self.unsealer.unseal(row.sealed)
        try:
            reply = self.client.checkout(card, row.item, no_block=no_block, date=date)
            if reply.ok:
                return "made", iso_due(reply.due_date), ""
            if self._lent_already(card, row.item):   # a repeat of a loan made
                return "made", None, ""
            return "refused", None, _why(reply)
        finally:
            del card

    def _lent_already(self, card, item) -> bool:
        """Is ``item`` among the patron's charged items (63, charged listed)?"""
        info = self.client.patron_information(card, None, summary="  Y       ")
        return any(_item_id(entry) == item for entry in info.charged_items)


def _item_id(entry: str) -> str:
    """The item id of a charged-items entry (FBS: ``id%dates%title``)."""
    return entry.split("%", 1)[0].strip()


def _why(reply) -> str:
    messages = screen_messages(reply)
    return messages[0] if messages else "refused"
