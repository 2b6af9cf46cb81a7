"""Fixtures for the browser tests: headless Chromium and a running demo locker.

Import what you use into the test module (``from tests.browser import ...``).

- ``browser`` (session): Playwright driving the system Chromium at
  ``/usr/bin/chromium`` (no ``playwright install``: the machine is offline),
  one instance per process however many modules import the fixture.  Tests
  that need it are skipped when Playwright or Chromium is missing.
- ``make_demo`` (function): builds and starts ``demo_daemon(tmp_path, port=0)``
  on a free loopback port, optionally on a given clock; every daemon it made
  is stopped at teardown.  ``demo`` is one such daemon on the system clock.
- ``kiosk`` (function): a fresh browser page (1024×600, the size of a common
  7" kiosk panel) with the kiosk of ``demo`` loaded and its first view shown.
  It records every response the page received (``kiosk.responses``: url,
  status, content type, body bytes) for the privacy scan.
- :func:`screenshot` saves ``tests/artifacts/<name>.png``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-quic", "--no-first-run",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1024, "height": 600}
ARTIFACTS = pathlib.Path(__file__).with_name("artifacts")
DEFAULT_TIMEOUT_MS = 10_000


# One Playwright and one Chromium for the whole process.  A session fixture
# imported into several test modules is a separate fixture in each, and
# Playwright's sync API refuses a second instance on the same thread, so every
# copy of ``browser`` shares this one and the last to finish closes it.
_SHARED = {"users": 0, "playwright": None, "browser": None}


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed")
    if _SHARED["browser"] is None:
        playwright = sync_api.sync_playwright().start()
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=CHROMIUM_ARGS)
        except Exception:
            playwright.stop()
            raise
        _SHARED.update(playwright=playwright, browser=chromium)
        sync_api.expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    _SHARED["users"] += 1
    try:
        yield _SHARED["browser"]
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            _SHARED["browser"].close()
            _SHARED["playwright"].stop()
            _SHARED.update(playwright=None, browser=None)


@pytest.fixture
def make_demo(tmp_path):
    from bibbox.daemon.cli import demo_daemon
    made = []

    def make(clock=None, state_dir=None):
        daemon = demo_daemon(state_dir or tmp_path / f"demo{len(made)}", port=0, clock=clock)
        daemon.start()
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        stop_demo(daemon)


def stop_demo(daemon):
    """Stop ``daemon``; ``Daemon.stop`` wakes long polls and shuts each web
    server down on its own loop thread (``web.serving``)."""
    daemon.stop()


@pytest.fixture
def demo(make_demo):
    return make_demo()


class Kiosk:
    """A browser page on the kiosk of one demo daemon."""

    def __init__(self, page, daemon):
        self.page, self.daemon = page, daemon
        self.base = f"http://127.0.0.1:{daemon.port}"
        self.responses = []
        page.on("response", self._record)

    def _record(self, response):
        try:
            body = response.body()
        except Exception:   # a long poll cut short at teardown has no body
            body = b""
        self.responses.append({"url": response.url, "status": response.status,
                               "type": response.headers.get("content-type", ""),
                               "body": body})

    def open(self, path="/"):
        """Load ``path``; for the kiosk, wait until the first view is shown."""
        from playwright.sync_api import expect
        self.page.goto(self.base + path)
        if path == "/":
            expect(self.screen).to_have_attribute("data-version", re.compile(r"^\d+$"))
        return self

    # -- the world around the page -------------------------------------------------
    def card(self, number: str, suffix=b"\r"):
        """Present a card: raw bytes into the reader's pseudo-terminal."""
        self.daemon.simulator.write_card(number.encode("ascii") + suffix)

    def sim(self, path, data=None):
        """GET (or POST ``data`` as JSON) a /sim URL; the decoded answer."""
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(self.base + path, data=body, method=(
            "GET" if data is None else "POST"), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    def close_door(self, number):
        return self.sim(f"/sim/doors/{number}", {"open": False})

    # -- the page ------------------------------------------------------------------
    @property
    def screen(self):
        return self.page.locator("#screen")

    def tap_pin(self, digits):
        for d in digits:
            self.page.get_by_test_id(f"key-{d}").click()


@pytest.fixture
def kiosk_page(browser):
    """A fresh context and page (no state shared between tests)."""
    context = browser.new_context(viewport=VIEWPORT, locale="da-DK",
                                  service_workers="block")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def kiosk(demo, kiosk_page):
    # demo first: the page then closes before the daemon stops
    return Kiosk(kiosk_page, demo).open()


def screenshot(page, name):
    """Save a PNG of ``page`` as tests/artifacts/<name>.png (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
