"""Door sensor tests on gpiozero's MockFactory (callbacks fire inside drive_low/drive_high)."""

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from bibbox.hal.doors import DoorSensors, DoorSpec
from bibbox.locker.domain.errors import HardwareError


class FlakyPin(MockPin):
    """A pin whose reads fail once ``broken`` is set (a loose connector, a dead expander)."""
    broken = False

    def _get_state(self):
        if self.broken:
            raise OSError("pin read failed")
        return super()._get_state()


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.close()


@pytest.fixture
def changes():
    return []


@pytest.fixture
def make_sensors(factory, changes):
    made = []

    def make(doors, **kwargs):
        kwargs.setdefault("on_change", lambda c, is_open: changes.append((c, is_open)))
        kwargs.setdefault("bounce_s", 0)   # debouncing has tests of its own below
        sensors = DoorSensors(doors, factory, **kwargs)
        made.append(sensors)
        return sensors

    yield make
    for sensors in made:
        sensors.close()


def test_closed_when_low_reads_low_as_closed(factory, make_sensors):
    sensors = make_sensors({1: DoorSpec(5)})
    assert sensors.read(1) == "open"  # pull-up, switch open
    factory.pin(5).drive_low()
    assert sensors.read(1) == "closed"


def test_closed_when_high_reads_high_as_closed(factory, make_sensors):
    sensors = make_sensors({1: DoorSpec(5, closed_when_low=False)})
    assert sensors.read(1) == "closed"
    factory.pin(5).drive_low()
    assert sensors.read(1) == "open"


@pytest.mark.parametrize("closed_when_low", [True, False])
def test_each_change_is_reported_once(factory, make_sensors, changes, closed_when_low):
    make_sensors({1: DoorSpec(5, closed_when_low)})
    pin = factory.pin(5)
    for drive in (pin.drive_low, pin.drive_low, pin.drive_high, pin.drive_high, pin.drive_low):
        drive()
    low_is_open = not closed_when_low
    assert changes == [(1, low_is_open), (1, not low_is_open), (1, low_is_open)]


def test_read_all_reports_every_door(factory, make_sensors):
    sensors = make_sensors({1: DoorSpec(5), 2: DoorSpec(6), 3: DoorSpec("GPIO13", closed_when_low=False)})
    factory.pin(6).drive_low()
    assert sensors.read_all() == {1: "open", 2: "closed", 3: "closed"}


def test_unreadable_pin_reads_unknown(factory, make_sensors):
    factory.pin(6, pin_class=FlakyPin)
    sensors = make_sensors({1: DoorSpec(5), 2: DoorSpec(6)})
    factory.pin(6).broken = True
    assert sensors.read_all() == {1: "open", 2: "unknown"}


def test_closed_sensors_read_unknown_and_stay_quiet(factory, make_sensors, changes):
    sensors = make_sensors({1: DoorSpec(5)})
    sensors.close()
    sensors.close()
    factory.pin(5).drive_low()
    assert sensors.read_all() == {1: "unknown"}
    assert changes == []
    DigitalInputDevice(5, pin_factory=factory).close()  # pin released


def test_raising_callback_is_logged_and_later_changes_still_reported(factory, make_sensors, caplog):
    calls = []

    def on_change(compartment, is_open):
        calls.append(is_open)
        raise RuntimeError("store down")

    make_sensors({1: DoorSpec(5)}, on_change=on_change)
    factory.pin(5).drive_low()
    factory.pin(5).drive_high()
    assert calls == [False, True]
    assert caplog.text.count("door callback for compartment 1 failed") == 2


def test_unknown_compartment_and_bad_pin_raise_hardware_error(factory, make_sensors):
    sensors = make_sensors({1: DoorSpec(5)}, bounce_s=None)
    with pytest.raises(HardwareError):
        sensors.read(2)
    with pytest.raises(HardwareError, match="compartment 2"):
        DoorSensors({1: DoorSpec(6), 2: DoorSpec("GPIO99")}, factory)
    DigitalInputDevice(6, pin_factory=factory).close()  # the sensor made first was released


# -- leading-edge debouncing -----------------------------------------------------------

def bounce(pin, final_low, times=4):
    """A reed switch closing or opening: the level chatters, then settles."""
    for _ in range(times):
        (pin.drive_low if final_low else pin.drive_high)()
        (pin.drive_high if final_low else pin.drive_low)()
    (pin.drive_low if final_low else pin.drive_high)()


def test_a_bouncing_change_is_reported_once_on_its_leading_edge(factory, make_sensors, changes):
    sensors = make_sensors({1: DoorSpec(5)}, bounce_s=0.2)
    pin = factory.pin(5)
    pin.drive_low()                       # settle: door closed
    wait_for(lambda: not sensors.settling())
    changes.clear()
    bounce(pin, final_low=False)          # opens, chattering
    # reported inside the first drive_*: no wait for the window
    assert changes == [(1, True)]
    wait_for(lambda: not sensors.settling())
    assert changes == [(1, True)]         # the bounces were not reported


def test_a_door_that_settles_the_other_way_inside_the_window_is_reported(
        factory, make_sensors, changes):
    sensors = make_sensors({1: DoorSpec(5)}, bounce_s=0.1)
    pin = factory.pin(5)
    pin.drive_low()
    wait_for(lambda: not sensors.settling())
    changes.clear()
    pin.drive_high()                      # opened...
    pin.drive_low()                       # ...and shut again within the window
    assert changes == [(1, True)]
    wait_for(lambda: changes == [(1, True), (1, False)])


def test_without_a_bounce_window_every_change_is_reported_and_no_timer_starts(
        factory, make_sensors, changes):
    sensors = make_sensors({1: DoorSpec(5)}, bounce_s=0)
    pin = factory.pin(5)
    pin.drive_low()
    changes.clear()
    pin.drive_high()
    pin.drive_low()
    assert changes == [(1, True), (1, False)] and not sensors.settling()


def test_no_bounce_time_reaches_the_backend(factory, make_sensors):
    make_sensors({1: DoorSpec(5)}, bounce_s=0.05)
    assert factory.pin(5).bounce is None  # lgpio would delay every edge by it


def wait_for(predicate, timeout=3.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
