"""Choosing a gpiozero pin factory for a real locker, and making one by name.

:func:`open_real_pin_factory` follows gpiozero's own order: the environment
variable ``GPIOZERO_PIN_FACTORY`` first, then ``hardware.pin_factory`` from
the configuration, then detection (lgpio, then rpigpio).  Mock pins are for
simulated lockers only: a real locker that would end up on them is refused.

``make_pin_factory(name)`` imports the backend lazily, so a box (or a test
run) never needs libraries for backends it does not use.  Every failure to
start a real backend -- library missing, not a Raspberry Pi, no access to the
GPIO chip -- becomes :class:`~locker.errors.HardwareError` whose message names
the factory and what to install.  An unknown name is a programming error
(configuration validation checks names against :data:`PIN_FACTORIES`) and
raises ``ValueError``.
"""

import importlib
import os

from bibbox.locker.domain.errors import HardwareError

from bibbox.locker.domain.config import PIN_FACTORIES  # one list of names, shared with validation

ENV_VAR = "GPIOZERO_PIN_FACTORY"
DETECTION_ORDER = ("lgpio", "rpigpio")   # gpiozero's order among the backends we support

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
    if name not in _BACKENDS:   # "auto" is resolved by choose_pin_factory, not here
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


def choose_pin_factory(configured: str, environ=None) -> tuple[tuple[str, ...], str]:
    """The factory names to try, in order, and where the choice came from.

    ``GPIOZERO_PIN_FACTORY`` overrides ``configured``; ``"auto"`` (or empty)
    means detection.  Raises HardwareError for an unknown name in the
    environment (the configuration's names are validated with it)."""
    environ = os.environ if environ is None else environ
    from_env = environ.get(ENV_VAR, "").strip().lower()
    if from_env:
        if from_env not in _BACKENDS:
            raise HardwareError(f"{ENV_VAR}={from_env!r} is not a pin factory Bibbox "
                                f"supports ({', '.join(_BACKENDS)})")
        return (from_env,), f"{ENV_VAR} in the environment"
    if configured and configured != "auto":
        return (configured,), "hardware.pin_factory"
    return DETECTION_ORDER, "detected (lgpio, then rpigpio)"


def open_real_pin_factory(configured: str, environ=None):
    """Open the pin factory of a real (not simulated) locker, in gpiozero's
    order (see :func:`choose_pin_factory`).  Returns ``(factory, name)``.

    Raises HardwareError if the choice is ``mock`` (a real locker on mock
    pins would report doors it cannot see and fire relays that do not
    exist) or if no candidate starts; the message names each failure."""
    names, source = choose_pin_factory(configured, environ)
    if "mock" in names:
        raise HardwareError(f"pin factory 'mock' ({source}) on a locker that is not "
                            "simulated: it would drive no real pin; unset it or set "
                            "locker.simulated = true")
    failures = []
    for name in names:
        try:
            return make_pin_factory(name), name
        except HardwareError as exc:
            failures.append(str(exc))
    raise HardwareError(f"no pin factory could start ({source}): " + " | ".join(failures))
