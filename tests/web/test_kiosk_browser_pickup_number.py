"""Pickup without the card in headless Chromium, on the 800×480 panel.

The whole way (button, pickup number, PIN, doors, receipt) against the
simulated locker with ``verifier.pickup_number_with_pin`` on, in Danish and
in Arabic (right to left), axe-core over every screen of it; then canned
views for the kiosk-wide pause.  Every wait is one of Playwright's
expectations; screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import re

import pytest

from bibbox.daemon.cli import DEMO_CONFIG
from tests.browser import (Kiosk, browser, kiosk_page, make_demo, screenshot,  # noqa: F401
                           stop_demo)
from tests.web.axe import check
from tests.web.test_kiosk_browser import KAREN_PIN, SESSION, canned, watch_relays  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect

SMALL = {"width": 800, "height": 480}
KAREN_NUMBER = "001"        # the demo's hold D-1001 (Karen: compartments 1 and 3)
TEXTS = {
    "da": {"button": "Afhentningsnummer", "title": "Indtast dit afhentningsnummer",
           "wrong": "Afhentningsnummer eller PIN er forkert."},
    "ar": {"button": "رقم الاستلام", "title": "أدخل رقم الاستلام",
           "wrong": "رقم الاستلام أو الرقم السري خاطئ."},
}


@pytest.fixture
def number_demo(tmp_path):
    """The demo locker with pickup by number turned on."""
    from bibbox.daemon.cli import demo_daemon
    config = tmp_path / "demo-number.toml"
    config.write_text(open(DEMO_CONFIG, encoding="utf-8").read() +
                      '\n[verifier]\nkind = "local"\npickup_number_with_pin = true\n',
                      encoding="utf-8")
    daemon = demo_daemon(tmp_path / "state", port=0, config=str(config))
    daemon.start()
    yield daemon
    stop_demo(daemon)


@pytest.fixture
def small_kiosk(number_demo, kiosk_page):
    kiosk_page.set_viewport_size(SMALL)
    return Kiosk(kiosk_page, number_demo).open()


def expect_screen(kiosk, name):
    expect(kiosk.screen).to_have_attribute("data-screen", name)


def on_screen(page, testid):
    box = page.get_by_test_id(testid).bounding_box()
    assert box is not None, testid
    assert box["width"] >= 64 and box["height"] >= 64, testid
    assert box["x"] >= 0 and box["x"] + box["width"] <= SMALL["width"], testid
    assert box["y"] >= 0 and box["y"] + box["height"] <= SMALL["height"], testid


def type_number(kiosk, number):
    kiosk.page.get_by_test_id("number-start").click()
    expect_screen(kiosk, "number")
    kiosk.tap_pin(number)


@pytest.mark.parametrize("lang", ["da", "ar"])
def test_pickup_by_number_on_the_small_screen(small_kiosk, lang):
    kiosk, page, texts = small_kiosk, small_kiosk.page, TEXTS[lang]
    fired = watch_relays(kiosk.daemon)
    if lang != "da":
        page.get_by_test_id(f"lang-{lang}").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl" if lang == "ar" else "ltr")
    start = page.get_by_test_id("number-start")
    expect(start).to_have_text(texts["button"])
    expect(start).to_be_enabled()
    on_screen(page, "number-start")
    check(page, f"idle with the pickup-number button ({lang})")
    screenshot(page, f"number-1-idle-{lang}-800x480")

    # A number no hold has: the same message a wrong PIN gets, after a moment.
    type_number(kiosk, "999")
    dots = page.get_by_test_id("pin-dots")
    expect(dots).to_have_text("999")                        # shown as typed
    expect(page.locator("#title-pin")).to_have_text(texts["title"])
    for testid in ("key-1", "key-0", "key-ok", "key-erase", "extend", "cancel"):
        on_screen(page, testid)
    check(page, f"number screen ({lang})")
    screenshot(page, f"number-2-typed-{lang}-800x480")
    page.get_by_test_id("key-ok").click()
    expect_screen(kiosk, "pin")
    kiosk.tap_pin(KAREN_PIN)
    page.get_by_test_id("key-ok").click()
    message = page.get_by_test_id("pin-message")
    expect(message).to_have_text(re.compile("^" + re.escape(texts["wrong"])))
    expect_screen(kiosk, "number")
    expect(page.get_by_test_id("status")).to_have_text(re.compile(re.escape(texts["wrong"])))
    check(page, f"number or PIN wrong ({lang})")
    screenshot(page, f"number-3-wrong-{lang}-800x480")

    # The right number and PIN: Karen's doors open, the receipt follows.
    kiosk.tap_pin(KAREN_NUMBER)
    page.keyboard.press("Enter")
    expect_screen(kiosk, "pin")
    expect(message).to_be_hidden()
    check(page, f"PIN after the number ({lang})")
    kiosk.tap_pin(KAREN_PIN)
    page.get_by_test_id("key-ok").click()
    expect_screen(kiosk, "opening")
    for n in (1, 3):                                        # the simulated doors spring open
        expect(page.get_by_test_id(f"door-{n}")).to_have_attribute("data-status", "open")
    check(page, f"opening after pickup by number ({lang})")
    screenshot(page, f"number-4-opening-{lang}-800x480")
    assert sorted(fired) == [1, 3]                          # what the card path opens
    for n in (1, 3):
        kiosk.close_door(n)
    expect_screen(kiosk, "receipt")
    expect(page.get_by_test_id("item")).to_have_count(3)
    expect(page.get_by_test_id("receipt-reopen")).to_be_hidden()   # no card to show again
    check(page, f"receipt after pickup by number ({lang})")
    screenshot(page, f"number-5-receipt-{lang}-800x480")
    for body in (r["body"] for r in kiosk.responses if "/api/kiosk" in r["url"]):
        assert KAREN_PIN.encode() not in body


def test_the_button_is_not_there_when_the_option_is_off(canned):
    page, show, _ = canned
    show(number_entry=False)
    expect(page.get_by_test_id("number-offer")).to_be_hidden()
    show(number_entry=True, number_paused_s=0)
    expect(page.get_by_test_id("number-start")).to_be_visible()
    show(**{**SESSION, "screen": "pin", "number_entry": True})
    expect(page.get_by_test_id("number-offer")).to_be_hidden()


@pytest.mark.parametrize("lang", ["da", "ar"])
def test_the_pause_is_shown_and_the_button_waits(canned, lang):
    page, show, controller = canned
    page.set_viewport_size(SMALL)
    page.get_by_test_id(f"lang-{lang}").click()
    show(number_entry=True, number_paused_s=290)
    button, note = page.get_by_test_id("number-start"), page.get_by_test_id("number-paused")
    expect(button).to_be_disabled()
    expect(note).to_have_text({"da": "Afhentningsnummer kan bruges igen om 5 minutter. "
                                     "Du kan stadig bruge dit kort.",
                               "ar": re.compile("5 دقائق")}[lang])
    on_screen(page, "number-start")
    check(page, f"idle, pickup by number paused ({lang})")
    screenshot(page, f"number-6-paused-{lang}-800x480")
    show(**{**SESSION, "screen": "denied", "message": "number_paused", "minutes_blocked": 10})
    expect(page.get_by_test_id("denied-title")).to_have_text(
        {"da": "Prøv igen om 10 minutter", "ar": "حاول مجددًا بعد 10 دقائق"}[lang])
    expect(page.get_by_test_id("denied-help")).not_to_be_empty()
    check(page, f"denied, pickup by number paused ({lang})")
    screenshot(page, f"number-7-paused-denied-{lang}-800x480")
    show(number_entry=True, number_paused_s=0)
    expect(button).to_be_enabled()
    expect(note).to_be_hidden()
    with page.expect_response("**/api/kiosk/action") as answer:
        button.click()
    assert answer.value.request.post_data_json == {"action": "pickup_number"}
