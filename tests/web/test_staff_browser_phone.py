"""The staff page on a phone (390x844), in headless Chromium (issue 12, items
6 and 9): a compact header, the load page's primary action on the first
screen, own actions not announced as someone else's (a manual open, an
out-of-service change, an alarm reset) while a real change by another is,
marking holds collected after a door opened for a patron on the phone, a
forced-door alarm that clears itself, account deletion that asks first, and
the simulator page on the phone.  Every wait is for a condition."""

from __future__ import annotations

import json
import urllib.request

import pytest

from bibbox.locker.domain.clock import FakeClock
from bibbox.locker.domain.doors import FORCED_SETTLE_S
from tests.browser import browser, make_demo, screenshot  # noqa: F401
from tests.domain_helpers import wait_until

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}
OTHERS = "er ændret af en anden"


@pytest.fixture
def locker(make_demo):  # noqa: F811
    from bibbox.daemon.bootstrap import open_staff_accounts
    daemon = make_demo(clock=FakeClock())
    accounts = open_staff_accounts(daemon.cfg.locker.state_dir)
    accounts.add("anna", PASSWORD, "admin")
    accounts.add("bo", PASSWORD + "!", "staff")
    return daemon


@pytest.fixture
def phone(browser, locker):  # noqa: F811
    context = browser.new_context(viewport=PHONE, locale="da-DK", service_workers="block")
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    base = f"http://127.0.0.1:{locker.port}"
    page.goto(base + "/staff/login")
    page.fill("#name", "anna")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page).to_have_url(base + "/staff/")
    yield page, base
    context.close()


def sim(base, path, data):
    request = urllib.request.Request(base + path, data=json.dumps(data).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def advance(locker, seconds):
    locker.clock.advance(seconds)
    locker.controller.wake()


def test_compact_header_and_the_open_button_on_the_first_screen(phone):
    page, base = phone
    header = page.locator("header.top").bounding_box()
    assert header["height"] <= 125, header              # was about 215 px
    page.goto(base + "/staff/load")
    button = page.locator("#open-btn")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert 0 <= box["y"] and box["y"] + box["height"] <= PHONE["height"], box
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "staff-phone-load")
    page.goto(base + "/staff/")
    tile = page.get_by_test_id("tile-1")
    expect(tile).to_have_accessible_name(__import__("re").compile(r"^Rum 1\b"))
    # the name is what is seen ("1 S Klar ..."), with "Rum" read before the number
    expect(tile).to_have_accessible_name(__import__("re").compile(r"^Rum 1 S Klar Låge lukket"))
    assert not [e for e in page.errors if "favicon" in e or "404" in e], page.errors


def test_own_actions_are_not_someone_elses_and_marking_collected(phone, locker):
    page, base = phone
    toast, done = page.locator("#toast"), page.get_by_test_id("detail-done")
    page.get_by_test_id("tile-3").click()               # D-1002 is ready in compartment 3
    page.fill("#open-reason", "Låneren ringede")
    page.get_by_test_id("open-door").click()
    expect(done).to_have_text("Lågen til rum 3 åbnes.")
    wait_until(lambda: locker.simulator.door_is_open(3), what="door 3 to spring open")
    expect(page.get_by_test_id("tile-3")).to_have_attribute("data-state", "opening")
    expect(collect := page.get_by_test_id("mark-collected")).to_be_hidden()   # not while open
    sim(base, "/sim/doors/3", {"open": False})
    expect(collect).to_be_visible()                      # offered once the door is shut
    expect(toast).not_to_contain_text(OTHERS)
    expect(done).to_have_text("Lågen til rum 3 åbnes.")
    screenshot(page, "staff-phone-mark-collected")
    collect.click()
    expect(done).to_have_text("Rum 3: markeret som afhentet.")
    expect(page.get_by_test_id("tile-3")).to_have_attribute("data-state", "free")
    expect(toast).not_to_contain_text(OTHERS)
    assert locker.controller.call(lambda l: [h.id for h in l.holds.values()
                                             if h.compartment == 3]) == []

    page.fill("#open-reason", "")
    page.get_by_test_id("service").click()                # our own out-of-service change
    expect(page.locator("#detail-error")).not_to_be_empty()    # a reason first
    page.fill("#open-reason", "Hængslet driller")
    page.get_by_test_id("service").click()
    expect(page.get_by_test_id("tile-3")).to_contain_text("Hængslet driller")
    expect(toast).not_to_contain_text(OTHERS)

    # someone else changes it while the dialog is open: that is announced
    locker.controller.call(lambda l: l.set_out_of_service(3, None, "bo"))
    expect(toast).to_contain_text("Rum 3 er ændret af en anden.")
    page.locator("#detail [data-close]").click()

    # the audit log says who, what and why, in words
    page.goto(base + "/staff/audit?compartment=3")
    row = page.locator('tr[data-action="collected_by_staff"]')
    expect(row).to_contain_text("Markeret afhentet af personalet")
    expect(row).to_contain_text("Låneren ringede")


def test_a_forced_door_alarm_clears_itself_and_an_own_reset_is_not_someone_elses(phone,
                                                                                 locker):
    page, base = phone
    sim(base, "/sim/doors/6", {"open": True})            # opened without a command
    tile = page.get_by_test_id("tile-6")
    expect(tile).to_contain_text("uden kommando")
    sim(base, "/sim/doors/6", {"open": False})
    wait_until(lambda: locker.controller.call(lambda l: l.doors[6].state.value) == "closed",
               what="the controller to see door 6 shut")   # past the bounce window
    advance(locker, FORCED_SETTLE_S + 1)                 # shut for the settle time
    expect(tile).not_to_contain_text("uden kommando")
    assert page.locator("#alarm-list").inner_text().strip() == "Ingen alarmer."

    sim(base, "/sim/doors/6", {"open": True})            # again, and staff reset it
    expect(tile).to_contain_text("uden kommando")
    sim(base, "/sim/doors/6", {"open": False})
    wait_until(lambda: locker.controller.call(lambda l: l.doors[6].state.value) == "closed",
               what="the controller to see door 6 shut")   # past the bounce window
    tile.click()
    page.get_by_test_id("clear-door_forced").click()
    expect(page.get_by_test_id("detail-done")).to_have_text("Alarmen er nulstillet.")
    expect(tile).not_to_contain_text("uden kommando")
    expect(page.locator("#toast")).not_to_contain_text(OTHERS)


def test_deleting_an_account_asks_first(phone, locker):
    page, base = phone
    page.goto(base + "/staff/accounts")
    row = page.locator("tr", has_text="bo")
    row.get_by_role("button", name="Slet").click()
    question = page.get_by_test_id("confirm-remove")
    expect(question).to_contain_text("Slet kontoen bo?")
    expect(page.locator("tbody tr", has_text="bo")).to_have_count(1)   # not yet
    page.get_by_test_id("confirm-remove-no").click()
    expect(question).to_have_count(0)
    expect(page.locator("tbody tr", has_text="bo")).to_have_count(1)
    page.locator("tr", has_text="bo").get_by_role("button", name="Slet").click()
    page.get_by_test_id("confirm-remove-yes").click()
    expect(page.locator(".notice")).to_have_text("Kontoen er slettet.")
    expect(page.locator("tbody tr", has_text="bo")).to_have_count(0)


def test_the_simulator_on_a_phone_shows_the_holds(phone, locker):
    page, base = phone
    page.goto(base + "/sim")
    expect(page.get_by_test_id("sim-holds-1")).to_have_text(
        __import__("re").compile(r"^Hold \d+ \(ready, 2 items\)$"))
    expect(page.get_by_test_id("sim-holds-4")).to_have_text("No hold")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "sim-phone")
    page.goto(base + "/")
    assert not page.errors, page.errors                  # the favicon is served
