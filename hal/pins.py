"""Choosing a gpiozero pin factory by name.

``make_pin_factory(name)`` imports the backend lazily, so a box (or a test
run) never needs libraries for backends it does not use.  Every failure to
start a real backend -- library missing, not a Raspberry Pi, no access to the
GPIO chip -- becomes :class:`~locker.errors.HardwareError` whose message names
the factory and what to install.  An unknown name is a programming error
(configuration validation checks names against :data:`PIN_FACTORIES`) and
raises ``ValueError``.
"""

import importlib

from bibbox.locker.domain.errors import HardwareError

from bibbox.locker.domain.config import PIN_FACTORIES  # one list of names, shared with validation

# name -> (gpiozero module, factory class, pip extra of bibbox that pulls in the library)
_BACKENDS = {
    "mock": ("gpiozero.pins.mock", "MockFactory", None),
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", "bibbox[lgpio]"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "bibbox[rpigpio]"),
    "native": ("gpiozero.pins.native", "NativeFactory", None),
}
_HINTS = {
    "lgpio": "the lgpio backend works on every Pi and is the only one for the Pi 5",
    "rpigpio": "RPi.GPIO does not support the Pi 5; use pin factory 'lgpio' there",
    "native": "the native backend needs /dev/gpiomem and does not support the Pi 5",
}


def make_pin_factory(name: str):
    """Return a new gpiozero pin factory for ``name`` (one of :data:`PIN_FACTORIES`).

    Real backends are checked eagerly: the board is identified before
    returning, so "not a Raspberry Pi" fails here and not at the first pin.
    The caller owns the factory and should ``close()`` it.
    """
    if name not in _BACKENDS:
        raise ValueError(f"unknown pin factory {name!r}; expected one of {', '.join(PIN_FACTORIES)}")
    module_name, class_name, extra = _BACKENDS[name]
    install = f'pip install "{extra}"' if extra else "no extra library is needed"
    try:
        factory_class = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise HardwareError(
            f"pin factory {name!r} is not available ({exc}); install it with {install}") from exc
    except Exception as exc:  # RPi.GPIO raises RuntimeError on import when not on a Pi
        raise HardwareError(_cannot_start(name, exc, install)) from exc
    factory = None
    try:
        factory = factory_class()
        if name != "mock":
            factory.board_info  # noqa: B018 - identifies the Pi, raises PinUnknownPi elsewhere
    except Exception as exc:
        if factory is not None:
            _close_quietly(factory)
        raise HardwareError(_cannot_start(name, exc, install)) from exc
    return factory


def _cannot_start(name, exc, install):
    hint = _HINTS.get(name, "")
    return (f"pin factory {name!r} could not start: {exc} (is this a Raspberry Pi with GPIO "
            f"access? {hint}{'; ' if hint else ''}library: {install})")


def _close_quietly(factory):
    try:
        factory.close()
    except Exception:
        pass
