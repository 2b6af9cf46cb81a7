"""An optional ESC/POS thermal receipt printer on serial or USB (raw ESC/POS
over pyserial; python-escpos would pull in Pillow and more).

:func:`encode_receipt` turns a receipt into bytes: ``ESC @`` (initialise),
``ESC t 5`` (code page 865, Nordic: æ ø å), the text, a feed and ``GS V 1``
(partial cut).  :class:`ReceiptPrinter` prints on a worker thread of its own:
:meth:`ReceiptPrinter.print_receipt` only queues, so printing never blocks
the controller.  After each receipt it asks the paper sensor (``DLE EOT 4``);
a port that cannot be opened or written, or paper that is out, is reported
through ``on_status(False, reason)`` (the daemon raises an alarm) and a
later good print through ``on_status(True, "")``.  The receipt on the screen
never depends on the printer.  No card number is ever printed: a receipt is
the locker's name, the date, and titles with due dates.
"""

from __future__ import annotations

import logging
import queue
import threading

log = logging.getLogger("bibbox.hal.printer")

ESC, GS, DLE, EOT = b"\x1b", b"\x1d", b"\x10", b"\x04"
INIT = ESC + b"@"
CODE_PAGE_865 = ESC + b"t" + bytes([5])
FEED_AND_CUT = ESC + b"d" + bytes([4]) + GS + b"V" + bytes([1])
PAPER_STATUS = DLE + EOT + bytes([4])
PAPER_OUT_BITS = 0x60          # DLE EOT 4: bits 5 and 6, paper end detected
WIDTH = 32                     # characters per line on 58 mm paper


def encode_receipt(receipt, *, width=WIDTH):
    """``receipt``: {"title": str, "date": str, "lines": [str, ...]} -> bytes."""
    def text(line):
        return line.encode("cp865", errors="replace") + b"\n"

    out = bytearray(INIT + CODE_PAGE_865)
    out += ESC + b"E" + bytes([1]) + text(receipt.get("title", "")[:width]) + \
        ESC + b"E" + bytes([0])
    if receipt.get("date"):
        out += text(receipt["date"][:width])
    out += text("-" * width)
    for line in receipt.get("lines", []):
        while len(line) > width:
            out += text(line[:width])
            line = line[width:]
        out += text(line)
    out += FEED_AND_CUT
    return bytes(out)


class ReceiptPrinter:
    """Raw ESC/POS to ``port`` (a device path or pyserial URL), one worker."""

    def __init__(self, port, baudrate=9600, *, on_status=lambda ok, reason: None,
                 open_port=None, status_timeout_s=0.5):
        self.port, self.baudrate, self.on_status = port, baudrate, on_status
        self._open_port = open_port or self._serial
        self.status_timeout_s = status_timeout_s
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="receipt-printer", daemon=True)
        self._ok = None

    def _serial(self):
        import serial
        return serial.serial_for_url(self.port, self.baudrate, timeout=self.status_timeout_s,
                                     write_timeout=5)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._queue.put(None)
        self._thread.join(timeout)

    def print_receipt(self, receipt):
        """Queue ``receipt`` (see :func:`encode_receipt`); never blocks."""
        self._queue.put(receipt)

    def _run(self):
        while True:
            receipt = self._queue.get()
            if receipt is None:
                return
            try:
                ok, reason = self._print(encode_receipt(receipt))
            except Exception as exc:     # the printer never takes the daemon down
                ok, reason = False, f"printer error: {type(exc).__name__}"
            if ok != self._ok:
                self._ok = ok
                (log.info if ok else log.warning)("receipt printer %s%s",
                                                  "ok" if ok else "failed: ", reason)
                try:
                    self.on_status(ok, reason)
                except Exception:
                    log.exception("receipt printer status handler failed")

    def _print(self, data):
        try:
            port = self._open_port()
        except Exception as exc:
            return False, f"missing: {type(exc).__name__}"
        try:
            port.write(data)
            port.flush()
            port.write(PAPER_STATUS)
            port.flush()
            answer = port.read(1)
        except Exception as exc:
            return False, f"write failed: {type(exc).__name__}"
        finally:
            try:
                port.close()
            except Exception:
                pass
        if answer and answer[0] & PAPER_OUT_BITS:
            return False, "paper_out"
        return True, ""
