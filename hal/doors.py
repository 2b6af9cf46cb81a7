"""Door sensors: one reed switch per compartment.

Wiring: reed switch between the pin and ground, internal pull-up on.  With
``closed_when_low`` (the default) a closed door pulls the pin low; set it
False for switches that open when the door closes.
"""

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from gpiozero import DigitalInputDevice

from bibbox.locker.domain.errors import HardwareError

log = logging.getLogger("bibbox.doors")

OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"


@dataclass(frozen=True)
class DoorSpec:
    """One door sensor: its GPIO pin and which level means "closed"."""
    pin: int | str
    closed_when_low: bool = True


class DoorSensors:
    """The door sensors of one locker, keyed by compartment number.

    ``on_change(compartment, is_open)`` is called once for each real change
    of a door (never twice in a row with the same value), on gpiozero's
    event thread; exceptions it raises are logged and ignored.  ``bounce_s``
    is passed to gpiozero as ``bounce_time`` (backends apply it; the mock
    pins ignore it).
    """

    def __init__(self, doors: Mapping[int, DoorSpec], pin_factory, *, bounce_s: float | None = 0.02,
                 on_change: Callable[[int, bool], object] = lambda compartment, is_open: None):
        self._specs = dict(doors)
        self._on_change = on_change
        self._lock = threading.Lock()
        self._devices = {}
        try:
            for compartment, spec in self._specs.items():
                self._devices[compartment] = DigitalInputDevice(
                    spec.pin, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory)
        except Exception as exc:
            self.close()
            raise HardwareError(
                f"door sensor of compartment {compartment} (pin {spec.pin!r}) could not be set up: {exc}"
            ) from exc
        self._last = {c: self.read(c) for c in self._devices}  # last state reported (or found)
        for compartment, device in self._devices.items():
            low_means_open = not self._specs[compartment].closed_when_low
            # pull-up: the device is active while the pin is low
            device.when_activated = partial(self._changed, compartment, low_means_open)
            device.when_deactivated = partial(self._changed, compartment, not low_means_open)

    def read(self, compartment: int) -> str:
        """Return "open", "closed", or "unknown" if the pin cannot be read.

        Raises HardwareError for a compartment without a sensor.
        """
        try:
            device = self._devices[compartment]
        except KeyError:
            raise HardwareError(f"no door sensor for compartment {compartment!r}") from None
        try:
            pin_low = bool(device.value)
        except Exception:
            log.warning("door sensor of compartment %s could not be read", compartment, exc_info=True)
            return UNKNOWN
        return CLOSED if pin_low == self._specs[compartment].closed_when_low else OPEN

    def read_all(self) -> dict[int, str]:
        """Return compartment -> "open" | "closed" | "unknown" for every door."""
        return {c: self.read(c) for c in self._devices}

    def close(self) -> None:
        """Stop callbacks and release the pins; afterwards every door reads "unknown".  Idempotent."""
        for compartment, device in self._devices.items():
            try:
                device.close()
            except Exception:
                log.exception("door sensor of compartment %s could not be released", compartment)

    def _changed(self, compartment, is_open):
        state = OPEN if is_open else CLOSED
        with self._lock:
            if self._last.get(compartment) == state:
                return
            self._last[compartment] = state
        try:
            self._on_change(compartment, is_open)
        except Exception:
            log.exception("door callback for compartment %s failed", compartment)
