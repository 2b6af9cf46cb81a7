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
