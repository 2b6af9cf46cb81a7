"""The controller thread: the only thread that touches the locker's state.

Adapters (gpiozero callbacks, the reader thread, paho's network thread, Flask
requests, the relay worker) call :meth:`Controller.post` with a message from
:mod:`bibbox.locker.domain.messages`, or :meth:`Controller.call` to run a
function on the controller thread and wait for its result.  Each message
type has one handler on the :class:`Locker` (:data:`HANDLERS`).  Readers that
only need to look use :class:`Board`, where the controller publishes
immutable snapshots.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from collections.abc import Callable

from bibbox.locker.domain import messages as msg
from bibbox.locker.domain.core import Locker
from bibbox.locker.domain.errors import BibboxError, CommandError, StoreError

log = logging.getLogger("bibbox.controller")
_STOP = object()

# Which Locker method handles each message an adapter posts.
HANDLERS: dict[type, Callable[[Locker, msg.Message], None]] = {
    msg.CardRead: Locker.card_read,
    msg.PinEntered: Locker.pin_entered,
    msg.KeypadDigits: Locker.keypad_digits,
    msg.KioskAction: Locker.kiosk_action,
    msg.PickupCodeEntered: Locker.pickup_code_entered,
    msg.PickupNumberEntered: Locker.pickup_number_entered,
    msg.VerdictReceived: Locker.verdict_received,
    msg.DoorChanged: Locker.door_changed,
    msg.RelayFired: Locker.relay_fired,
    msg.RelayReleased: Locker.relay_released,
    msg.ReaderOnline: Locker.reader_online_changed,
    msg.ReaderGarbled: Locker.reader_garbled,
    msg.LoanSettled: Locker.loan_settled,
    msg.LibraryOnline: Locker.library_online_changed,
    msg.BoardOnline: Locker.board_online_changed,
    msg.PrinterStatus: Locker.printer_status_changed,
    msg.ItemSensed: Locker.item_sensed,
    msg.Wake: Locker.wake,
}


class Board:
    """Latest snapshots by kind (``kiosk``, ``state``), with waiting.

    Snapshots are replaced, never mutated, so readers may keep them."""

    def __init__(self):
        self._cond = threading.Condition()
        self._latest = {}
        self._closed = False

    def publish(self, kind, value):
        with self._cond:
            self._latest[kind] = value
            self._cond.notify_all()

    def get(self, kind):
        with self._cond:
            return self._latest.get(kind)

    def wait_newer(self, kind, version, timeout):
        """Return the snapshot of ``kind`` once its version differs from
        ``version``, or the current one after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or
                (self._latest.get(kind) or {}).get("version") != version,
                timeout=timeout)
            return self._latest.get(kind)

    def close(self):
        """Wake every waiter now (shutting down); later waits return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Call:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn):
        self.fn, self.done = fn, threading.Event()
        self.result = self.error = None


class Controller:
    """Owns a :class:`Locker` and runs it on one thread.

    ``post(message)`` queues a message for its handler in :data:`HANDLERS`.
    Without :meth:`start`, tests drive it with :meth:`run_pending`."""

    def __init__(self, clock, max_queue=10_000):
        self.clock = clock
        self.board = Board()
        self.locker: Locker | None = None
        self.queue = queue.Queue(maxsize=max_queue)
        self._thread = None
        self.healthy_at = None     # monotonic time of the last loop turn
        self.handled = 0

    def attach(self, locker: Locker):
        self.locker = locker

    # -- from any thread -----------------------------------------------------
    def post(self, message: msg.Message):
        """Queue a message; never blocks the caller for long.  A full queue
        (a flood) drops the message with a log line rather than stall an
        adapter thread."""
        if type(message) not in HANDLERS:
            raise TypeError(f"not a locker message: {type(message).__name__}")
        try:
            self.queue.put(message, timeout=0.5)
        except queue.Full:
            log.error("controller queue full; dropped a %s message", type(message).__name__)

    def call(self, fn, timeout=5.0):
        """Run ``fn(locker)`` on the controller thread and return its result;
        re-raise what it raised.  Raises CommandError on timeout."""
        if self._thread is threading.current_thread() or self._thread is None:
            result = fn(self.locker)
            self.locker.flush()
            return result
        call = _Call(fn)
        self.queue.put(call)
        if not call.done.wait(timeout):
            raise CommandError("timeout", "the locker did not answer in time")
        if call.error is not None:
            raise call.error
        return call.result

    # -- the loop --------------------------------------------------------------
    def _handle(self, item):
        if isinstance(item, _Call):
            try:
                item.result = item.fn(self.locker)
            except BaseException as exc:   # handed back to the caller
                item.error = exc
                if isinstance(exc, StoreError):
                    self._storage_failed(exc)
            finally:
                item.done.set()
            return
        name = type(item).__name__
        try:
            HANDLERS[type(item)](self.locker, item)
        except StoreError as exc:          # the locker raises the alarm, logs once
            self._storage_failed(exc)
        except BibboxError as exc:
            log.error("%s failed: %s", name, exc)
        except Exception:
            log.exception("%s failed unexpectedly", name)

    def _turn(self):
        try:
            self.locker.on_time()
        except StoreError as exc:
            self._storage_failed(exc)
        except Exception:
            log.exception("timer handling failed")
        try:
            self.locker.flush()
        except Exception:
            log.exception("publishing state failed")
        self.healthy_at = time.monotonic()

    def _storage_failed(self, exc):
        """The database refused a write (see ``Locker.storage_failed``)."""
        try:
            self.locker.storage_failed(exc)
        except Exception:
            log.exception("raising the storage alarm failed")

    def run_pending(self):
        """Process everything queued and everything due (tests, no thread)."""
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            self._handle(item)
            self.handled += 1
        self._turn()

    def _run(self):
        self._turn()
        while True:
            deadline = self.locker.next_deadline()
            wait = None if deadline is None else max(0.0, deadline - self.clock.monotonic())
            try:
                item = self.queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is not None:
                if item is _STOP:
                    break
                self._handle(item)
                self.handled += 1
            self._turn()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self._thread.start()

    def stop(self, timeout=2.0):
        if self._thread is not None:
            self.queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def wake(self):
        """Have the loop look at the clock again (tests moving a FakeClock)."""
        self.post(msg.Wake())
