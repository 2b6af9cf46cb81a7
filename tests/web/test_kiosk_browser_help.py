"""The kiosk in headless Chromium: languages, reading help and help in every
dead end (issue 12, items 4 and 5).  Canned views on the real page, as in
test_kiosk_browser.py; nothing asserts a duration."""

from __future__ import annotations

import re

import pytest

from tests.browser import browser, kiosk_page, screenshot  # noqa: F401
from tests.web.test_kiosk_browser import DENIALS, SESSION, canned  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect

IDLE_TITLES = {
    "da": "Scan dit sundhedskort eller lånerkort",
    "en": "Scan your health card or library card",
    "de": "Scannen Sie Ihre Gesundheitskarte oder Bibliothekskarte",
    "pl": "Zeskanuj kartę zdrowia lub kartę biblioteczną",
    "uk": "Відскануйте картку здоров’я або читацький квиток",
    "ar": "امسح بطاقتك الصحية أو بطاقة المكتبة",
}


def test_each_language_by_its_own_button_and_arabic_right_to_left(canned):
    page, show, _ = canned
    html = page.locator("html")
    for code, title in IDLE_TITLES.items():
        button = page.get_by_test_id(f"lang-{code}")
        button.click()
        expect(html).to_have_attribute("lang", code)
        expect(html).to_have_attribute("dir", "rtl" if code == "ar" else "ltr")
        expect(page.locator("#title-idle")).to_have_text(title)
        expect(button).to_have_attribute("aria-pressed", "true")
    show(**{**SESSION, "screen": "pin", "seconds_left": 30, "message": "wrong_pin",
            "tries_left": 2})
    expect(page.get_by_test_id("pin-message")).to_have_text(
        "رقم سري خاطئ. المحاولات المتبقية: 2.")
    # logical properties: the error bar sits on the right in Arabic
    side = page.get_by_test_id("pin-message").evaluate(
        "el => [getComputedStyle(el).borderRightWidth, getComputedStyle(el).borderLeftWidth]")
    assert side == ["8px", "0px"], side
    pad, text = (page.get_by_test_id("pad").bounding_box(),
                 page.locator(".pin-side").bounding_box())
    assert pad["x"] < text["x"]                       # mirrored: the pad on the left
    screenshot(page, "2-pin-ar")
    show(**{**SESSION, "screen": "denied", "message": "card_blocked", "minutes_blocked": 15})
    expect(page.get_by_test_id("denied-title")).to_have_text(
        "الاستخدام متوقف هنا لمدة 15 دقيقة")
    expect(page.get_by_test_id("cancel")).to_have_text("موافق")
    screenshot(page, "5-denied-ar")
    show()                                             # back at idle: Danish again
    expect(html).to_have_attribute("lang", "da")
    expect(html).to_have_attribute("dir", "ltr")
    expect(page.locator("#title-idle")).to_have_text(IDLE_TITLES["da"])


def test_plural_forms_follow_the_language(canned):
    page, show, _ = canned
    show(**{**SESSION, "screen": "pin", "seconds_left": 30, "message": "wrong_pin",
            "tries_left": 1})
    page.get_by_test_id("lang-en").click()
    expect(page.get_by_test_id("pin-message")).to_have_text("Wrong PIN. You have 1 try left.")
    page.get_by_test_id("lang-de").click()
    expect(page.get_by_test_id("pin-message")).to_have_text(
        "Falsche PIN. Sie haben noch 1 Versuch.")
    show(**{**SESSION, "screen": "receipt", "seconds_left": 45,
            "items": [{"barcode": "1", "title": "Buch", "due": "2027-01-05"}]})
    expect(page.locator(".item-due")).to_have_text("Rückgabe bis 5. Januar 2027")


def test_large_text_is_one_touch_away_and_resets_at_idle(canned):
    page, show, _ = canned
    show(**{**SESSION, "screen": "pin", "seconds_left": 30})
    title = page.locator("#title-pin")
    before = title.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    large = page.get_by_test_id("large-text")
    expect(large).to_have_attribute("aria-pressed", "false")
    expect(large).to_have_accessible_name("Stor tekst")
    large.click()
    expect(page.locator("html")).to_have_class(re.compile(r"\blarge\b"))
    expect(large).to_have_attribute("aria-pressed", "true")
    after = title.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    assert after > before * 1.2, (before, after)
    colours = page.locator("body").evaluate(
        "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]")
    assert colours == ["rgb(0, 0, 0)", "rgb(255, 255, 255)"]
    for testid in ("key-1", "key-ok", "extend", "cancel"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box["y"] + box["height"] <= 600, testid       # still on a 1024x600 panel
    screenshot(page, "2-pin-large")
    show()
    expect(page.locator("html")).not_to_have_class(re.compile(r"\blarge\b"))
    expect(large).to_have_attribute("aria-pressed", "false")


def test_every_dead_end_says_how_to_reach_the_library(canned):
    page, show, _ = canned
    help_box = page.get_by_test_id("help")
    for code in DENIALS:
        show(**{**SESSION, "screen": "denied", "message": code, "minutes_blocked": 15})
        expect(help_box).to_be_visible()
        expect(page.get_by_test_id("help-phone")).to_have_text(
            "Ring til biblioteket: 33 12 34 56")
        expect(page.get_by_test_id("help-hours")).to_have_text(
            "Åbningstider: Man–fre 10–19, lør 10–14")
        expect(page.get_by_test_id("extend")).to_be_hidden()   # no "Mere tid" on a denial
        expect(page.get_by_test_id("cancel")).to_have_text("OK")
    screenshot(page, "5-denied-help")
    show(**{**SESSION, "screen": "denied", "message": "patron_blocked"})
    expect(page.get_by_test_id("denied-help")).to_have_text(
        "Biblioteket har spærret dit kort, for eksempel på grund af gebyrer eller et "
        "mistet kort. Kontakt biblioteket.")
    assert not re.search(r"\d", page.get_by_test_id("denied-help").inner_text())  # no amounts
    page.get_by_test_id("lang-en").click()
    expect(page.get_by_test_id("help-phone")).to_have_text("Call the library: 33 12 34 56")
    page.get_by_test_id("lang-da").click()
    show(**{**SESSION, "screen": "opening", "seconds_left": 40,
            "compartments": [{"number": 2, "status": "open"},
                             {"number": 5, "status": "jammed"}]})
    expect(page.get_by_test_id("door-5")).to_have_text(re.compile(
        "Låge 5 kunne ikke åbnes. Dine materialer er stadig reserveret til dig."))
    expect(help_box).to_be_visible()
    screenshot(page, "3c-opening-jammed-help")
    show(**{**SESSION, "screen": "opening", "seconds_left": 40,
            "compartments": [{"number": 2, "status": "open"}]})
    expect(help_box).to_be_hidden()                    # not a dead end
    show(**{**SESSION, "screen": "pin", "seconds_left": 30})
    expect(help_box).to_be_hidden()
    expect(page.get_by_test_id("extend")).to_be_visible()
    expect(page.get_by_test_id("cancel")).to_have_text("Afbryd")
