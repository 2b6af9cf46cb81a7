"""axe-core over every kiosk and staff screen, in headless Chromium: 0
violations at WCAG 2.1 A and AA (tests/web/axe.py), the kiosk in Danish,
English and Arabic (right to left), the staff page in its two languages, on
a desktop and on a phone.  A failure names the rule and the elements."""

from __future__ import annotations

import pytest

from tests.browser import browser, demo, kiosk_page, make_demo, screenshot  # noqa: F401
from tests.web.axe import check
from tests.web.test_kiosk_browser import SESSION, canned  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "correct horse battery"
DOORS = [{"number": 2, "status": "queued"}, {"number": 4, "status": "open"},
         {"number": 5, "status": "jammed"}, {"number": 6, "status": "unavailable"}]
KIOSK_SCREENS = {
    "idle": {},
    "reader-offline": {"reader_online": False},
    "notice": {"notice": "busy"},
    "pin": {**SESSION, "screen": "pin", "tries_left": 2, "message": "wrong_pin"},
    "code": {**SESSION, "screen": "code"},
    "verifying": {**SESSION, "screen": "verifying"},
    "opening": {**SESSION, "screen": "opening", "compartments": DOORS},
    "receipt": {**SESSION, "screen": "receipt", "reopen": True,
                "compartments": [{"number": 2, "status": "closed"},
                                 {"number": 4, "status": "open"}],
                "items": [{"barcode": "123", "title": "Bog", "due": "2027-01-05"}]},
    "denied": {**SESSION, "screen": "denied", "message": "card_blocked", "minutes_blocked": 5},
    "denied-unknown": {**SESSION, "screen": "denied", "message": "unknown_card"},
}


@pytest.mark.parametrize("lang", ["da", "en", "ar"])
def test_every_kiosk_screen_passes_axe(canned, lang):
    page, show, _ = canned
    page.get_by_test_id(f"lang-{lang}").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)
    for name, view in KIOSK_SCREENS.items():
        show(**view)
        check(page, f"kiosk {name} ({lang})")
    page.get_by_test_id("large-text").click()          # the high-contrast mode too
    for name in ("pin", "opening", "receipt", "denied"):
        show(**KIOSK_SCREENS[name])
        check(page, f"kiosk {name} ({lang}, large text)")
    screenshot(page, f"axe-kiosk-{lang}-large")


@pytest.fixture
def staffed(make_demo):  # noqa: F811
    from bibbox.daemon.bootstrap import open_staff_accounts
    from bibbox.locker.domain.clock import FakeClock
    daemon = make_demo(clock=FakeClock())
    open_staff_accounts(daemon.cfg.locker.state_dir).add("anna", PASSWORD, "admin")
    open_staff_accounts(daemon.cfg.locker.state_dir).add("bo", PASSWORD + "!", "staff")
    return daemon


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800},
                                      {"width": 390, "height": 844}], ids=["desktop", "phone"])
def test_every_staff_screen_passes_axe(browser, staffed, viewport):  # noqa: F811
    base = f"http://127.0.0.1:{staffed.port}"
    context = browser.new_context(viewport=viewport, locale="da-DK", service_workers="block")
    page = context.new_page()
    try:
        page.goto(base + "/staff/login")
        check(page, "login")
        page.fill("#name", "anna")
        page.fill("#password", PASSWORD)
        page.press("#password", "Enter")
        expect(page).to_have_url(base + "/staff/")
        for lang in ("da", "en"):
            if lang == "en":
                page.goto(base + "/staff/lang/en?next=/staff/")
            for path in ("/staff/", "/staff/load", "/staff/unload", "/staff/audit",
                         "/staff/accounts", "/staff/accounts?remove=bo"):
                page.goto(base + path)
                expect(page.locator("html")).to_have_attribute("lang", lang)
                if path == "/staff/":
                    expect(page.get_by_test_id("tile-1")).to_be_visible()
                check(page, f"{path} ({lang}, {viewport['width']} px)")
            page.goto(base + "/staff/")
            page.get_by_test_id("tile-1").click()
            expect(page.locator("#detail")).to_be_visible()
            check(page, f"the compartment dialog ({lang}, {viewport['width']} px)")
        screenshot(page, f"axe-staff-dialog-{viewport['width']}")
    finally:
        context.close()
