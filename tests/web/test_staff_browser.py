"""The staff page in headless Chromium against the simulated locker.

One shift at the locker: log in (after one wrong password), load three
holds (one with two items, one more for the same patron, one into a jammed
door that must be offered another door), close the doors, see them ready
on the overview, let the deadline pass on the injected clock (the session
ends too: log in again in the page without losing it), unload, then read
the audit log and its CSV.  No fixed sleeps: every wait is for a condition.

Playwright runs in a thread of its own: its sync API refuses to start while
another module's session-wide Playwright (tests/browser.py's ``browser``,
imported into a test module, is one instance per module) holds the main
thread.
"""

import csv
import io
import json
import os
import threading
import urllib.request

import pytest

from bibbox.locker.domain.clock import FakeClock
from tests.domain_helpers import wait_until
from tests.browser import CHROMIUM, CHROMIUM_ARGS, make_demo, screenshot  # noqa: F401

pytest.importorskip("playwright.sync_api")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

PASSWORD = "correct horse battery"
KAREN, OLE = "0101709999", "BIB0004711"   # made-up demo cards (locker/cli.py)


def ean13(first12):
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return first12 + str((10 - total % 10) % 10)


ITEMS = [ean13(f"97887000000{i}") for i in range(1, 5)]


class Shift:
    def __init__(self, page, daemon):
        self.page, self.daemon = page, daemon
        self.base = f"http://127.0.0.1:{daemon.port}"
        self.bodies = []
        page.on("response", self._record)

    def _record(self, response):
        try:
            self.bodies.append(response.body())
        except Exception:   # a long poll cut short by navigation
            pass

    def sim(self, path, data):
        request = urllib.request.Request(self.base + path, data=json.dumps(data).encode(),
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    def call(self, fn):
        return self.daemon.controller.call(fn)

    def door_open(self, n):
        return self.daemon.simulator.door_is_open(n)

    def close_door(self, n):
        wait_until(lambda: self.door_open(n), what=f"door {n} to spring open")
        self.sim(f"/sim/doors/{n}", {"open": False})

    def advance(self, seconds):
        self.daemon.clock.advance(seconds)
        self.daemon.controller.wake()

    def scan(self, selector, text):
        self.page.locator(selector).fill(text)
        self.page.locator(selector).press("Enter")


def in_browser(scenario, timeout=300):
    """Run ``scenario(browser)`` with a fresh headless Chromium, on a thread
    of its own; re-raise what it raised."""
    box = {}

    def run():
        from playwright.sync_api import expect, sync_playwright
        try:
            with sync_playwright() as pw:
                chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
                expect.set_options(timeout=10_000)
                try:
                    scenario(chromium)
                finally:
                    chromium.close()
        except BaseException as exc:   # handed to the test's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="staff-browser", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AssertionError("the browser scenario did not finish")
    if "error" in box:
        raise box["error"]


@pytest.fixture
def demo_locker(make_demo):  # noqa: F811
    from bibbox.daemon.bootstrap import open_staff_accounts
    daemon = make_demo(clock=FakeClock())
    open_staff_accounts(daemon.cfg.locker.state_dir).add("anna", PASSWORD, "admin")
    # start from an empty locker: take the demo's seeded holds out
    daemon.controller.call(lambda l: [l.confirm_removed(n, "setup", "test setup")
                                      for n in sorted({h.compartment for h in l.holds.values()})])
    return daemon


def test_a_shift_at_the_locker(demo_locker):
    def scenario(chromium):
        context = chromium.new_context(viewport={"width": 412, "height": 915},
                                       locale="da-DK", service_workers="block")  # a phone
        context.set_default_timeout(10_000)
        try:
            a_shift(Shift(context.new_page(), demo_locker))
        finally:
            context.close()
    in_browser(scenario)


def a_shift(shift):
    from playwright.sync_api import expect
    page, base = shift.page, shift.base

    # -- log in (one typo first) -------------------------------------------------------
    page.goto(base + "/staff/load")
    expect(page).to_have_url(base + "/staff/login?next=/staff/load")
    page.fill("#name", "anna")
    page.fill("#password", "wrong password")
    page.press("#password", "Enter")
    expect(page.locator("#login-error")).to_be_visible()
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page).to_have_url(base + "/staff/load")
    item, card, open_btn = page.locator("#item"), page.locator("#card"), page.locator("#open-btn")
    expect(item).to_be_focused()

    # -- hold 1: two items for Karen ----------------------------------------------------------
    shift.scan("#item", ITEMS[0])
    shift.scan("#item", ITEMS[1])
    expect(page.locator("#items li")).to_have_count(2)
    expect(item).to_be_focused()
    item.press("Enter")                                # empty: on to the patron
    expect(card).to_be_focused()
    shift.scan("#card", KAREN)
    expect(card).to_have_value("")                     # the clear number left the page
    expect(open_btn).to_be_focused()
    expect(open_btn).to_have_attribute("data-n", "1")
    screenshot(page, "staff-load-proposal")
    open_btn.press("Enter")
    first = page.locator("#pending li").first
    expect(first).to_have_attribute("data-state", "loading")
    expect(item).to_be_focused()                       # ready for the next scan
    hold1 = first.get_attribute("data-hold")
    expect(first).to_contain_text("Rum 1 er åbent")
    shift.close_door(1)
    expect(page.locator(f'#pending li[data-hold="{hold1}"]')).to_have_attribute(
        "data-state", "ready")

    # -- hold 2: one more compartment for the same patron ----------------------------------------
    page.locator("#same-patron").click()
    expect(item).to_be_focused()
    shift.scan("#item", ITEMS[2])
    item.press("Enter")
    expect(open_btn).to_be_focused()
    expect(open_btn).to_have_attribute("data-n", "2")
    open_btn.press("Enter")
    expect(page.locator("#pending li").first).not_to_have_attribute("data-hold", hold1)
    hold2 = page.locator("#pending li").first.get_attribute("data-hold")
    shift.close_door(2)
    expect(page.locator(f'#pending li[data-hold="{hold2}"]')).to_have_attribute(
        "data-state", "ready")

    # -- hold 3: Ole, into a door that is jammed ---------------------------------------------------
    shift.scan("#item", ITEMS[3])
    item.press("Enter")
    shift.scan("#card", OLE)
    expect(open_btn).to_have_attribute("data-n", "3")
    shift.sim("/sim/doors/3/jam", {"jammed": True})
    open_btn.press("Enter")
    expect(page.locator("#pending li")).to_have_count(3)
    hold3 = page.locator("#pending li").first.get_attribute("data-hold")
    wait_until(lambda: shift.call(lambda l: l.openings.get(3) and l.openings[3].fired),
               what="the lock of door 3 to fire")
    shift.advance(shift.daemon.cfg.timing.door_open_timeout_s + 1)
    jammed = page.locator(f'#pending li[data-hold="{hold3}"]')
    expect(jammed).to_have_attribute("data-state", "announced")
    expect(jammed).to_contain_text("sidder fast")
    retry = page.get_by_test_id(f"retry-{hold3}")
    expect(retry).to_contain_text("rum 4")               # another door is offered
    screenshot(page, "staff-load-jammed")
    retry.click()
    expect(jammed).to_have_attribute("data-state", "loading")
    shift.close_door(4)
    expect(jammed).to_have_attribute("data-state", "ready")
    assert not shift.door_open(3)

    # -- the overview shows them ready -----------------------------------------------------------------
    page.get_by_role("link", name="Oversigt").click()
    for n in (1, 2, 4):
        expect(page.get_by_test_id(f"tile-{n}")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("tile-3")).to_contain_text("sidder fast")
    screenshot(page, "staff-overview")

    # -- the deadline passes (and the session ends): log in again in the page -----------------------------
    shift.advance(8 * 86400)
    dialog = page.locator("#relogin")
    expect(dialog).to_be_visible()
    page.fill("#relogin-password", PASSWORD)
    page.press("#relogin-password", "Enter")
    expect(dialog).to_be_hidden()
    for n in (1, 2, 4):
        expect(page.get_by_test_id(f"tile-{n}")).to_have_attribute("data-state", "expired")

    # -- unload ------------------------------------------------------------------------------------------
    page.get_by_role("link", name="Tøm").click()
    for n in (1, 2, 4):
        page.get_by_test_id(f"unload-open-{n}").click()
        expect(page.get_by_test_id(f"unload-status-{n}")).to_contain_text("Tag materialerne ud")
        shift.close_door(n)
        expect(page.get_by_test_id(f"unload-status-{n}")).to_contain_text("lukket")
        page.get_by_test_id(f"unload-confirm-{n}").click()
        expect(page.locator(f'.unload-row[data-n="{n}"]')).to_have_count(0)
    shift.sim("/sim/doors/3/jam", {"jammed": False})     # the jam is fixed
    page.locator('.unload-row[data-n="3"] button', has_text="Nulstil").click()
    expect(page.locator("#unload-none")).to_be_visible()
    assert shift.call(lambda l: [h.id for h in l.holds.values()]) == []

    # -- the audit log and its CSV -------------------------------------------------------------------------
    page.get_by_role("link", name="Log").click()
    table = page.locator("#audit-table")
    for action in ("login", "login_failed", "loaded", "loading_failed", "door_jammed",
                   "unlock", "removed", "alarm_cleared"):
        expect(table.locator(f'tr[data-action="{action}"]').first).to_be_visible()
    page.select_option("#f-kind", "unloading")
    page.fill("#f-actor", "anna")                      # (setup removed the demo's holds)
    page.get_by_role("button", name="Vis").click()
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator('tbody tr[data-action="removed"]')).to_have_count(3)
    answer = page.request.get(base + "/staff/audit.csv")
    assert answer.ok and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text().lstrip("\ufeff"))))
    loaded = [r for r in rows if r["Kode"] == "loaded"]          # Danish columns, code last
    assert len(loaded) == 3 and {r["Hvem"] for r in loaded} == {"anna"}
    assert all(r["Låner"].startswith("P-") for r in loaded)
    assert {r["Hændelse"] for r in loaded} == {"Fyldt i"}
    manual = [r for r in rows if r["Kode"] == "unlock" and r["Hvem"] == "anna"]
    assert all(r["Hvorfor"] for r in manual)              # who and why, for every door
    logins = [r for r in rows if r["Kode"] == "login"]
    assert logins and all(r["Detaljer"].startswith("fra ") for r in logins)
    assert not any(r["Hændelse"] == r["Kode"] for r in rows), "an event without words"
    # -- on a phone the log is a list of cards, every event in words -------------------------------------
    page.get_by_role("link", name="Nulstil").click()
    first_row = table.locator("tbody tr").first
    expect(first_row).to_be_visible()
    assert first_row.evaluate("r => getComputedStyle(r).display") == "block"
    assert page.evaluate("document.documentElement.scrollWidth") <= 412
    cells = table.locator("td.what").all_inner_texts()
    assert cells and not any(c in ("unlock", "loaded", "login", "removed") for c in cells)
    assert "fra 127.0.0.1" in table.inner_text() and "from 127.0.0.1" not in table.inner_text()
    screenshot(page, "staff-audit")

    # -- no card number ever reached the browser -------------------------------------------------------------
    everything = b"".join(shift.bodies) + answer.body()
    assert KAREN.encode() not in everything and OLE.encode() not in everything
