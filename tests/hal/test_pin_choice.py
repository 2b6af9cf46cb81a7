"""Which pin factory a real locker opens: gpiozero's order (environment,
then configuration, then detection), and never mock pins."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

import bibbox.hal.pins as pins
from bibbox.locker.domain.errors import HardwareError


def test_the_environment_overrides_the_configuration():
    assert pins.choose_pin_factory("rpigpio", {"GPIOZERO_PIN_FACTORY": "lgpio"}) == \
        (("lgpio",), "GPIOZERO_PIN_FACTORY in the environment")
    assert pins.choose_pin_factory("rpigpio", {}) == (("rpigpio",), "hardware.pin_factory")
    assert pins.choose_pin_factory("auto", {})[0] == ("lgpio", "rpigpio")


def test_an_unknown_name_in_the_environment_is_refused():
    with pytest.raises(HardwareError, match="GPIOZERO_PIN_FACTORY='pigpioo'"):
        pins.choose_pin_factory("auto", {"GPIOZERO_PIN_FACTORY": "pigpioo"})


@pytest.mark.parametrize("configured, env", [("mock", {}),
                                             ("lgpio", {"GPIOZERO_PIN_FACTORY": "mock"})])
def test_a_real_locker_never_opens_mock_pins(configured, env, monkeypatch):
    opened = []
    monkeypatch.setattr(pins, "make_pin_factory", lambda name: opened.append(name))
    with pytest.raises(HardwareError, match="not simulated"):
        pins.open_real_pin_factory(configured, env)
    assert opened == []


def test_detection_tries_lgpio_then_rpigpio(monkeypatch):
    tried = []

    def make(name):
        tried.append(name)
        if name == "lgpio":
            raise HardwareError("pin factory 'lgpio' is not available")
        return MockFactory()

    monkeypatch.setattr(pins, "make_pin_factory", make)
    factory, name = pins.open_real_pin_factory("auto", {})
    assert (tried, name) == (["lgpio", "rpigpio"], "rpigpio")
    factory.close()


def test_detection_that_finds_nothing_names_every_failure(monkeypatch):
    def make(name):
        raise HardwareError(f"pin factory {name!r} could not start")

    monkeypatch.setattr(pins, "make_pin_factory", make)
    with pytest.raises(HardwareError, match="'lgpio' could not start.*'rpigpio' could not"):
        pins.open_real_pin_factory("auto", {})
