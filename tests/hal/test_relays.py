"""Relay bank and pin factory tests on gpiozero's MockFactory with real threads.

Only safety bounds are timed; everything else waits on events (2 s timeouts).
"""

import logging
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from gpiozero import OutputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from bibbox.hal import relays as relays_module
from bibbox.hal.pins import PIN_FACTORIES, make_pin_factory
from bibbox.hal.relays import RelayBank, RelaySpec, drive_all_off
from bibbox.locker.domain.errors import HardwareError

WAIT = 2.0  # a coil still on after this is a failure
SLACK = 0.25  # scheduling slack allowed beyond a cap


class RecordingPin(MockPin):
    """Logs every change of an output pin and the peak number of outputs high at once.

    The tests that use it drive active-high relays, so high == energised.
    """

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed and self._function == "output":
            factory = self._factory
            with factory.record_lock:
                factory.changes.append((self.info.name, value))
                high = sum(1 for p in factory.pins.values() if p._function == "output" and p._state)
                factory.peak = max(factory.peak, high)
        return changed


class BlockingPin(MockPin):
    """An output whose switch-on hangs until ``release`` is set: a stuck worker."""

    def _set_state(self, value):
        if value:
            self._factory.entered.set()
            self._factory.release.wait()
        super()._set_state(value)


@pytest.fixture
def factory():
    f = MockFactory(pin_class=RecordingPin)
    f.changes, f.peak, f.record_lock = [], 0, threading.Lock()
    yield f
    f.close()


class Recorder:
    """Collects callbacks; ``fired``/``released`` are lists, ``*_event`` are set on each call."""

    def __init__(self):
        self.fired, self.released, self.energised_counts = [], [], []
        self.fired_event, self.released_event = threading.Event(), threading.Event()
        self.bank = None

    def on_fired(self, compartment, pulse_s):
        self.fired.append((compartment, pulse_s))
        self._sample()
        self.fired_event.set()

    def on_released(self, compartment):
        self.released.append(compartment)
        self._sample()
        self.released_event.set()

    def _sample(self):
        if self.bank is not None:
            self.energised_counts.append(sum(self.bank.states().values()))

    def wait_released(self, n):
        deadline = time.monotonic() + WAIT
        while len(self.released) < n and time.monotonic() < deadline:
            self.released_event.wait(0.05)
            self.released_event.clear()
        assert len(self.released) >= n, f"only {self.released} released after {WAIT} s"


@pytest.fixture
def make_bank(factory):
    banks = []

    def make(relays, **kwargs):
        recorder = Recorder()
        kwargs.setdefault("on_fired", recorder.on_fired)
        kwargs.setdefault("on_released", recorder.on_released)
        bank = RelayBank(relays, factory, **kwargs)
        recorder.bank = bank
        banks.append(bank)
        return bank, recorder

    yield make
    for bank in banks:
        bank.close()


def active_high(*pins):
    return {i + 1: RelaySpec(pin, active_high=True) for i, pin in enumerate(pins)}


def on_duration(pin):
    """Seconds between the on and off transitions of a pin whose history is [off, on, off]."""
    return pin.states[2].timestamp


# -- construction and close ---------------------------------------------------

def test_relays_are_created_off_and_left_off_after_close(factory, make_bank):
    bank, _ = make_bank({1: RelaySpec(17), 2: RelaySpec(18, active_high=True)})
    assert factory.pin(17).state is True  # active-low: high is off
    assert factory.pin(18).state is False
    assert bank.states() == {1: False, 2: False}
    bank.close()
    assert (factory.pin(17).state, factory.pin(18).state) == (True, False)
    assert bank.states() == {1: False, 2: False}


def test_failed_construction_releases_the_relays_already_made(factory):
    with pytest.raises(HardwareError, match="compartment 2"):
        RelayBank({1: RelaySpec(17), 2: RelaySpec(17)}, factory)
    with pytest.raises(HardwareError, match="compartment 2"):
        RelayBank({1: RelaySpec(17), 2: RelaySpec("GPIO99")}, factory)
    OutputDevice(17, pin_factory=factory).close()  # pin 17 was released


def test_invalid_limits_are_refused(factory):
    for kwargs in ({"max_pulse_s": 0}, {"max_pulse_s": math.inf}, {"max_coils": 0}):
        with pytest.raises(ValueError):
            RelayBank({1: RelaySpec(17)}, factory, **kwargs)


def test_bad_pulse_requests_are_refused(make_bank):
    bank, _ = make_bank({1: RelaySpec(17)})
    with pytest.raises(HardwareError):
        bank.pulse(9, 0.05)
    for seconds in (0, -1, math.nan):
        with pytest.raises(ValueError):
            bank.pulse(1, seconds)
    bank.close()
    with pytest.raises(HardwareError, match="closed"):
        bank.pulse(1, 0.05)


def test_close_is_idempotent_and_stops_the_threads(factory):
    threads_before = threading.active_count()
    bank = RelayBank({1: RelaySpec(17)}, factory)
    assert threading.active_count() == threads_before + 2
    bank.close()
    bank.close()
    assert threading.active_count() == threads_before


# -- pulses ------------------------------------------------------------------

@pytest.mark.parametrize("spec, off, on", [(RelaySpec(17), True, False),
                                           (RelaySpec(17, active_high=True), False, True)])
def test_pulse_switches_on_then_off_and_acknowledges(factory, make_bank, spec, off, on):
    bank, rec = make_bank({1: spec}, max_pulse_s=0.1)
    pin = factory.pin(17)
    pin.clear_states()
    bank.pulse(1, 0.05)
    rec.wait_released(1)
    assert [s.state for s in pin.states] == [off, on, off]
    assert rec.fired == [(1, 0.05)] and rec.released == [1]
    assert 0.05 <= on_duration(pin) <= 0.1 + SLACK


def test_pulse_is_cut_to_the_cap(factory, make_bank):
    bank, rec = make_bank(active_high(17), max_pulse_s=0.1)
    pin = factory.pin(17)
    pin.clear_states()
    bank.pulse(1, 10)
    assert rec.released_event.wait(WAIT), "coil still on after the cap"
    assert rec.fired == [(1, 0.1)]
    assert len(pin.states) == 3 and 0.1 <= on_duration(pin) <= 0.1 + SLACK


def test_one_coil_at_a_time_in_fifo_order(factory, make_bank):
    bank, rec = make_bank(active_high(17, 18, 22, 23, 24), max_pulse_s=0.1, max_coils=1)
    order = [3, 1, 5, 2, 4]
    for compartment in order:
        bank.pulse(compartment, 0.02)
    rec.wait_released(5)
    assert factory.peak == 1
    assert max(rec.energised_counts) <= 1
    assert [c for c, _ in rec.fired] == order
    pins = {f"GPIO{p}": c for c, p in zip(range(1, 6), (17, 18, 22, 23, 24))}
    assert [pins[name] for name, value in factory.changes if value] == order


def test_two_coils_at_a_time_overlap_but_never_three(factory, make_bank):
    bank, rec = make_bank(active_high(17, 18, 22, 23), max_pulse_s=0.1, max_coils=2)
    for compartment in (1, 2, 3, 4):
        bank.pulse(compartment, 0.05)
    rec.wait_released(4)
    assert factory.peak == 2
    assert max(rec.energised_counts) <= 2
    assert [c for c, _ in rec.fired] == [1, 2, 3, 4]


def test_pulse_for_a_coil_already_on_or_queued_is_merged(factory, make_bank):
    bank, rec = make_bank(active_high(17, 18), max_pulse_s=1, max_coils=1)
    bank.pulse(1, 0.3)
    assert rec.fired_event.wait(WAIT)
    bank.pulse(1, 0.3)  # already on: not extended, acknowledged at once
    bank.pulse(2, 0.05)
    bank.pulse(2, 0.05)  # queued behind 1: merged
    rec.wait_released(2)
    assert [c for c, _ in rec.fired] == [1, 1, 2]
    assert rec.fired[1][1] <= rec.fired[0][1]          # what pulse 1 had left, no more
    assert [s.state for s in factory.pin(17).states] == [False, True, False]
    assert 0.3 <= on_duration(factory.pin(17)) <= 0.3 + SLACK
    bank.pulse(1, 0.05)  # a later request fires again
    rec.wait_released(3)
    assert rec.released == [1, 2, 1]


def test_raising_callbacks_do_not_stop_the_coils(factory, make_bank, caplog):
    released = threading.Event()

    def bad_fired(compartment, pulse_s):
        raise RuntimeError("ack failed")

    def bad_released(compartment):
        released.set()
        raise RuntimeError("record failed")

    bank, _ = make_bank(active_high(17, 18), max_pulse_s=0.1,
                        on_fired=bad_fired, on_released=bad_released)
    for compartment in (1, 2):
        released.clear()
        bank.pulse(compartment, 0.05)
        assert released.wait(WAIT)
    assert bank.states() == {1: False, 2: False}
    bank.close()  # joins the notifier, so every failure has been logged
    assert sum("relay callback" in r.getMessage() for r in caplog.records) == 4


def test_hanging_callback_does_not_keep_a_coil_on(factory, make_bank):
    unblock = threading.Event()
    bank, _ = make_bank(active_high(17), max_pulse_s=0.1,
                        on_fired=lambda c, s: unblock.wait(WAIT))
    pin = factory.pin(17)
    pin.clear_states()
    bank.pulse(1, 10)
    deadline = time.monotonic() + 0.1 + SLACK
    while len(pin.states) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    unblock.set()
    assert [s.state for s in pin.states] == [False, True, False]


# -- all_off and close during pulses -------------------------------------------

def test_all_off_stops_the_coil_and_drops_the_queue(factory, make_bank, caplog):
    bank, rec = make_bank(active_high(17, 18), max_pulse_s=5, max_coils=1)
    bank.pulse(1, 5)
    bank.pulse(2, 5)
    assert rec.fired_event.wait(WAIT)
    bank.all_off()
    assert factory.pin(17).state is False and factory.pin(18).state is False
    rec.wait_released(1)
    assert rec.released == [1] and "dropped queued pulses" in caplog.text
    rec.fired_event.clear()
    bank.pulse(2, 0.05)  # still usable
    rec.wait_released(2)
    assert [c for c, _ in rec.fired] == [1, 2]


def test_close_during_a_pulse_switches_off_at_once(factory, make_bank):
    bank, rec = make_bank({1: RelaySpec(17)}, max_pulse_s=5)
    bank.pulse(1, 5)
    assert rec.fired_event.wait(WAIT)
    assert factory.pin(17).state is False  # active-low: on
    started = time.monotonic()
    bank.close()
    assert time.monotonic() - started < 1.0
    assert factory.pin(17).state is True
    assert rec.released == [1]  # delivered before close() returned


def test_all_off_and_close_work_while_the_worker_is_stuck(monkeypatch):
    monkeypatch.setattr(relays_module, "LOCK_TIMEOUT_S", 0.1)
    monkeypatch.setattr(relays_module, "JOIN_TIMEOUT_S", 0.1)
    factory = MockFactory()
    factory.entered, factory.release = threading.Event(), threading.Event()
    factory.pin(18, pin_class=BlockingPin)
    fired = threading.Event()
    bank = RelayBank(active_high(17, 18), factory, max_pulse_s=5, max_coils=2,
                     on_fired=lambda c, s: fired.set())
    try:
        bank.pulse(1, 5)
        assert fired.wait(WAIT)
        bank.pulse(2, 5)  # the worker hangs switching this one on
        assert factory.entered.wait(WAIT)
        bank.all_off()
        assert factory.pin(17).state is False
        with pytest.raises(HardwareError, match="not responding"):
            bank.pulse(1, 5)
        started = time.monotonic()
        bank.close()
        assert time.monotonic() - started < 1.0
        assert factory.pin(17).state is False
    finally:
        factory.release.set()
    time.sleep(0.2)  # the stuck write finishes against a released pin
    assert factory.pin(17).state is False and factory.pin(18).state is False
    factory.close()


class DyingPin(MockPin):
    """Switching on kills the thread that does it (a bug outside the catch-all)."""

    def _set_state(self, value):
        if value:
            raise SystemExit("worker killed")
        super()._set_state(value)


def test_a_dead_worker_leaves_coils_off_and_refuses_pulses(factory):
    factory.pin(18, pin_class=DyingPin)
    bank = RelayBank(active_high(17, 18), factory, max_coils=2)
    try:
        bank.pulse(1, 5)
        bank.pulse(2, 5)
        deadline = time.monotonic() + WAIT
        with pytest.raises(HardwareError, match="stopped"):
            while time.monotonic() < deadline:
                bank.pulse(2, 5)
                time.sleep(0.01)
        assert bank.states() == {1: False, 2: False}
    finally:
        bank.close()


def test_interpreter_exit_without_close_switches_coils_off(tmp_path):
    script = tmp_path / "forgets_close.py"
    script.write_text(textwrap.dedent("""
        import atexit, threading
        from gpiozero.pins.mock import MockFactory
        from bibbox.hal.relays import RelayBank, RelaySpec
        factory = MockFactory()
        atexit.register(lambda: print("at exit:", factory.pin(17).state))  # runs last
        fired = threading.Event()
        bank = RelayBank({1: RelaySpec(17)}, factory, on_fired=lambda c, s: fired.set())
        bank.pulse(1, 5)
        assert fired.wait(2)
        print("on:", factory.pin(17).state)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=30, cwd=Path(__file__).parents[2],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert result.stdout.split("\n")[:2] == ["on: False", "at exit: True"], result.stderr


# -- drive_all_off -------------------------------------------------------------

def test_drive_all_off_switches_off_relays_left_on(factory):
    left_on = [OutputDevice(17, active_high=False, initial_value=True, pin_factory=factory),
               OutputDevice(18, active_high=True, initial_value=True, pin_factory=factory)]
    for device in left_on:  # the process that owned them crashed
        device.close()
    assert (factory.pin(17).state, factory.pin(18).state) == (False, True)
    drive_all_off({1: RelaySpec(17), 2: RelaySpec(18, active_high=True)}, factory)
    assert (factory.pin(17).state, factory.pin(18).state) == (True, False)


def test_drive_all_off_tries_every_relay_and_reports_failures(factory):
    OutputDevice(18, initial_value=True, pin_factory=factory).close()
    with pytest.raises(HardwareError, match=r"\[1\]"):
        drive_all_off({1: RelaySpec("GPIO99"), 2: RelaySpec(18, active_high=True)}, factory)
    assert factory.pin(18).state is False


# -- pin factories (hal/pins.py) --------------------------------------------------

def test_pin_factory_names():
    assert PIN_FACTORIES == ("auto", "mock", "lgpio", "rpigpio", "native")
    with pytest.raises(ValueError, match="unknown pin factory"):
        make_pin_factory("pigpio")


def test_mock_pin_factory_drives_a_relay_bank():
    factory = make_pin_factory("mock")
    assert isinstance(factory, MockFactory)
    RelayBank({1: RelaySpec(17)}, factory).close()
    factory.close()


def test_missing_library_names_the_factory_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lgpio", None)  # import lgpio -> ImportError
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
    with pytest.raises(HardwareError, match=r"'lgpio'.*bibbox\[lgpio\]"):
        make_pin_factory("lgpio")


@pytest.fixture
def fake_rpi_gpio(monkeypatch):
    """RPi.GPIO replaced by fake_rpi; gpiozero.pins.rpigpio re-imported against it."""
    fake_rpi = pytest.importorskip("fake_rpi")
    monkeypatch.setattr(fake_rpi.wrappers, "PRINT_ON", False)
    monkeypatch.setitem(sys.modules, "RPi", fake_rpi.RPi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake_rpi.RPi.GPIO)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.rpigpio", raising=False)
    yield
    sys.modules.pop("gpiozero.pins.rpigpio", None)  # bound to the fake; drop it


def test_rpigpio_factory_starts_with_fake_rpi_on_a_known_board(fake_rpi_gpio, monkeypatch):
    import gpiozero.pins.local
    # gpiozero 2.0.1 reads the revision only from /proc; there is no env override
    monkeypatch.setattr(gpiozero.pins.local, "get_pi_revision", lambda: 0xA02082)  # Pi 3B
    factory = make_pin_factory("rpigpio")
    try:
        assert type(factory).__name__ == "RPiGPIOFactory"
        assert factory.board_info.model == "3B"
        RelayBank({1: RelaySpec(17)}, factory).close()
    finally:
        factory.close()


def test_rpigpio_factory_off_a_pi_raises_hardware_error(fake_rpi_gpio, monkeypatch):
    import gpiozero.pins.local
    from gpiozero.exc import PinUnknownPi

    def not_a_pi():
        raise PinUnknownPi("unable to locate Pi revision")

    monkeypatch.setattr(gpiozero.pins.local, "get_pi_revision", not_a_pi)
    with pytest.raises(HardwareError, match=r"'rpigpio'.*Raspberry Pi.*bibbox\[rpigpio\]"):
        make_pin_factory("rpigpio")


def test_import_time_failure_of_the_library_raises_hardware_error(monkeypatch):
    class NotAPi:  # what real RPi.GPIO does off a Pi: RuntimeError at import
        def __getattr__(self, name):
            raise RuntimeError("This module can only be run on a Raspberry Pi!")

    monkeypatch.setitem(sys.modules, "RPi", NotAPi())
    monkeypatch.delitem(sys.modules, "gpiozero.pins.rpigpio", raising=False)
    try:
        with pytest.raises(HardwareError, match="'rpigpio' could not start"):
            make_pin_factory("rpigpio")
    finally:
        sys.modules.pop("gpiozero.pins.rpigpio", None)


def test_relays_log_to_bibbox_relays(make_bank, caplog):
    caplog.set_level(logging.INFO, logger="bibbox.relays")
    bank, rec = make_bank(active_high(17), max_pulse_s=0.1)
    bank.pulse(1, 0.02)
    rec.wait_released(1)
    assert [r.getMessage() for r in caplog.records if r.name == "bibbox.relays"] == [
        "relay of compartment 1 on for 0.02 s", "relay of compartment 1 off"]
