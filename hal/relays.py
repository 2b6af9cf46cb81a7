"""Lock solenoid relays: timed pulses with hard safety limits.

A solenoid left energised overheats, so these rules hold whatever the caller
or a callback does:

* every relay is created off, and ``close()`` leaves every relay off;
* a coil is on for at most ``max_pulse_s`` (requests are cut to the cap);
* at most ``max_coils`` coils are on at once (protects the power supply);
  further pulses wait in FIFO order;
* ``all_off()`` and ``close()`` drive every pin off at once, even if the
  worker is stuck (they wait at most ``LOCK_TIMEOUT_S`` for it).

Timing runs on one worker thread that never executes caller code.  The
callbacks ``on_fired``/``on_released`` run in order on a separate notifier
thread, so a slow or hanging callback (a database write, say) can delay the
acknowledgement but never keeps a coil on.
"""

import atexit
import heapq
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gpiozero import OutputDevice

from bibbox.locker.domain.errors import HardwareError

log = logging.getLogger("bibbox.relays")

LOCK_TIMEOUT_S = 0.5  # all_off()/close() wait this long for the worker, then force pins anyway
JOIN_TIMEOUT_S = 2.0  # close() waits this long for each thread to finish
OFF_RETRY_S = 1.0  # a coil whose pin could not be switched off is retried this often


@dataclass(frozen=True)
class RelaySpec:
    """One relay: its GPIO pin and polarity (relay boards are usually active-low)."""
    pin: int | str
    active_high: bool = False


def drive_all_off(relays: Mapping[int, RelaySpec], pin_factory) -> None:
    """Drive every relay in ``relays`` (compartment -> RelaySpec) off, then release its pin.

    For ``bibbox safe-off`` after a crash.  Tries every relay even if some
    fail, then raises HardwareError naming the failed compartments.
    """
    failed = []
    for compartment, spec in relays.items():
        try:
            _open_relay(spec, pin_factory).close()
        except Exception:
            log.exception("relay %s (pin %r) could not be driven off", compartment, spec.pin)
            failed.append(compartment)
    if failed:
        raise HardwareError(f"relays of compartments {failed} could not be driven off")


def _join(thread):
    if thread is threading.current_thread():  # close() called from a callback
        return
    thread.join(JOIN_TIMEOUT_S)
    if thread.is_alive():
        log.error("relay thread %s did not stop within %.1f s", thread.name, JOIN_TIMEOUT_S)


def _open_relay(spec, pin_factory):
    return OutputDevice(spec.pin, active_high=spec.active_high, initial_value=False,
                        pin_factory=pin_factory)


class RelayBank:
    """The relays of one locker, keyed by compartment number.

    ``on_fired(compartment, pulse_s)`` is called after a coil went on (with
    the capped duration), ``on_released(compartment)`` after it went off --
    also when ``all_off()``/``close()`` switched it off early.  ``open_relay(spec,
    pin_factory)`` makes a device (default: a gpiozero OutputDevice, created
    off); another driver may pass its own with ``on()``, ``off()``,
    ``is_active``, ``closed`` and ``close()`` (a Modbus coil).  Both are
    called on the notifier thread, in the order the events happened;
    exceptions they raise are logged and ignored.
    """

    def __init__(self, relays: Mapping[int, RelaySpec], pin_factory, *, max_pulse_s: float = 5.0,
                 max_coils: int = 1,
                 on_fired: Callable[[int, float], object] = lambda compartment, pulse_s: None,
                 on_released: Callable[[int], object] = lambda compartment: None,
                 open_relay: Callable[[object, object], object] | None = None):
        if not 0 < max_pulse_s < math.inf:
            raise ValueError(f"max_pulse_s must be a positive number of seconds, not {max_pulse_s!r}")
        if max_coils < 1:
            raise ValueError(f"max_coils must be at least 1, not {max_coils!r}")
        self._max_pulse_s = float(max_pulse_s)
        self._max_coils = int(max_coils)
        self._on_fired = on_fired
        self._on_released = on_released
        self._cond = threading.Condition()
        self._waiting = deque()  # (compartment, pulse_s), FIFO
        self._energised = {}  # compartment -> deadline (monotonic)
        self._deadlines = []  # heap of (deadline, compartment)
        self._events = queue.SimpleQueue()  # (callback, *args) for the notifier, None = stop
        self._close_guard = threading.Lock()
        self._closed = False
        self._devices = {}
        try:
            for compartment, spec in relays.items():
                self._devices[compartment] = (open_relay or _open_relay)(spec, pin_factory)
        except Exception as exc:
            self._close_devices()
            raise HardwareError(
                f"relay of compartment {compartment} (pin {spec.pin!r}) could not be set up: {exc}"
            ) from exc
        self._worker = threading.Thread(target=self._run, name="bibbox-relays", daemon=True)
        self._notifier = threading.Thread(target=self._notify, name="bibbox-relay-events", daemon=True)
        self._worker.start()
        self._notifier.start()
        atexit.register(self.close)

    def pulse(self, compartment: int, seconds: float) -> None:
        """Queue a pulse of ``min(seconds, max_pulse_s)`` on ``compartment``'s relay; returns at once.

        A request for a compartment whose coil is already on or queued is
        merged into that pulse (nothing is extended).  A request merged into
        a coil that is on is acknowledged at once (``on_fired`` with the time
        that pulse has left), so the opening that asked for it is not left
        waiting for a "fired" that already came.  Raises HardwareError
        for an unknown compartment, a closed bank, or a worker that is stuck
        (after ``LOCK_TIMEOUT_S``) or dead; ValueError unless ``seconds`` > 0.
        """
        if compartment not in self._devices:
            raise HardwareError(f"no relay for compartment {compartment!r}")
        if not seconds > 0:  # also rejects NaN
            raise ValueError(f"pulse length must be positive, not {seconds!r}")
        pulse_s = min(float(seconds), self._max_pulse_s)
        if not self._cond.acquire(timeout=LOCK_TIMEOUT_S):
            raise HardwareError("relay worker is not responding")
        try:
            if self._closed:
                raise HardwareError("relay bank is closed")
            if not self._worker.is_alive():
                raise HardwareError("relay worker has stopped; see the log")
            if compartment in self._energised:
                left = max(0.0, self._energised[compartment] - time.monotonic())
                log.info("pulse for compartment %s merged with the one already on", compartment)
                self._events.put((self._on_fired, compartment, left))
                return
            if any(c == compartment for c, _ in self._waiting):
                log.info("pulse for compartment %s merged with the one queued", compartment)
                return
            self._waiting.append((compartment, pulse_s))
            self._cond.notify()
        finally:
            self._cond.release()

    def states(self) -> dict[int, bool]:
        """Return compartment -> True if its coil is energised, read from the pins.

        After ``close()`` every relay reads False (they were driven off before release).
        """
        try:
            return {c: bool(d.is_active) for c, d in self._devices.items()}
        except Exception as exc:
            if self._closed:
                return dict.fromkeys(self._devices, False)
            raise HardwareError(f"relay states could not be read: {exc}") from exc

    def all_off(self) -> None:
        """Switch every coil off now and drop queued pulses; the bank stays usable."""
        self._stop_everything()

    def close(self) -> None:
        """Switch every coil off, stop the threads and release the pins.  Idempotent.

        Also registered with :mod:`atexit`, so a normal interpreter exit
        without ``close()`` still leaves every coil off.

        Never hangs: waits at most ``LOCK_TIMEOUT_S`` + 2 x ``JOIN_TIMEOUT_S``.
        Pending ``on_released`` callbacks are delivered before it returns
        (unless a callback hangs, or ``close()`` is called from a callback).
        """
        with self._close_guard:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._stop_everything()  # wakes the worker, which sees _closed and ends
        _join(self._worker)
        self._events.put(None)  # after the queued on_released callbacks
        _join(self._notifier)
        self._close_devices()

    # -- worker side -------------------------------------------------------

    def _run(self):
        try:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._deadlines and self._deadlines[0][0] <= now:
                        self._release(heapq.heappop(self._deadlines)[1])
                    elif self._waiting and len(self._energised) < self._max_coils:
                        self._fire(*self._waiting.popleft())
                    else:
                        self._cond.wait(self._deadlines[0][0] - now if self._deadlines else None)
        except BaseException:  # a bug: log it here (a thread's exception goes nowhere else)
            log.critical("relay worker failed; pulses are refused from now on", exc_info=True)
        finally:
            self._force_off()  # also covers a write that was stuck while close() ran

    def _fire(self, compartment, pulse_s):
        # the pulse counts from before the write: a board's write may be
        # retried after it already switched the coil on (a lost reply)
        deadline = time.monotonic() + pulse_s
        try:
            self._devices[compartment].on()
        except Exception:
            log.exception("relay of compartment %s could not be energised", compartment)
            self._write_off(compartment)
            return
        self._energised[compartment] = deadline
        heapq.heappush(self._deadlines, (deadline, compartment))
        log.info("relay of compartment %s on for %.2f s", compartment, pulse_s)
        self._events.put((self._on_fired, compartment, pulse_s))

    def _release(self, compartment):
        """Switch one coil off (caller holds the lock); on failure keep it counted as on and retry."""
        if self._write_off(compartment):
            del self._energised[compartment]
            log.info("relay of compartment %s off", compartment)
            self._events.put((self._on_released, compartment))
        else:
            retry = time.monotonic() + OFF_RETRY_S
            self._energised[compartment] = retry
            heapq.heappush(self._deadlines, (retry, compartment))

    def _write_off(self, compartment):
        try:
            self._devices[compartment].off()
            return True
        except Exception:
            log.critical("relay of compartment %s could not be switched off", compartment, exc_info=True)
            return False

    def _force_off(self):
        for compartment, device in self._devices.items():
            if not device.closed:  # a released pin was driven off before release
                self._write_off(compartment)

    def _stop_everything(self):
        """Drive all pins off; if the worker lets us in, also clear its queue and heap."""
        locked = self._cond.acquire(timeout=LOCK_TIMEOUT_S)
        try:
            self._force_off()
            if not locked:
                log.error("relay worker unresponsive for %.1f s; pins were forced off without it",
                          LOCK_TIMEOUT_S)
                return
            if self._waiting:
                log.warning("dropped queued pulses for compartments %s",
                            [c for c, _ in self._waiting])
            self._waiting.clear()
            self._deadlines.clear()
            for compartment in list(self._energised):
                self._release(compartment)  # if off failed it stays counted, with a retry deadline
            self._cond.notify()
        finally:
            if locked:
                self._cond.release()

    def _close_devices(self):
        for compartment, device in self._devices.items():
            try:
                device.off()
            except Exception:
                log.critical("relay of compartment %s could not be switched off", compartment,
                             exc_info=True)
            try:
                device.close()
            except Exception:
                log.exception("relay of compartment %s could not be released", compartment)

    # -- notifier side -----------------------------------------------------

    def _notify(self):
        while (event := self._events.get()) is not None:
            callback, *args = event
            try:
                callback(*args)
            except Exception:
                log.exception("relay callback %s%r failed",
                              getattr(callback, "__name__", callback), tuple(args))
