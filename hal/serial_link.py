"""One request, one reply, over a serial port: the I/O under
:class:`~bibbox.hal.kerong.KerongBus`."""

from __future__ import annotations

import os
import select
import time

REPLY_LEN = 9               # a Kerong status reply


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
        if self._fd is not None:
            self._poller = select.poll()
            self._poller.register(self._fd, select.POLLIN)

    def exchange(self, frame):
        """Send ``frame``; what came back within the timeout, at most a reply's length."""
        if self._fd is None:
            self.port.write(frame)
            return self.port.read(REPLY_LEN)
        if os.write(self._fd, frame) != len(frame):
            raise OSError("short write")
        return self.read(REPLY_LEN)

    def read(self, size):
        """Up to ``size`` bytes, waiting at most the timeout in all."""
        if self._fd is None:
            return self.port.read(size)
        buffer, deadline = b"", time.monotonic() + self._timeout_s
        wait_ms = self._timeout_s * 1000
        while self._poller.poll(wait_ms):
            chunk = os.read(self._fd, size - len(buffer))
            if not chunk:                    # ready but empty: the device is gone
                raise OSError("the port has hung up")
            buffer += chunk
            if len(buffer) >= size:
                break
            wait_ms = max(0.0, deadline - time.monotonic()) * 1000
        return buffer

    def flush_input(self):
        self.port.reset_input_buffer()

    def close(self):
        self.port.close()
