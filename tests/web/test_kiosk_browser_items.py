"""Something left behind, in headless Chromium (issue 11, item 3): the
receipt names the door an item sensor still sees something behind and how
to open it again, then, once the card no longer reopens it, that staff will
be told, with the library's phone number."""

from __future__ import annotations

import pytest

from tests.browser import browser, kiosk_page, screenshot  # noqa: F401
from tests.web.test_kiosk_browser import SESSION, canned  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect

CLOSED_1_3 = [{"number": 1, "status": "closed"}, {"number": 3, "status": "closed"}]


def test_the_receipt_says_what_was_left_behind_and_how_to_get_it(canned):
    page, show, _ = canned
    show(**{**SESSION, "screen": "receipt", "seconds_left": 60, "reopen": True,
            "compartments": CLOSED_1_3, "left_behind": []})
    left = page.get_by_test_id("receipt-left")
    expect(left).to_be_hidden()
    expect(page.get_by_test_id("receipt-reopen")).to_be_visible()
    show(**{**SESSION, "screen": "receipt", "seconds_left": 58, "reopen": True,
            "compartments": CLOSED_1_3, "left_behind": [3]})
    expect(left).to_have_text("Du har glemt noget bag låge 3. "
                              "Vis dit kort igen for at åbne lågen.")
    expect(page.get_by_test_id("receipt-reopen")).to_be_hidden()   # said once, precisely
    expect(page.get_by_test_id("help")).to_be_hidden()           # the card gets it
    page.get_by_test_id("lang-en").click()
    expect(left).to_have_text("You left something behind door 3. "
                              "Show your card again to open the door.")
    screenshot(page, "4c-receipt-left-behind")
    show(**{**SESSION, "screen": "receipt", "seconds_left": 20, "reopen": False,
            "compartments": CLOSED_1_3, "left_behind": [3]})
    expect(left).to_have_text("You left something behind door 3. "
                              "The library staff will be told.")
    expect(page.get_by_test_id("help")).to_be_visible()          # and how to reach them
    show(**{**SESSION, "screen": "receipt", "seconds_left": 20, "reopen": False,
            "compartments": CLOSED_1_3, "left_behind": []})       # the sensor: empty now
    expect(left).to_be_hidden()
