"""Fixtures and markers shared by every test folder.

The folders mirror the layers (``domain``, ``hal``, ``web``, ``central``,
``daemon``, ``system``).  Fixtures that several folders use live here or in
the plugin modules below, so a test module never imports a fixture.

Markers, applied here by what a test uses, so none can be forgotten:

- ``browser``: drives headless Chromium (uses the ``browser`` fixture);
- ``broker``: starts a real mosquitto (uses ``broker``/``broker_factory`` or
  builds a ``Broker`` itself);
- ``slow``: long fault-injection runs, set by the module, and the modules in
  ``SLOW_MODULES`` (whole processes, real servers, ptys, scratch installs).

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


# Whole processes, real servers, pseudo-terminals timed at the baud rate,
# scratch installs: seconds each, so outside the fast tier (CI runs them all).
SLOW_MODULES = {
    "test_demo_ils.py", "test_daemon_library.py", "test_privacy_library.py",
    "test_patron_check.py", "test_transports.py", "test_loans.py", "test_loading.py",
    "test_kerong.py", "test_modbus.py", "test_demo_rs485.py", "test_kiosk_display.py",
    "test_selftest.py", "test_firmware.py", "test_firmware_systemd.py",
    "test_receipt_printer_daemon.py", "test_staff_long_polls.py", "test_serving_idle.py",
    "test_faults_signals.py", "test_faults_hardware.py", "test_central_contract.py",
    "test_staff_lockout.py", "test_cardreader.py", "test_cardreader_pty.py",
    "test_central_security.py", "test_library_cli.py", "test_faults_storage.py",
    "test_item_sensors_e2e.py",
}


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        name = item.path.name
        if "browser" in used or "browser" in name:
            item.add_marker(pytest.mark.browser)
        if name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if used & {"broker", "broker_factory"} or _builds_a_broker(item):
            item.add_marker(pytest.mark.broker)
