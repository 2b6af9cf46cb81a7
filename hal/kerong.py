"""Kerong KR-CU16 lock boards on an RS485 bus (pyserial).

The protocol, as this driver speaks it (defaults 19200 8N1; see
``firmware/README.md`` for what is confirmed and what is not):

* a request is ``02 ADDR CMD 03 SUM``: ADDR has the board (0-9) in the high
  nibble and the lock (0-15) in the low nibble, SUM is the low byte of the
  sum of the bytes before it.  ``31`` unlocks one lock (board 0 lock 0 is
  ``02 00 31 03 36``), ``30`` asks for the board's status;
* both are answered with ``02 ADDR 35 H1 H2 I1 I2 03 SUM``: H1/H2 are the
  hook inputs of locks 1-8 / 9-16 (bit 0 = the first), I1/I2 the infrared
  item sensors.  Which hook level means "open" differs between batches
  (``hook_open_level``), and so may the IR level (``item_present_level``);
* the board times the unlock pulse itself: nothing we send can hold a lock
  open, and nothing but ``31`` can open one.

:class:`KerongBus` owns one serial port and one thread.  One request is in
flight at a time, and every try of a request is one job: an unlock goes
before the next job, so it waits at most for the exchange already on the
wire (14 bytes, 7.3 ms at 19200 baud; ``timeout_s`` if that board is silent;
on an idle bus ``pulse()`` writes it at once from the caller's thread),
never for the rest of a poll round or for a silent board's retries; and the
hints of :mod:`~bibbox.hal.unlock_hints` (a PIN typed in full, a PIN check
out) keep even that exchange off the wire.  A board is asked every
``poll_s`` while it is active (a door of it moved, is open, or was unlocked
in the last ``ACTIVE_S`` seconds) and every ``idle_poll_s`` at rest; boards
at rest share one grid, so a quiet bus wakes once a round, not once a board.
A request that gets no valid reply (none, garbage, a wrong checksum, another
board's reply, a late one) is tried ``retries`` more times; then the board
counts as offline (``on_board`` -> ``BoardOnline(False)``, its doors
"unknown") and is asked once a second until it answers.  A port that
fails (unplugged) is closed and reopened with backoff, every board on it
offline meanwhile.  An unlock for a lock still on waits for its pulse to
end (a ``31`` now would restart it); one not sent while the port is down,
or within ``UNLOCK_MAX_AGE_S``, is dropped, never sent late.  ``all_off()`` and
``close()`` send nothing at all.  No timer or thread per door: idle
cost is the polling, and an unchanged status reply calls nothing.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from bibbox.hal.kerong_protocol import (CMD_STATUS, CMD_UNLOCK, ETX, REPLY_STATUS, STX,
                                        BoardStatus, find_status, request)
from bibbox.hal.unlock_hints import UnlockHints
from bibbox.hal.serial_link import (REPLY_LEN, Link, next_poll_at, open_serial, quiet,
                                     set_moving)
from bibbox.locker.domain.buses import board_id
from bibbox.locker.domain.errors import HardwareError

log = logging.getLogger("bibbox.kerong")

MAX_GARBAGE = 64            # bytes read past a bad reply before giving up on it
MAX_DEFER_S = 0.5           # a poll at rest waits for the boards that move at most this long
OFFLINE_POLL_S = 1.0        # a silent board is asked this often (once, no retries)
# After expect_unlock, polls wait this long at most for the unlock.  The
# verifier answers in about 1 ms (local) to tens of ms (central, SIP2); a
# slower answer only loses the head start, and a door change on the bus is
# seen at most this much later (one patron at the kiosk at a time).
UNLOCK_HINT_S = 0.25
REOPEN_FIRST_S, REOPEN_MAX_S = 0.2, 5.0
JOIN_TIMEOUT_S = 2.0
# An unlock not on the wire this long after it was asked for is dropped: a
# door must not spring open long after the patron (a bus unplugged, say).
UNLOCK_MAX_AGE_S = 2.0
OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"


class BusDown(Exception):
    """The port failed (unplugged, gone): reopen it."""


class KerongBus(UnlockHints):
    """The KR-CU16 boards on one RS485 port.  ``locks`` maps compartment ->
    (board, lock).  Callbacks (see :class:`~bibbox.locker.domain.ports.LockDriver`)
    run on the bus thread; exceptions they raise are logged and ignored.
    ``idle_poll_s`` (at least ``poll_s``; None: ``poll_s``) is the poll
    period of a board at rest; ``hint_hold_s`` the longest
    :meth:`expect_unlock` holds polls back.  The constructor returns after
    every board was asked once (or the port failed), so :meth:`read_all` has the doors
    (and :meth:`items` the IR item sensors when ``item_sensors`` is True:
    boards fitted with them); with ``wait=False`` at once, and
    :meth:`wait_first_round` does the waiting (so several buses make their
    first rounds side by side)."""

    def __init__(self, name: str, port: str, locks: Mapping[int, tuple[int, int]], *,
                 baudrate: int = 19200, poll_s: float = 0.08, timeout_s: float = 0.1,
                 retries: int = 2, hook_open_level: int = 0, item_present_level: int = 1,
                 item_sensors: bool = False, pulse_s: float = 0.8, boards=(),
                 idle_poll_s: float | None = None,
                 hint_hold_s: float = UNLOCK_HINT_S,
                 on_fired: Callable[[int, float], object] = lambda c, s: None,
                 on_released: Callable[[int], object] = lambda c: None,
                 on_door_change: Callable[[int, bool], object] = lambda c, o: None,
                 on_item: Callable[[int, bool], object] = lambda c, p: None,
                 on_board: Callable[[str, bool, tuple], object] = lambda b, o, c: None,
                 opener=open_serial, wait: bool = True):
        self.name, self.port_name = name, port
        self._locks = dict(locks)
        self._by_board: dict[int, dict[int, int]] = {b: {} for b in boards}
        for compartment, (board, lock) in self._locks.items():
            self._by_board.setdefault(board, {})[lock] = compartment
        self._baudrate, self._poll_s, self._timeout_s = baudrate, poll_s, timeout_s
        self._exchange_s = (5 + REPLY_LEN) * 10 / baudrate + 0.002    # on the wire, + turnaround
        self._idle_poll_s = poll_s if idle_poll_s is None else max(poll_s, idle_poll_s)
        self._active_until = dict.fromkeys(self._by_board, 0.0)   # fast polls until then
        self._status_frames = {b: request(b, 0, CMD_STATUS) for b in self._by_board}
        self._masks = {b: sum(1 << lock for lock in locks) for b, locks in self._by_board.items()}
        self._seen: dict[int, tuple[int, int]] = {}    # board -> (hooks, infrared) taken
        self._stale_input = True       # a failed exchange may have left bytes behind
        self._tries = 1 + retries
        self._hook_open, self._item_present = hook_open_level, item_present_level
        self._item_sensors = item_sensors     # False: IR bits ignored, no item reports
        self._pulse_s = pulse_s
        self._on_fired, self._on_released = on_fired, on_released
        self._on_door, self._on_item, self._on_board = on_door_change, on_item, on_board
        self._opener = opener
        self._cond = threading.Condition()
        self._unlocks: deque[int] = deque()
        self._unlock_asked: dict[int, float] = {}   # compartment -> when pulse() queued it
        self._unlock_tries: dict[int, int] = {}      # compartment -> tries made so far
        self._dropped = 0              # all_off()/close() calls: a retry queued before one is void
        self._hint_hold_s = hint_hold_s
        self._init_hints()
        self._releases: list[tuple[float, int]] = []
        self._energised: set[int] = set()
        self._next_poll = dict.fromkeys(self._by_board, 0.0)
        self._poll_tries = dict.fromkeys(self._by_board, 0)    # tries of the poll under way
        self._online: dict[int, bool | None] = dict.fromkeys(self._by_board)
        self._doors = dict.fromkeys(self._locks, UNKNOWN)
        self._items: dict[int, bool] = {}
        self.errors: dict[int, int] = dict.fromkeys(self._by_board, 0)
        self._link: Link | None = None
        self._reopen_s = REOPEN_FIRST_S
        self._closed = False
        self._first_round = threading.Event()
        self._idle = False             # the bus thread waits for something to do
        self._sent = None              # (compartment, dropped, rest): written by pulse(), reply due
        self._thread = threading.Thread(target=self._run, name=f"bibbox-kerong-{name}",
                                        daemon=True)
        self._thread.start()
        if wait:
            self.wait_first_round()

    def wait_first_round(self) -> None:
        """Return once every board was asked once (or the port failed), or
        after the longest that can take."""
        self._first_round.wait(len(self._by_board) * self._tries * 2 * (self._timeout_s + 0.05)
                               + 1.0)

    # -- the port (LockDriver) ------------------------------------------------------
    def pulse(self, compartment: int, seconds: float) -> None:
        """Unlock ``compartment``; the board times the pulse, so ``seconds``
        only has to be positive.  Never waits: on an idle bus whose port is a
        local tty the request is written at once from the caller's thread
        (``_send_now``; another port's write may block), else it is
        queued before any poll.  A request for a lock whose unlock is queued
        or on the wire is merged into it; one for a lock still on (the board
        confirmed an unlock, its pulse is not over) is sent when that pulse
        ends -- a ``31`` now would restart the board's pulse and hold the
        lock on longer than one pulse."""
        if compartment not in self._locks:
            raise HardwareError(f"no lock on bus {self.name!r} for compartment {compartment!r}")
        if not seconds > 0:
            raise ValueError(f"pulse length must be positive, not {seconds!r}")
        with self._cond:
            if self._closed:
                raise HardwareError(f"bus {self.name!r} is closed")
            self._clear_hints()            # the unlock a hint waited for (or another) is here
            if self._link is None and self._reopen_at:
                log.error("bus %s: port down, unlock of compartment %d not sent", self.name,
                          compartment)
                return
            if compartment in self._unlock_asked:
                log.info("bus %s: unlock of compartment %d merged with the one under way",
                         self.name, compartment)
                return
            self._unlocks.append(compartment)
            self._unlock_asked[compartment] = time.monotonic()
            if self._idle and self._sent is None and self._link is not None and \
                    self._link.writes_at_once and compartment not in self._energised:
                self._send_now(compartment)
            self._cond.notify_all()

    def _send_now(self, compartment):
        """(lock held; the bus thread waits, so nothing is on the wire) Write
        the unlock of ``compartment`` from the caller's thread, which is
        running now: an idle bus thread can take milliseconds to be woken
        (a CPU asleep in a VM).  The bus thread reads the reply as the
        unlock's first try (``_sent``).  A write that fails leaves the
        unlock queued for the bus thread, whose own try meets the failure."""
        board, lock = self._locks[compartment]
        frame = request(board, lock, CMD_UNLOCK)
        try:
            if self._stale_input:
                self._link.flush_input()
                self._stale_input = False
            rest = self._link.send(frame)
        except Exception:
            self._stale_input = True
            return
        if rest == frame:                # the port took nothing: still queued
            return
        self._unlocks.remove(compartment)
        self._sent = (compartment, self._dropped, rest)

    def read(self, compartment: int) -> str:
        if compartment not in self._doors:
            raise HardwareError(f"no door on bus {self.name!r} for compartment {compartment!r}")
        return self._doors[compartment]

    def read_all(self) -> dict[int, str]:
        return dict(self._doors)

    def items(self) -> dict[int, bool]:
        return dict(self._items)

    def health(self) -> dict[str, bool]:
        return {board_id(self.name, b): bool(online) for b, online in self._online.items()}

    def states(self) -> dict[int, bool]:
        """True for a lock the board is holding open (reported, not read)."""
        with self._cond:
            return {c: c in self._energised for c in self._locks}

    def all_off(self) -> None:
        """Drop queued unlocks, their retries and a hint.  Sends nothing: a
        board's pulse ends by itself."""
        with self._cond:
            if self._unlocks:
                log.warning("bus %s: dropped queued unlocks of %s", self.name, list(self._unlocks))
            self._drop_unlocks()

    def close(self) -> None:
        """Stop the thread and close the port, sending nothing.  Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._drop_unlocks()            # wakes the bus thread: it sees _closed and ends
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
        self._close_port()
        for compartment in sorted(self._energised):
            quiet(self._on_released, compartment)
        self._energised.clear()

    def _drop_unlocks(self):
        """(lock held) Forget every queued unlock, its retries and a hint,
        and wake every waiter on the condition (the bus thread re-plans)."""
        self._clear_hints()
        self._unlocks.clear()
        self._unlock_tries.clear()
        self._unlock_asked.clear()
        self._dropped += 1
        self._cond.notify_all()

    # -- the bus thread ---------------------------------------------------------------
    def _run(self):
        try:
            while True:
                with self._cond:
                    if self._closed:
                        return
                    job, arg = self._next_job()
                    if job is None:                  # arg: when there is something to do
                        self._idle = True
                        self._cond.wait(max(0.0, arg - time.monotonic()))
                        self._idle = False
                        continue
                try:
                    job(arg)
                except BusDown as exc:
                    self._bus_down(exc)
        except BaseException:
            log.critical("bus %s: thread failed; its boards stop being polled", self.name,
                         exc_info=True)
        finally:
            self._first_round.set()

    def _next_job(self):
        """(lock held) The next try to make, as (method, argument), or
        (None, when) to wait until ``when``: a due release, then an unlock
        (of a lock not still on), then while a hint is in force what it
        allows (``_hinted_job``: an early poll, or nothing), then the due
        board that moves (due first), then the due board at
        rest (due first) -- unless its try could still be on the wire when
        a board that moves is due (one exchange; ``timeout_s`` for a silent
        board), and it is late by less than ``MAX_DEFER_S``.  So a round at
        rest, or a silent board's probe, does not hold up a door that moves."""
        now = time.monotonic()
        if self._link is None:
            return (self._open, None) if now >= self._reopen_at else (None, self._reopen_at)
        if self._sent is not None:                # its request is on the wire
            job, self._sent = self._sent, None
            return self._unlock, job
        if self._releases and self._releases[0][0] <= now:
            return self._release, heapq.heappop(self._releases)[1]
        for compartment in [c for c in self._unlocks if c not in self._energised]:
            self._unlocks.remove(compartment)      # one still on goes after its release
            if now - self._unlock_asked.get(compartment, now) <= UNLOCK_MAX_AGE_S:
                return self._unlock, (compartment, self._dropped, None)
            self._unlock_tries.pop(compartment, None)
            self._unlock_asked.pop(compartment, None)
            log.error("bus %s: unlock of compartment %d dropped, %.1f s old", self.name,
                      compartment, UNLOCK_MAX_AGE_S)
        hinted = self._hinted_job(now)
        if hinted is not None:
            job, until = hinted
            if job is None and self._releases:
                until = min(until, self._releases[0][0])
            return job, until
        moving = resting = None
        soonest = moving_due = now + 60.0
        next_poll, active_until = self._next_poll, self._active_until
        for board, due in next_poll.items():
            if due > now:
                soonest = min(soonest, due)
                if active_until[board] > now:
                    moving_due = min(moving_due, due)
            elif active_until[board] > now:
                if moving is None or due < next_poll[moving]:
                    moving = board
            elif resting is None or due < next_poll[resting]:
                resting = board
        if moving is not None:
            return self._poll, moving
        if resting is not None:
            lasts = (self._exchange_s if self._online[resting] and not self._poll_tries[resting]
                     else self._timeout_s)
            if moving_due - now >= lasts or now - next_poll[resting] >= MAX_DEFER_S:
                return self._poll, resting
            soonest = moving_due
        if self._releases:
            soonest = min(soonest, self._releases[0][0])
        return None, soonest

    _reopen_at = 0.0

    def _open(self, _=None):
        try:
            self._link = Link(self._opener(self.port_name, self._baudrate, self._timeout_s),
                              self._timeout_s)
        except Exception as exc:
            self._bus_down(exc)
            return
        self._reopen_s = REOPEN_FIRST_S
        log.info("bus %s: %s open", self.name, self.port_name)

    def _bus_down(self, exc):
        self._close_port()
        log.error("bus %s: port %s failed (%s); reopening in %.1f s", self.name,
                  self.port_name, exc, self._reopen_s)
        with self._cond:
            if self._unlocks:
                log.error("bus %s: port down, unlocks of %s not sent", self.name,
                          list(self._unlocks))
            self._drop_unlocks()
            self._reopen_at = time.monotonic() + self._reopen_s
            self._reopen_s = min(self._reopen_s * 2, REOPEN_MAX_S)
            for board in self._next_poll:
                self._next_poll[board] = 0.0
                self._poll_tries[board] = 0
        for board in list(self._online):
            self._set_online(board, False)
        self._first_round.set()

    def _close_port(self):
        link, self._link = self._link, None
        if link is not None:
            try:
                link.close()
            except Exception:
                log.debug("bus %s: closing the port failed", self.name, exc_info=True)

    def _release(self, compartment):
        """The pulse is over; an unlock that waited for it may go from now."""
        with self._cond:
            self._energised.discard(compartment)
            if compartment in self._unlock_asked:
                self._unlock_asked[compartment] = time.monotonic()
        quiet(self._on_released, compartment)

    def _poll(self, board):
        """One try of a status request; a failed try that has tries left is
        due again at once (behind any unlock and any board due before it)."""
        tries = self._tries if self._online[board] is not False else 1
        tried = self._poll_tries[board] + 1
        status = self._exchange(board, self._status_frames[board], tried, tries)
        now = time.monotonic()
        with self._cond:
            self._poll_tries[board] = tried if status is None and tried < tries else 0
            if status is not None:
                self._next_poll[board] = self._next_due(board, now)
            elif tried < tries:
                self._next_poll[board] = now
                self._retry_before_hold(board, now)
            else:
                self._next_poll[board] = now + OFFLINE_POLL_S
        if status is not None:
            self._take(status)
        elif tried >= tries:
            self._set_online(board, False)
        if not self._first_round.is_set() and all(v is not None for v in self._online.values()):
            self._first_round.set()

    def _next_due(self, board, now):
        """(lock held) When to ask ``board`` again after a reply."""
        return next_poll_at(self._next_poll[board], now, now < self._active_until[board],
                            self._poll_s, self._idle_poll_s)

    def _unlock(self, job):
        """One try of an unlock (``sent``: its request is written but for
        that rest, see ``_send_now``); a failed try that has tries left goes
        to the back of the unlock queue (still before any poll)."""
        compartment, dropped, sent = job
        if sent and dropped != self._dropped:     # all_off() since: the rest is not sent
            self._stale_input = True
            return
        board, lock = self._locks[compartment]
        tried = self._unlock_tries.pop(compartment, 0) + 1
        status = self._exchange(board, request(board, lock, CMD_UNLOCK), tried, self._tries,
                                sent)
        if status is None:
            with self._cond:
                retry = tried < self._tries and dropped == self._dropped
                if retry and compartment not in self._unlocks:
                    self._unlock_tries[compartment] = tried
                    self._unlocks.append(compartment)
                elif not retry:
                    self._unlock_asked.pop(compartment, None)
            if not retry:
                log.error("bus %s: board %d did not confirm the unlock of lock %d "
                          "(compartment %d)", self.name, board, lock, compartment)
                self._set_online(board, False)
            return
        log.info("bus %s: board %d unlocked lock %d (compartment %d)", self.name, board, lock,
                 compartment)
        with self._cond:
            self._unlock_asked.pop(compartment, None)
            self._energised.add(compartment)
            heapq.heappush(self._releases, (time.monotonic() + self._pulse_s, compartment))
            self._activate(board)
        quiet(self._on_fired, compartment, self._pulse_s)
        self._take(status)

    def _exchange(self, board, frame, tried, tries, sent=None):
        """Send ``frame`` once (``sent``: it was, but for that rest); ``board``'s
        status, or None (logged as try ``tried`` of ``tries``).  Raises
        BusDown if the port fails.  The happy path is one write, one wait
        for 9 bytes and a fixed-offset parse."""
        link = self._link
        if link is None:
            raise BusDown("port closed")
        try:
            if sent is not None:
                buffer = link.finish(sent)
            else:
                if self._stale_input:        # a late reply to an earlier request
                    link.flush_input()
                    self._stale_input = False
                buffer = link.exchange(frame)
            if (len(buffer) == REPLY_LEN and buffer[0] == STX and buffer[1] >> 4 == board
                    and buffer[2] == REPLY_STATUS and buffer[7] == ETX
                    and sum(buffer[:8]) & 0xFF == buffer[8]):
                return BoardStatus(board, buffer[3] | buffer[4] << 8, buffer[5] | buffer[6] << 8)
            self._stale_input = True
            status, why = find_status(buffer, board)
            while status is None and buffer and len(buffer) < MAX_GARBAGE and why != "no reply":
                more = link.read(REPLY_LEN)
                if not more:
                    break
                buffer += more
                status, why = find_status(buffer, board)
        except Exception as exc:
            self._stale_input = True
            raise BusDown(exc) from exc
        if status is None:
            self.errors[board] = self.errors.get(board, 0) + 1
            log.warning("bus %s: board %d, %s (try %d of %d)", self.name, board, why,
                        tried, tries)
        return status

    def _take(self, status):
        """A valid status reply: the board is online, its doors and items are
        news.  An unchanged reply calls nothing (one tuple compare, and a
        mask test for an open door); a change walks only the locks whose
        bits changed."""
        board = status.board
        if self._online.get(board) is not True:
            self._set_online(board, True)
            self._seen.pop(board, None)
        seen = self._seen.get(board)
        now_seen = (status.hooks, status.infrared)
        if seen == now_seen:
            if self._any_open(board, status.hooks):
                with self._cond:
                    self._activate(board)      # a door is open: keep polling it fast
            return
        self._seen[board] = now_seen
        changed_hooks, changed_items = (-1, -1) if seen is None else (
            seen[0] ^ status.hooks, seen[1] ^ status.infrared)
        if not self._item_sensors:
            changed_items = 0
        for lock, compartment in self._by_board.get(board, {}).items():
            bit = 1 << lock
            if changed_hooks & bit:
                state = OPEN if bool(status.hooks & bit) == bool(self._hook_open) else CLOSED
                if self._doors[compartment] != state:
                    self._doors[compartment] = state
                    quiet(self._on_door, compartment, state == OPEN)
            if changed_items & bit:
                present = bool(status.infrared & bit) == bool(self._item_present)
                if self._items.get(compartment) != present:
                    self._items[compartment] = present
                    quiet(self._on_item, compartment, present)
        if seen is not None or self._any_open(board, status.hooks):
            with self._cond:
                self._activate(board)

    def _any_open(self, board, hooks):
        """True if a door of ``board`` that has a compartment is open."""
        return bool((hooks if self._hook_open else ~hooks) & self._masks.get(board, 0))

    def _activate(self, board):
        """(lock held) ``board`` moves (see :func:`set_moving`)."""
        set_moving(self._next_poll, self._active_until, board, time.monotonic(),
                   self._poll_s, self._idle_poll_s)

    def _set_online(self, board, online):
        if self._online.get(board) is online:
            return
        self._online[board] = online
        compartments = tuple(sorted(self._by_board.get(board, {}).values()))
        if not online:
            for compartment in compartments:
                self._doors[compartment] = UNKNOWN
                self._items.pop(compartment, None)
            log.error("bus %s: board %d is offline; its doors are unknown", self.name, board)
        else:
            log.info("bus %s: board %d answers", self.name, board)
        quiet(self._on_board, board_id(self.name, board), online, compartments)
