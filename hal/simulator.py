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

from bibbox.hal.kerong_sim import SimulatedKerongBus
from bibbox.locker.domain.errors import HardwareError

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
        gpio = [c for c in cfg.compartments if not c.bus]
        self.by_relay_pin = {c.relay_pin: c.number for c in gpio}
        self.door_pins = {c.number: c.door_pin for c in gpio}
        self.relay_pins = {c.number: c.relay_pin for c in gpio}
        self.jammed = {c.number: False for c in gpio}
        self.item_pins = {c.number: c.item_pin for c in gpio if c.item_pin >= 0}
        self.buses, self.on_board = {}, {}   # bus name -> SimulatedKerongBus; number -> (bus, board, lock)
        self.board_items = set()             # numbers on a bus with item sensors
        for bus in cfg.buses:
            if bus.kind != "kerong":
                raise HardwareError(f"bus {bus.name!r}: only kerong buses are simulated")
            mine = [c for c in cfg.compartments if c.bus == bus.name]
            self.buses[bus.name] = SimulatedKerongBus(
                {c.board for c in mine} | set(bus.boards), baudrate=bus.baudrate,
                hook_open_level=bus.hook_open_level, item_present_level=bus.item_present_level,
                name=bus.name)
            self.on_board.update({c.number: (self.buses[bus.name], c.board, c.lock)
                                  for c in mine})
            if bus.item_sensors:
                self.board_items.update(c.number for c in mine)
        self.numbers = sorted([*self.door_pins, *self.on_board])
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
            for number in self.item_pins:
                self._pin(self.item_pins[number]).drive_high()   # empty
        for bus, board, lock in self.on_board.values():
            bus.set_door(board, lock, False)

    # -- doors -----------------------------------------------------------------
    def _pin(self, gpio):
        return self.factory.pin(gpio)

    def _drive_door(self, number, open_):
        pin = self._pin(self.door_pins[number])
        if pin.function != "input":
            pin.function = "input"
        high = open_ if self.closed_when_low else not open_
        (pin.drive_high if high else pin.drive_low)()

    def bus_path(self, name):
        """The pseudo-terminal the driver of bus ``name`` opens."""
        return self.buses[name].path

    def door_is_open(self, number):
        if number in self.on_board:
            bus, board, lock = self.on_board[number]
            return bus.doors[(board, lock)]
        state = self._pin(self.door_pins[number]).state
        return bool(state) if self.closed_when_low else not state

    def is_jammed(self, number):
        if number in self.on_board:
            bus, board, lock = self.on_board[number]
            return (board, lock) in bus.jammed
        return self.jammed[number]

    def item_present(self, number):
        """Is an item inside (None: the compartment has no item sensor)?"""
        if number in self.board_items:
            bus, board, lock = self.on_board[number]
            return bus.items[(board, lock)]
        if number in self.item_pins:
            return not self._pin(self.item_pins[number]).state   # pulled low by an item
        return None

    def set_item(self, number, present):
        """Put an item in (or take it out of) a compartment with an item sensor.
        False if it has none."""
        with self._lock:
            if number in self.board_items:
                bus, board, lock = self.on_board[number]
                bus.set_item(board, lock, present)
                return True
            if number in self.item_pins:
                pin = self._pin(self.item_pins[number])
                (pin.drive_low if present else pin.drive_high)()
                return True
            return False

    def set_door(self, number, open_):
        """Open or close a door by hand (the patron or staff)."""
        if number in self.on_board:
            bus, board, lock = self.on_board[number]
            return bus.set_door(board, lock, open_)
        with self._lock:
            if open_ and self.jammed[number]:
                log.info("sim: door %d is jammed and stays shut", number)
                return False
            self._drive_door(number, open_)
            return True

    def set_jammed(self, number, jammed):
        if number in self.on_board:
            bus, board, lock = self.on_board[number]
            bus.set_jammed(board, lock, jammed)
            return
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
        if number in self.on_board:
            return False            # a board times its own pulse
        state = self._pin(self.relay_pins[number]).state
        return bool(state) == self.relay_active_high

    # -- card reader -------------------------------------------------------------
    def write_card(self, data: bytes):
        """Write raw bytes into the reader's serial line."""
        os.write(self._master, data)

    def state(self):
        return {
            "relays": {str(n): "on" if self.relay_energised(n) else "off"
                       for n in self.numbers},
            "doors": {str(n): {"open": self.door_is_open(n), "jammed": self.is_jammed(n),
                               "item": self.item_present(n), **self._where(n)}
                      for n in self.numbers},
            "buses": {name: {"path": bus.path, "plugged": bus.plugged,
                             "silent": sorted(bus.silent), "boards": sorted(bus.boards)}
                      for name, bus in self.buses.items()},
            "reader": self.reader_path,
            "patrons": self.patrons,
        }

    def _where(self, number):
        if number in self.on_board:
            bus, board, lock = self.on_board[number]
            return {"bus": next(n for n, b in self.buses.items() if b is bus),
                    "board": board, "lock": lock}
        return {"relay_pin": self.relay_pins[number], "door_pin": self.door_pins[number]}

    def set_board_silent(self, bus, board, silent):
        """Make a simulated board stop answering (or answer again)."""
        target = self.buses[bus].silent
        (target.add if silent else target.discard)(board)

    def close(self):
        for bus in self.buses.values():
            bus.close()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def _gpio_number(pin):
    """The BCM number of a mock pin (its info name is ``GPIO17``)."""
    name = pin.info.name
    return int(name[4:]) if name.startswith("GPIO") else None
