"""Lock drivers: GPIO pins as one driver, and several drivers as one.

Each driver offers :class:`~bibbox.locker.domain.ports.LockDriver` for its
own compartments.  :class:`GpioLocks` is today's :class:`RelayBank` and
:class:`DoorSensors` (plus optional GPIO item sensors) behind that port;
:class:`LockDrivers` routes each compartment to the driver that has it, so
a locker may keep a few doors on GPIO and the rest on boards.
"""

from __future__ import annotations

import logging

from bibbox.locker.domain.errors import HardwareError

log = logging.getLogger("bibbox.locks")


class GpioLocks:
    """Relays and door sensors on the Pi's pins.  ``items`` (optional) are
    :class:`DoorSensors` on item inputs: "closed" means an item is there."""

    def __init__(self, relays, doors, items=None):
        self.relays, self.doors, self.item_sensors = relays, doors, items
        self.compartments = frozenset(relays.states())

    def pulse(self, compartment, seconds):
        self.relays.pulse(compartment, seconds)

    def prepare_unlock(self, compartments):
        """Nothing: a GPIO relay has no bus to keep free."""

    def expect_unlock(self, compartments):
        """Nothing: a GPIO relay has no bus to keep free."""

    def read(self, compartment):
        return self.doors.read(compartment)

    def read_all(self):
        return self.doors.read_all()

    def items(self):
        if self.item_sensors is None:
            return {}
        return {c: s == "closed" for c, s in self.item_sensors.read_all().items()
                if s != "unknown"}

    def health(self):
        return {}

    def states(self):
        return self.relays.states()

    def all_off(self):
        self.relays.all_off()

    def close(self):
        """Every relay off, then the sensors released."""
        for part in (self.relays, self.doors, self.item_sensors):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    log.exception("closing %s failed", type(part).__name__)


class LockDrivers:
    """Several lock drivers as one, by compartment.  Closing closes the
    GPIO relays first (they are the coils we time), then the buses."""

    def __init__(self, drivers):
        self.drivers = list(drivers)
        self.closed = False
        self._route = {}
        for driver in self.drivers:
            for compartment in driver.read_all():
                self._route[compartment] = driver

    def _driver(self, compartment):
        try:
            return self._route[compartment]
        except KeyError:
            raise HardwareError(f"no lock for compartment {compartment!r}") from None

    def pulse(self, compartment, seconds):
        self._driver(compartment).pulse(compartment, seconds)

    def prepare_unlock(self, compartments):
        self._hint("prepare_unlock", compartments)

    def expect_unlock(self, compartments):
        self._hint("expect_unlock", compartments)

    def _hint(self, name, compartments):
        """Hand each driver the hinted compartments it has (unknown ones are
        ignored).  Never raises: a hint that fails only costs its speed-up."""
        mine = {}
        for compartment in compartments:
            driver = self._route.get(compartment)
            if driver is not None:
                mine.setdefault(id(driver), (driver, []))[1].append(compartment)
        for driver, numbers in mine.values():
            try:
                getattr(driver, name)(numbers)
            except Exception:
                log.exception("%s of %s failed", name, type(driver).__name__)

    def read(self, compartment):
        return self._driver(compartment).read(compartment)

    def read_all(self):
        return self._merged("read_all")

    def items(self):
        return self._merged("items")

    def health(self):
        return self._merged("health")

    def states(self):
        return self._merged("states")

    def _merged(self, name):
        out = {}
        for driver in self.drivers:
            out.update(getattr(driver, name)())
        return out

    def all_off(self):
        failures = []
        for driver in self.drivers:
            try:
                driver.all_off()
            except Exception as exc:
                log.exception("all_off of %s failed", type(driver).__name__)
                failures.append(exc)
        if failures:
            raise HardwareError(f"{len(failures)} lock driver(s) could not switch off")

    def close(self):
        """Close every driver (GPIO relays first).  Idempotent."""
        self.closed = True
        for driver in sorted(self.drivers, key=lambda d: not isinstance(d, GpioLocks)):
            try:
                driver.close()
            except Exception:
                log.exception("closing %s failed", type(driver).__name__)
