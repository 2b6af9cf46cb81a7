"""The simulated locker's hardware: virtual doors, locks and card reader.

Pins come from gpiozero's ``MockFactory``, so the same relay and door
adapters run as on a Pi.  A released lock springs its door open a moment
later (unless the door is jammed); doors close when told.  The card reader is
a real pseudo-terminal: the reader thread opens its slave side exactly as it
would open ``/dev/ttyUSB0``, and :meth:`SimulatedHardware.write_card` writes
raw bytes into the master side.
"""

from __future__ import annotations

import logging
import os
import threading
import tty

from gpiozero.pins.mock import MockFactory, MockPin

log = logging.getLogger("bibbox.sim")
SPRING_DELAY_S = 0.05   # a released solenoid lets the door spring open this late


class _WatchedPin(MockPin):
    """A MockPin that reports its output level changes to the simulator."""

    def _change_state(self, value):
        changed = super()._change_state(value)
        watcher = getattr(self.factory, "output_watcher", None)
        if changed and self._function == "output" and watcher is not None:
            watcher(self, value)
        return changed


class SimulatedHardware:
    """Virtual hardware for ``cfg``.  ``factory`` is the pin factory to hand
    to the relay and door adapters."""

    def __init__(self, cfg):
        self.factory = MockFactory(pin_class=_WatchedPin)
        self.factory.output_watcher = self._output_changed
        self.relay_active_high = cfg.hardware.relay_active_high
        self.closed_when_low = cfg.hardware.door_closed_when_low
        self.by_relay_pin = {c.relay_pin: c.number for c in cfg.compartments}
        self.door_pins = {c.number: c.door_pin for c in cfg.compartments}
        self.relay_pins = {c.number: c.relay_pin for c in cfg.compartments}
        self.jammed = {c.number: False for c in cfg.compartments}
        self._lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.reader_path = os.ttyname(self._slave)
        self.patrons = []          # made-up demo patrons, shown on /sim only

    def close_all_doors(self):
        """Shut every door.  Call after the door sensors exist: creating a
        pull-up input re-drives the mock pin to its pull level (open)."""
        with self._lock:
            for number in self.door_pins:
                self._drive_door(number, open_=False)

    # -- doors -----------------------------------------------------------------
    def _pin(self, gpio):
        return self.factory.pin(gpio)

    def _drive_door(self, number, open_):
        pin = self._pin(self.door_pins[number])
        if pin.function != "input":
            pin.function = "input"
        high = open_ if self.closed_when_low else not open_
        (pin.drive_high if high else pin.drive_low)()

    def door_is_open(self, number):
        state = self._pin(self.door_pins[number]).state
        return bool(state) if self.closed_when_low else not state

    def set_door(self, number, open_):
        """Open or close a door by hand (the patron or staff)."""
        with self._lock:
            if open_ and self.jammed[number]:
                log.info("sim: door %d is jammed and stays shut", number)
                return False
            self._drive_door(number, open_)
            return True

    def set_jammed(self, number, jammed):
        with self._lock:
            self.jammed[number] = bool(jammed)

    def _output_changed(self, pin, value):
        number = self.by_relay_pin.get(_gpio_number(pin))
        if number is None:
            return
        energised = value == self.relay_active_high
        if energised and not self.jammed[number]:
            timer = threading.Timer(SPRING_DELAY_S, self.set_door, (number, True))
            timer.daemon = True
            timer.start()

    def relay_energised(self, number):
        state = self._pin(self.relay_pins[number]).state
        return bool(state) == self.relay_active_high

    # -- card reader -------------------------------------------------------------
    def write_card(self, data: bytes):
        """Write raw bytes into the reader's serial line."""
        os.write(self._master, data)

    def state(self):
        return {
            "relays": {str(n): "on" if self.relay_energised(n) else "off"
                       for n in sorted(self.relay_pins)},
            "doors": {str(n): {"open": self.door_is_open(n), "jammed": self.jammed[n]}
                      for n in sorted(self.door_pins)},
            "reader": self.reader_path,
            "patrons": self.patrons,
        }

    def close(self):
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def _gpio_number(pin):
    """The BCM number of a mock pin (its info name is ``GPIO17``)."""
    name = pin.info.name
    return int(name[4:]) if name.startswith("GPIO") else None
