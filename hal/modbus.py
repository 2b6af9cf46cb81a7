"""Modbus RTU relay boards (8-32 channels): coils drive locks, discrete
inputs read doors.  Built on minimalmodbus (pure pyserial; it adds about
0.3 MB to the daemon, pymodbus about 2.5 MB).

Unlike a Kerong board, a relay board holds a coil on for as long as it is
told, so pulses are timed here, by a :class:`~bibbox.hal.relays.RelayBank`
whose devices are coils: never longer than ``max_pulse_s``, never more than
``max_coils`` at once, every coil written off at start, on stop and when a
start fails.  One request is in flight at a time (a lock around the port),
and coil writes go first: the poll thread makes each try of a read on its
own and lets a waiting write in before the next, so a write waits at most
for the one read on the wire, never for a silent unit's retries.  The poll
thread asks a unit for its inputs every ``poll_s`` while it moves (a coil
went on, a door changed in the last ``ACTIVE_S`` seconds, or is open) and
every ``idle_poll_s`` at rest, as :class:`~bibbox.hal.kerong.KerongBus`
does; a unit that stays silent is reported offline (``on_board``), its
doors "unknown"; a failed port is reopened with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from bibbox.hal.serial_link import next_poll_at, open_serial, quiet, set_moving
from bibbox.hal.relays import RelayBank
from bibbox.locker.domain.buses import NO_CHANNEL, board_id
from bibbox.locker.domain.errors import HardwareError

log = logging.getLogger("bibbox.modbus")
OFFLINE_POLL_S = 1.0
REOPEN_FIRST_S, REOPEN_MAX_S = 0.2, 5.0
OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"


class _Coil:
    """One coil, as a RelayBank device.  ``on``/``off`` raise if the write
    fails (the bank then retries the off)."""

    def __init__(self, bus, unit, coil):
        self.bus, self.unit, self.coil = bus, unit, coil
        self.is_active, self.closed = False, False

    def on(self):
        self.bus.write_coil(self.unit, self.coil, True)
        self.is_active = True

    def off(self):
        self.bus.write_coil(self.unit, self.coil, False)
        self.is_active = False

    def close(self):
        self.closed = True


class ModbusBus:
    """The relay boards on one Modbus RTU port.  ``channels`` maps
    compartment -> (unit, coil, input); input -1 means no door sensor."""

    def __init__(self, name: str, port: str, channels: Mapping[int, tuple[int, int, int]], *,
                 baudrate: int = 9600, poll_s: float = 0.08, timeout_s: float = 0.1,
                 idle_poll_s: float | None = None,
                 retries: int = 2, input_open_level: int = 1, max_pulse_s: float = 0.8,
                 max_coils: int = 1, units=(), on_fired=lambda c, s: None,
                 on_released=lambda c: None, on_door_change=lambda c, o: None,
                 on_item=lambda c, p: None, on_board=lambda b, o, cs: None,
                 opener=open_serial):
        import minimalmodbus
        self._minimalmodbus = minimalmodbus
        self.name, self.port_name = name, port
        self._channels = dict(channels)
        self._baudrate, self._poll_s, self._timeout_s = baudrate, poll_s, timeout_s
        self._idle_poll_s = poll_s if idle_poll_s is None else max(poll_s, idle_poll_s)
        self._tries, self._open_level = 1 + retries, input_open_level
        self._on_door, self._on_board = on_door_change, on_board
        self._opener = opener
        self._io = threading.Lock()           # one request in flight
        self._writers, self._writers_lock = 0, threading.Lock()
        self._no_writer = threading.Event()   # set while no coil write waits for the port
        self._no_writer.set()
        self._wake = threading.Event()
        self._instrument = None
        self._reopen_at, self._reopen_s = 0.0, REOPEN_FIRST_S
        self._units: dict[int, dict[int, int]] = {u: {} for u in units}
        for compartment, (unit, _coil, door_input) in self._channels.items():
            inputs = self._units.setdefault(unit, {})
            if door_input != NO_CHANNEL:
                inputs[door_input] = compartment
        self._online: dict[int, bool | None] = dict.fromkeys(self._units)
        self._next_poll = dict.fromkeys(self._units, 0.0)
        self._active_until = dict.fromkeys(self._units, 0.0)
        # the two above change from the poll thread and from coil writes
        self._schedule = threading.Lock()
        self._doors = dict.fromkeys(self._channels, UNKNOWN)
        self._closed = False
        self._open_port()
        for compartment, (unit, coil, _) in sorted(self._channels.items()):
            try:                               # every coil off at start, best effort
                self.write_coil(unit, coil, False)
            except HardwareError as exc:
                log.error("bus %s: coil %d of unit %d not switched off at start: %s",
                          name, coil, unit, exc)
        self.bank = RelayBank({c: (u, coil) for c, (u, coil, _) in self._channels.items()},
                              self, max_pulse_s=max_pulse_s, max_coils=max_coils,
                              on_fired=on_fired, on_released=on_released,
                              open_relay=lambda spec, bus: _Coil(bus, *spec))
        self._poll_all_once()
        self._thread = threading.Thread(target=self._run, name=f"bibbox-modbus-{name}",
                                        daemon=True)
        self._thread.start()

    # -- requests (any thread; one at a time) --------------------------------------------
    def write_coil(self, unit, coil, value):
        """Write one coil, with retries, ahead of any poll still to come."""
        with self._writers_lock:
            self._writers += 1
            self._no_writer.clear()
        try:
            self._request(unit, lambda inst: inst.write_bit(coil, int(value), functioncode=5))
        finally:
            with self._writers_lock:
                self._writers -= 1
                if not self._writers:
                    self._no_writer.set()
        if value:
            self._activate(unit)

    def _read_inputs(self, unit, first, count):
        """Read inputs, each try on its own after any coil write waiting."""
        def read(inst):
            return inst.read_bits(first, count, functioncode=2)
        tries = self._tries if self._online.get(unit) is not False else 1
        for attempt in range(tries):
            self._no_writer.wait()
            done, result = self._request(unit, read, tries=(attempt, tries))
            if done:
                return result
        raise HardwareError(f"bus {self.name!r} unit {unit}: {result}")

    def _request(self, unit, call, tries=None):
        """Run ``call(instrument)`` for ``unit`` with retries; HardwareError
        after the last try (the unit then counts as offline).  With ``tries``
        = (attempt, of): that one try only, as (True, result) or (False, why)."""
        mm = self._minimalmodbus
        why = "port closed"
        attempts = range(self._tries) if tries is None else (tries[0],)
        of = self._tries if tries is None else tries[1]
        with self._io:
            for attempt in attempts:
                if self._instrument is None and not self._open_port():
                    break
                self._instrument.address = unit
                try:
                    result = call(self._instrument)
                    return result if tries is None else (True, result)
                except (mm.ModbusException, ValueError) as exc:
                    why = f"{type(exc).__name__}: {exc}"
                    log.warning("bus %s: unit %d, %s (try %d of %d)", self.name, unit, why,
                                attempt + 1, of)
                except Exception as exc:      # the port itself (unplugged)
                    why = f"port failed: {exc}"
                    self._port_failed(exc)
        if tries is not None:
            return False, why
        raise HardwareError(f"bus {self.name!r} unit {unit}: {why}")

    def _open_port(self):
        if time.monotonic() < self._reopen_at:
            return False
        try:
            serial = self._opener(self.port_name, self._baudrate, self._timeout_s)
            self._instrument = self._minimalmodbus.Instrument(serial, 1)
            self._instrument.clear_buffers_before_each_transaction = True
        except Exception as exc:
            self._port_failed(exc)
            return False
        self._reopen_s = REOPEN_FIRST_S
        return True

    def _port_failed(self, exc):
        instrument, self._instrument = self._instrument, None
        if instrument is not None:
            for step in (instrument.serial.reset_output_buffer,   # a coil write given up
                         instrument.serial.close):                # on must not go out late
                try:
                    step()
                except Exception:
                    pass
        log.error("bus %s: port %s failed (%s); reopening in %.1f s", self.name,
                  self.port_name, exc, self._reopen_s)
        self._reopen_at = time.monotonic() + self._reopen_s
        self._reopen_s = min(self._reopen_s * 2, REOPEN_MAX_S)

    # -- polling -----------------------------------------------------------------------
    def _run(self):
        while not self._closed:
            now = time.monotonic()
            due = [u for u, t in self._next_poll.items() if t <= now]
            for unit in due:
                if self._closed:
                    return
                self._poll(unit)
            self._wake.clear()
            wait = min(self._next_poll.values(), default=now + 60) - time.monotonic()
            self._wake.wait(max(0.0, wait))

    def _activate(self, unit):
        """``unit`` moves (see :func:`set_moving`); wake the bus thread when
        its next poll came earlier."""
        with self._schedule:
            hastened = set_moving(self._next_poll, self._active_until, unit, time.monotonic(),
                                  self._poll_s, self._idle_poll_s)
        if hastened:
            self._wake.set()

    def _poll_all_once(self):
        for unit in self._units:
            self._poll(unit)

    def _poll(self, unit):
        inputs = self._units[unit]
        now = time.monotonic()
        if not inputs:                         # coils only: nothing to read
            self._next_poll[unit] = now + 3600
            return
        first, last = min(inputs), max(inputs)
        try:
            bits = self._read_inputs(unit, first, last - first + 1)
        except HardwareError as exc:
            self._next_poll[unit] = now + OFFLINE_POLL_S
            if self._online[unit] is not False:
                log.error("bus %s: unit %d is offline (%s); its doors are unknown",
                          self.name, unit, exc)
            self._set_online(unit, False)
            return
        with self._schedule:
            self._next_poll[unit] = next_poll_at(self._next_poll[unit], now,
                                                 now < self._active_until[unit], self._poll_s,
                                                 self._idle_poll_s)
        self._set_online(unit, True)
        moved = False
        for door_input, compartment in inputs.items():
            state = OPEN if bits[door_input - first] == self._open_level else CLOSED
            moved = moved or state == OPEN
            if self._doors[compartment] != state:
                moved = moved or self._doors[compartment] != UNKNOWN   # not the first reading
                self._doors[compartment] = state
                quiet(self._on_door, compartment, state == OPEN)
        if moved:
            self._activate(unit)

    def _set_online(self, unit, online):
        if self._online.get(unit) is online:
            return
        self._online[unit] = online
        compartments = tuple(sorted(c for c, (u, _, _) in self._channels.items() if u == unit))
        if not online:
            for compartment in compartments:
                self._doors[compartment] = UNKNOWN
        quiet(self._on_board, board_id(self.name, unit), online, compartments)

    # -- the port (LockDriver) -----------------------------------------------------------
    def pulse(self, compartment, seconds):
        self.bank.pulse(compartment, seconds)

    def prepare_unlock(self, compartments):
        """Nothing: a coil write already goes before the next try of a read."""

    def expect_unlock(self, compartments):
        """Nothing: a coil write already goes before the next try of a read."""

    def read(self, compartment):
        if compartment not in self._doors:
            raise HardwareError(f"no door on bus {self.name!r} for compartment {compartment!r}")
        return self._doors[compartment]

    def read_all(self):
        return dict(self._doors)

    def items(self):
        return {}

    def health(self):
        return {board_id(self.name, u): bool(online) for u, online in self._online.items()}

    def states(self):
        return self.bank.states()

    def all_off(self):
        self.bank.all_off()

    def close(self):
        """Every coil off (the bank), then the poll thread and the port."""
        self.bank.close()
        self._closed = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2.0)
        with self._io:
            if self._instrument is not None:
                try:
                    self._instrument.serial.close()
                except Exception:
                    pass
                self._instrument = None
