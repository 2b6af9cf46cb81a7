"""Simulated KR-CU16 boards that answer byte for byte on a real pseudo-terminal.

:class:`SimulatedKerongBus` opens a pty pair and links its slave side at a
stable path (``.path``), which the driver opens exactly like
``/dev/ttyUSB0``.  A thread reads requests from the master side, checks them
as a board would (STX, ETX, checksum; others are ignored), and answers for
the boards it simulates as the wire would: a board reads its inputs once the
request's 5 bytes have arrived, and its reply arrives 9 bytes' time later
(14 bytes: 7.3 ms an exchange at 19200 baud).  An unlock springs the door
open shortly after (unless jammed).  Waiting for requests costs the thread
nothing: it blocks until bytes come (or the port is unplugged or closed).

Faults for tests and the ``/sim`` page: ``silent`` boards answer nothing;
``faults[board]`` is ``"garbage"``, ``"checksum"`` (a wrong SUM),
``"address"`` (another board's reply) or ``"slow"`` (after ``slow_s``);
:meth:`unplug` / :meth:`replug` remove and bring back the port.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import tempfile
import threading
import time
import tty

from bibbox.hal.kerong_protocol import CMD_STATUS, CMD_UNLOCK, ETX, STX, checksum, status_reply

log = logging.getLogger("bibbox.sim.kerong")
GARBAGE = bytes((0xFF, 0x13, 0x02, 0x37, 0x00, 0x99, 0x03, 0x42, 0x02, 0x35, 0xFE))
SPRING_DELAY_S = 0.05


class SimulatedKerongBus:
    """Boards ``boards`` (numbers 0-9), 16 locks each.  ``doors[(board,
    lock)]`` is True while that door is open, ``items[(board, lock)]`` while
    an item is inside.  ``requests`` lists every well-formed request seen."""

    def __init__(self, boards, *, baudrate=19200, hook_open_level=0, item_present_level=1,
                 spring_delay_s=SPRING_DELAY_S, slow_s=0.5, name="bus"):
        self.boards = set(boards)
        self.baudrate = baudrate
        self.hook_open_level, self.item_present_level = hook_open_level, item_present_level
        self.spring_delay_s, self.slow_s = spring_delay_s, slow_s
        self.doors = {(b, lock): False for b in self.boards for lock in range(16)}
        self.items = {(b, lock): False for b in self.boards for lock in range(16)}
        self.jammed: set[tuple[int, int]] = set()
        self.silent: set[int] = set()
        self.faults: dict[int, str] = {}
        self.requests: list[bytes] = []
        self.on_request = None         # called (frame) for every request as it is read off the pty
        self._wake_r, self._wake_w = os.pipe()     # unplug/replug/close wake the thread
        self._lock = threading.RLock()
        self._dir = tempfile.mkdtemp(prefix="bibbox-kerong-")
        self.path = os.path.join(self._dir, f"tty-{name}")
        self._master = self._slave = None
        self._closed = False
        self.plugged = False
        self.replug()
        self._thread = threading.Thread(target=self._run, name=f"sim-kerong-{name}",
                                        daemon=True)
        self._thread.start()

    # -- the world ---------------------------------------------------------------------
    def set_door(self, board, lock, open_):
        """Open or close a door by hand; a jammed door stays shut.  True if it moved."""
        with self._lock:
            if open_ and (board, lock) in self.jammed:
                return False
            self.doors[(board, lock)] = bool(open_)
            return True

    def set_item(self, board, lock, present):
        with self._lock:
            self.items[(board, lock)] = bool(present)

    def set_jammed(self, board, lock, jammed):
        with self._lock:
            (self.jammed.add if jammed else self.jammed.discard)((board, lock))

    def unlocks(self):
        """(board, lock) of every unlock request seen, in order."""
        return [(r[1] >> 4, r[1] & 15) for r in list(self.requests) if r[2] == CMD_UNLOCK]

    # -- the port -----------------------------------------------------------------------
    def unplug(self):
        """The cable is pulled: the port disappears; the driver's reads fail."""
        with self._lock:
            self.plugged = False
            for fd in (self._master, self._slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._master = self._slave = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._wake()

    def replug(self):
        """The cable is back: a new pty, linked at the same path."""
        with self._lock:
            if self.plugged:
                return
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            tmp = self.path + ".new"
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.path)
            self._master, self._slave, self.plugged = master, slave, True
            self._wake()

    def _wake(self):
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass                    # closed

    def close(self):
        self._closed = True
        self._wake()
        self._thread.join(2.0)
        self.unplug()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- answering ------------------------------------------------------------------------
    def _run(self):
        buffer = b""
        while not self._closed:
            master = self._master
            try:
                ready, _, _ = select.select([self._wake_r] if master is None
                                            else [master, self._wake_r], [], [])
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                if master is None or master not in ready:
                    continue
                buffer += os.read(master, 256)
            except (OSError, ValueError):    # unplugged under us
                buffer = b""
                time.sleep(0.02)
                continue
            buffer = self._answer_all(buffer, master)

    def _answer_all(self, buffer, master):
        while len(buffer) >= 5:
            if buffer[0] != STX:
                buffer = buffer[1:]
                continue
            frame, rest = buffer[:5], buffer[5:]
            if frame[3] != ETX or checksum(frame[:4]) != frame[4]:
                buffer = buffer[1:]         # not a request: a board ignores it
                continue
            buffer = rest
            self.requests.append(bytes(frame))
            if self.on_request is not None:
                self.on_request(bytes(frame))
            time.sleep(len(frame) * 10 / self.baudrate)     # the request on the wire
            reply = self._reply(frame)
            if reply is None:
                continue
            time.sleep(len(reply) * 10 / self.baudrate)     # the reply on the wire
            if self.faults.get(frame[1] >> 4) == "slow":    # answers late; the bus moves on
                timer = threading.Timer(self.slow_s, self._write, (master, reply))
                timer.daemon = True
                timer.start()
            else:
                self._write(master, reply)
        return buffer

    @staticmethod
    def _write(master, reply):
        try:
            os.write(master, reply)
        except OSError:
            pass                    # unplugged meanwhile

    def _reply(self, frame):
        board, lock, command = frame[1] >> 4, frame[1] & 15, frame[2]
        if board not in self.boards or board in self.silent:
            return None
        if command == CMD_UNLOCK:
            self._unlock(board, lock)
        elif command != CMD_STATUS:
            return None
        fault = self.faults.get(board)
        if fault == "garbage":
            return GARBAGE
        reply = self._status(board, lock)
        if fault == "checksum":
            reply = reply[:-1] + bytes(((reply[-1] + 1) & 0xFF,))
        elif fault == "address":
            reply = self._status((board + 1) % 10, lock, like=board)
        return reply

    def _status(self, board, lock, like=None):
        source = board if like is None else like
        hooks = infrared = 0
        with self._lock:
            for n in range(16):
                if self.doors[(source, n)] == (self.hook_open_level == 1):
                    hooks |= 1 << n
                if self.items[(source, n)] == (self.item_present_level == 1):
                    infrared |= 1 << n
        return status_reply(board, hooks, infrared, lock)

    def _unlock(self, board, lock):
        if (board, lock) in self.jammed:
            return
        timer = threading.Timer(self.spring_delay_s, self.set_door, (board, lock, True))
        timer.daemon = True
        timer.start()
