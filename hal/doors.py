"""Door sensors: one reed switch per compartment.

Wiring: reed switch between the pin and ground, internal pull-up on.  With
``closed_when_low`` (the default) a closed door pulls the pin low; set it
False for switches that open when the door closes.

Debouncing reports the *leading* edge.  gpiozero hands ``bounce_time`` to the
backend, and on lgpio (every Pi 5, and Pi OS's RPi.GPIO shim) that becomes
``gpio_set_debounce_micros``: an edge is reported only once the new level has
been stable for the whole window, which adds the window to every door change.
Here no bounce time reaches gpiozero: the first edge of a change is reported
at once, the bounces inside the window after it are ignored, and at the end of
the window the level is read again, so a door that settled the other way is
still reported.  Debouncing adds no latency; one thread per bank of sensors
reads the doors whose window ended, and it sleeps while no window is open.
"""

import logging
import threading
import time
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
    event thread or, for a door that settled during a bounce window, on a
    short timer thread; exceptions it raises are logged and ignored.
    ``bounce_s`` is the window after a reported change in which further
    edges are ignored (see the module's docstring); None or 0 turns it off.
    """

    def __init__(self, doors: Mapping[int, DoorSpec], pin_factory, *, bounce_s: float | None = 0.02,
                 on_change: Callable[[int, bool], object] = lambda compartment, is_open: None,
                 monotonic: Callable[[], float] = time.monotonic):
        self._specs = dict(doors)
        self._on_change = on_change
        self._bounce_s = bounce_s or 0.0
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._windows_changed = threading.Condition(self._lock)
        self._quiet_until = {}        # compartment -> end of its bounce window
        self._settler = None          # the thread that reads doors when windows end
        self._closed = False
        self._devices = {}
        try:
            for compartment, spec in self._specs.items():
                self._devices[compartment] = DigitalInputDevice(
                    spec.pin, pull_up=True, bounce_time=None, pin_factory=pin_factory)
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
        with self._lock:
            self._closed = True
            self._quiet_until.clear()
            self._windows_changed.notify_all()
            settler = self._settler
        if settler is not None and settler is not threading.current_thread():
            settler.join(1.0)
        for compartment, device in self._devices.items():
            try:
                device.close()
            except Exception:
                log.exception("door sensor of compartment %s could not be released", compartment)

    def settling(self) -> bool:
        """True while some door's bounce window is still open."""
        with self._lock:
            return bool(self._quiet_until)

    def _changed(self, compartment, is_open):
        """An edge from gpiozero: report it at once unless it is a bounce."""
        state = OPEN if is_open else CLOSED
        with self._lock:
            if self._closed:
                return
            if self._monotonic() < self._quiet_until.get(compartment, 0.0):
                return                      # a bounce; the window's end reads the level
            if self._last.get(compartment) == state:
                return
            self._last[compartment] = state
            self._open_window(compartment)
        self._report(compartment, is_open)

    def _open_window(self, compartment):
        """Ignore this door's edges for ``bounce_s``; the settler reads its
        level when the window ends (lock held)."""
        if not self._bounce_s:
            return
        self._quiet_until[compartment] = self._monotonic() + self._bounce_s
        if self._settler is None:
            self._settler = threading.Thread(target=self._settle_loop, name="door-settle",
                                             daemon=True)
            self._settler.start()
        self._windows_changed.notify()

    def _settle_loop(self):
        """Wait for the earliest window to end, read those doors, repeat;
        asleep (no timeout) while no window is open."""
        while True:
            with self._lock:
                while not self._closed:
                    if not self._quiet_until:
                        self._windows_changed.wait()
                        continue
                    now = self._monotonic()
                    ended = [c for c, end in self._quiet_until.items() if end <= now]
                    if ended:
                        break
                    self._windows_changed.wait(min(self._quiet_until.values()) - now)
                if self._closed:
                    return
                for compartment in ended:
                    del self._quiet_until[compartment]
            for compartment in ended:
                self._window_ended(compartment)

    def _window_ended(self, compartment):
        """The bounce window is over: if the door settled the other way, report it."""
        state = self.read(compartment)
        with self._lock:
            if self._closed or state == UNKNOWN or self._last.get(compartment) == state:
                return
            self._last[compartment] = state
            self._open_window(compartment)
        self._report(compartment, state == OPEN)

    def _report(self, compartment, is_open):
        try:
            self._on_change(compartment, is_open)
        except Exception:
            log.exception("door callback for compartment %s failed", compartment)
