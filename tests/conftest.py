"""Fixtures and markers shared by every test folder.

The folders mirror the layers (``domain``, ``hal``, ``web``, ``central``,
``daemon``, ``system``).  Fixtures that several folders use live here or in
the plugin modules below, so a test module never imports a fixture.

Markers, applied here by what a test uses, so none can be forgotten:

- ``browser``: drives headless Chromium (uses the ``browser`` fixture);
- ``broker``: starts a real mosquitto (uses ``broker``/``broker_factory`` or
  builds a ``Broker`` itself);
- ``slow``: long fault-injection runs, set by the module.

The fast tier for day-to-day work: ``pytest -m "not slow and not browser and not broker"``.
"""

import inspect
import logging

import pytest

# Chromium (one per test process) and mosquitto fixtures.
pytest_plugins = ["tests.browser", "tests.brokers"]


@pytest.fixture(autouse=True)
def keep_root_logging():
    """``bibbox.daemon.cli.main`` sets up logging for the process; put it back
    after each test so no handler outlives the test's captured output."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _builds_a_broker(item):
    try:
        return "Broker(" in inspect.getsource(item.function)
    except (OSError, TypeError, AttributeError):
        return False


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if "browser" in used:
            item.add_marker(pytest.mark.browser)
        if used & {"broker", "broker_factory"} or _builds_a_broker(item):
            item.add_marker(pytest.mark.broker)
