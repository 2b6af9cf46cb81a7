"""Where is my door? (issue 12, item 8) in headless Chromium: the kiosk draws
the cabinet's front with the patron's doors filled and numbered, and the
staff overview stands each tile where its door is, back to a list on a
phone.  The demo configuration carries the places (config/demo.toml)."""

from __future__ import annotations

import pytest

from tests.browser import (Kiosk, browser, demo, kiosk, kiosk_page,  # noqa: F401
                           make_demo, screenshot)
from tests.web.axe import check
from tests.web.test_kiosk_browser import KAREN, KAREN_PIN, expect_screen, present

expect = pytest.importorskip("playwright.sync_api").expect
PASSWORD = "correct horse battery"


def test_the_kiosk_shows_the_patrons_doors_in_the_cabinet(kiosk):
    page = kiosk.page
    present(kiosk, KAREN)
    kiosk.tap_pin(KAREN_PIN)
    page.get_by_test_id("key-ok").click()
    expect_screen(kiosk, "opening")
    front = page.get_by_test_id("front")
    expect(front).to_be_visible()
    mine = front.locator('[data-mine="true"]')
    expect(mine).to_have_count(2)                       # Karen's doors 1 and 3
    expect(mine).to_have_text(["1", "3"])
    expect(front.locator(".front-door")).to_have_count(6)
    door3, door6, door1 = (box(page, f"front-{n}") for n in (3, 6, 1))
    assert door3["height"] > door1["height"] * 1.5      # door 3 spans two rows
    assert door6["x"] > door3["x"] and door6["height"] > door3["height"]  # 6: right, 4 rows
    assert front.get_attribute("aria-hidden") == "true"  # the list says it in words
    check(page, "the kiosk's opening screen with the front view")
    screenshot(page, "kiosk-front-view")


def box(page, test_id, timeout=5.0):
    """The element's box once it is laid out (the view re-renders as doors
    change: a box taken mid-render is None)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        found = page.get_by_test_id(test_id).bounding_box()
        if found is not None or time.monotonic() > deadline:
            assert found is not None, f"{test_id} has no box"
            return found
        page.wait_for_timeout(50)


def test_the_staff_overview_is_the_cabinet_and_a_list_on_a_phone(browser, make_demo):  # noqa: F811
    from bibbox.daemon.bootstrap import open_staff_accounts
    daemon = make_demo()
    open_staff_accounts(daemon.cfg.locker.state_dir).add("anna", PASSWORD, "admin")
    base = f"http://127.0.0.1:{daemon.port}"
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="da-DK",
                                  service_workers="block")
    page = context.new_page()
    try:
        page.goto(base + "/staff/login")
        page.fill("#name", "anna")
        page.fill("#password", PASSWORD)
        page.press("#password", "Enter")
        tile = page.get_by_test_id
        expect(tile("tile-6")).to_be_visible()
        boxes = {n: tile(f"tile-{n}").bounding_box() for n in (1, 2, 3, 4, 6)}
        assert boxes[1]["x"] == boxes[2]["x"] and boxes[2]["y"] > boxes[1]["y"]  # one column
        assert boxes[4]["x"] > boxes[1]["x"] and boxes[4]["y"] == boxes[1]["y"]
        screenshot(page, "staff-front-view")
        assert boxes[6]["height"] > boxes[3]["height"] > boxes[1]["height"], boxes  # spans
        expect(tile("tile-1")).to_have_attribute("data-state", "ready")        # by state
        expect(tile("tile-4")).to_have_class("tile state-free")
        check(page, "the staff overview as the cabinet")
        screenshot(page, "staff-front-view")
        page.set_viewport_size({"width": 390, "height": 844})                  # a phone
        first, second = tile("tile-1").bounding_box(), tile("tile-2").bounding_box()
        assert second["y"] == first["y"] and second["x"] > first["x"]          # a list again
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "staff-front-view-phone")
    finally:
        context.close()
