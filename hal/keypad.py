"""Optional physical PIN pads, feeding the same patron session as the kiosk.

:class:`PinPad` turns keys into two messages for the controller:
:class:`KeypadDigits` as digits are typed (the kiosk shows dots) and
:class:`PinEntered` on OK.  ``*`` or backspace erases, ``#`` or Enter is OK.  The
digits live only in the pad's buffer until OK and are never logged.

Two key sources:
- a serial keypad: :func:`serial_keypad` reuses the card reader's thread
  (reopen with backoff, health) with :class:`KeyFraming`;
- a GPIO matrix keypad: :class:`MatrixKeypad`, event driven: all rows are
  held low, a column falling edge triggers one scan, no polling.
"""

from __future__ import annotations

import logging
import threading

from bibbox.locker.domain.errors import HardwareError
from bibbox.locker.domain.messages import KeypadDigits, PinEntered

log = logging.getLogger("bibbox.keypad")
KEYS_4X3 = ("123", "456", "789", "*0#")
OK_KEYS = {"#", "\r", "\n"}
ERASE_KEYS = {"*", "\b", "\x7f"}
MAX_DIGITS = 8


class PinPad:
    """Collects digits; ``post(message)`` is the controller's post."""

    def __init__(self, post):
        self._post = post
        self._digits = []
        self._lock = threading.Lock()

    def key(self, key: str):
        with self._lock:
            if key.isdigit() and len(key) == 1:
                if len(self._digits) < MAX_DIGITS:
                    self._digits.append(key)
                self._post(KeypadDigits(len(self._digits)))
            elif key in ERASE_KEYS:
                self._digits.clear()
                self._post(KeypadDigits(0))
            elif key in OK_KEYS:
                text, self._digits = "".join(self._digits), []
                self._post(PinEntered(text))
            else:
                log.debug("keypad: ignored a key that is neither digit, erase nor OK")


class KeyFraming:
    """A serial keypad sends one byte per key.  Same interface as the card
    reader's framings, returning keys instead of card numbers."""

    def __init__(self, inter_char_timeout_s=0.3):
        self.inter_char_timeout_s = inter_char_timeout_s

    def feed(self, data: bytes, now: float):
        return [chr(b) for b in data if chr(b).isdigit() or chr(b) in OK_KEYS | ERASE_KEYS]

    expecting_more = False   # one byte is a whole key

    def take_garbled(self):
        return []

    def reset(self):
        pass


def serial_keypad(url, baudrate, pad: PinPad, on_online=lambda online: None):
    """A reader thread for a serial keypad (start/stop like the card reader).
    Every key is delivered: a PIN may repeat a digit."""
    from bibbox.hal.cardreader import SerialCardReader
    return SerialCardReader(url, baudrate, KeyFraming(), on_card=pad.key,
                            on_online=on_online, repeat_window_s=0.0)


class MatrixKeypad:
    """A row/column keypad on GPIO.  Rows are outputs (held low while idle),
    columns inputs with pull-ups; a press pulls its column low, whose edge
    triggers a scan that drives one row low at a time."""

    def __init__(self, row_pins, col_pins, pin_factory, pad: PinPad, keys=KEYS_4X3):
        from gpiozero import DigitalInputDevice, OutputDevice
        if len(keys) != len(row_pins) or any(len(r) != len(col_pins) for r in keys):
            raise HardwareError("keypad layout does not match its row and column pins")
        self.keys, self.pad = keys, pad
        self._scan_lock = threading.Lock()
        self.rows, self.cols = [], []
        try:
            for pin in row_pins:
                self.rows.append(OutputDevice(pin, active_high=False, initial_value=True,
                                              pin_factory=pin_factory))
            for pin in col_pins:
                col = DigitalInputDevice(pin, pull_up=True, bounce_time=None,
                                         pin_factory=pin_factory)
                col.when_activated = self._pressed
                self.cols.append(col)
        except Exception as exc:
            self.close()
            raise HardwareError(f"keypad pins could not be set up: {exc}") from exc

    def _pressed(self, device=None):
        if not self._scan_lock.acquire(blocking=False):
            return  # the scan itself toggles the columns
        try:
            key = self._scan()
        finally:
            for row in self.rows:
                row.on()
            self._scan_lock.release()
        if key is not None:
            self.pad.key(key)

    def _scan(self):
        for row in self.rows:
            row.off()
        found = None
        for r, row in enumerate(self.rows):
            row.on()
            for c, col in enumerate(self.cols):
                if col.is_active and found is None:
                    found = self.keys[r][c]
            row.off()
        return found

    def stop(self):
        """Release the pins (the card reader's ``stop``, for a matrix pad)."""
        self.close()

    def close(self):
        for device in self.rows + self.cols:
            try:
                device.close()
            except Exception:
                pass
