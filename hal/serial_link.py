"""What the lock-board bus drivers share: one request and its reply over a
serial port (:class:`Link`, under :class:`~bibbox.hal.kerong.KerongBus`),
when to poll a board next (:func:`next_poll_at`), and how a callback is
called (:func:`quiet`)."""

from __future__ import annotations

import logging
import os
import select
import time

log = logging.getLogger("bibbox.bus")

REPLY_LEN = 9               # a Kerong status reply
ACTIVE_S = 5.0              # a board is polled every poll_s this long after it last moved


def next_poll_at(due, now, active, poll_s, idle_poll_s):
    """When to ask a board again after its reply at ``now`` (it was due at
    ``due``): ``poll_s`` after ``due`` while ``active`` (``poll_s`` after
    ``now`` if the bus fell behind); at rest, the next tick of one grid of
    ``idle_poll_s`` that every board at rest shares, so a quiet bus wakes
    once a round, not once a board (never the tick just served, which float
    rounding can put a hair after ``now``)."""
    if not active and idle_poll_s > poll_s:
        tick = (now // idle_poll_s + 1) * idle_poll_s
        return tick if tick > now + 0.001 else tick + idle_poll_s
    return due + poll_s if due + poll_s > now else now + poll_s


def set_moving(next_poll, active_until, key, now, poll_s, idle_poll_s):
    """``key`` (a board, a unit) moves: poll it every ``poll_s`` for the next
    ``ACTIVE_S`` seconds (then every ``idle_poll_s``), the next time within
    ``poll_s``; the others keep their pace.  True when its next poll came
    earlier (a sleeping bus thread should then wake)."""
    if idle_poll_s == poll_s or key not in next_poll:
        return False
    active_until[key] = now + ACTIVE_S
    if next_poll[key] > now + poll_s:
        next_poll[key] = now + poll_s
        return True
    return False


def quiet(callback, *args):
    """Call a driver's callback; what it raises is logged, never passed on
    (a broken listener must not stop a bus thread)."""
    try:
        callback(*args)
    except Exception:
        log.exception("bus callback %s%r failed", getattr(callback, "__name__", callback), args)


def open_serial(port, baudrate, timeout_s):
    import serial
    return serial.serial_for_url(port, baudrate=baudrate, bytesize=8, parity="N",
                                 stopbits=1, timeout=timeout_s, write_timeout=timeout_s)


class Link:
    """Write a request, read its reply within ``timeout_s``.  A local tty
    (pyserial opens it non-blocking) is written and read with one
    ``os.write``, one ``poll`` and one ``os.read`` an exchange -- pyserial's
    own ``write``/``read`` cost a select and timeout bookkeeping more each,
    about 40 % of a poll's CPU; any other port (a ``socket://`` URL, a test
    double) goes through pyserial."""

    def __init__(self, port, timeout_s):
        self.port, self._timeout_s = port, timeout_s
        try:
            fd = port.fileno()
        except Exception:
            fd = None
        self._fd = fd if isinstance(fd, int) and os.isatty(fd) else None
        self.writes_at_once = self._fd is not None    # send() never waits (a local tty)
        if self._fd is not None:
            self._poller = select.poll()
            self._poller.register(self._fd, select.POLLIN)

    def exchange(self, frame):
        """Send ``frame``; what came back within the timeout, at most a reply's length."""
        return self.finish(self.send(frame))

    def send(self, frame):
        """Write what the port takes of ``frame`` at once (a local tty: one
        ``os.write``, never waiting); return the rest, for :meth:`finish`."""
        if self._fd is None:
            self.port.write(frame)
            return b""
        try:
            written = os.write(self._fd, frame)
        except BlockingIOError:              # the output queue is full: finish waits for room
            written = 0
        return frame[written:]

    def finish(self, rest):
        """The end of an exchange :meth:`send` began: write ``rest`` (within
        the timeout), then the reply, as :meth:`exchange`."""
        if rest:
            self._write_rest(rest)
        return self.read(REPLY_LEN)

    def _write_rest(self, rest):
        """What a full output queue did not take at once, within the timeout
        (an ``OSError`` after it: the port counts as failed)."""
        deadline = time.monotonic() + self._timeout_s
        while rest:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select((), (self._fd,), (), left)[1]:
                raise OSError("the port took no more of the request")
            try:
                rest = rest[os.write(self._fd, rest):]
            except BlockingIOError:
                pass

    def read(self, size):
        """Up to ``size`` bytes, waiting at most the timeout in all."""
        if self._fd is None:
            return self.port.read(size)
        buffer, deadline = b"", time.monotonic() + self._timeout_s
        wait_ms = self._timeout_s * 1000
        while self._poller.poll(wait_ms):
            try:
                chunk = os.read(self._fd, size - len(buffer))
            except BlockingIOError:          # woken with nothing to read: wait on
                chunk = None
            if chunk == b"":                 # ready but empty: the device is gone
                raise OSError("the port has hung up")
            buffer += chunk or b""
            left = deadline - time.monotonic()
            if len(buffer) >= size or left <= 0:
                break
            wait_ms = left * 1000
        return buffer

    def flush_input(self):
        self.port.reset_input_buffer()

    def close(self):
        """Close the port, first dropping what the kernel still holds to
        send: a request given up on (an unlock, say) must not go out late."""
        try:
            self.port.reset_output_buffer()
        except Exception:
            pass
        self.port.close()
