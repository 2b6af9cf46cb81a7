"""The staff overview of a 200-door locker in headless Chromium (issue 11,
item 6): filters (all, free, ready, alarms, out of service) with their
counts and a search by compartment number, pickup number or hold id, on a
phone (390x844: the filters and the search on the first screen, compact
tiles, nothing wider than the screen) and on a desktop (1280x800: the
cabinet's front of 20 columns, the filter leaving empty places), in Danish
and English, with axe-core at WCAG 2.1 AA.  The choice outlives the live
updates and keeps the place on the page.  Every wait is for a condition."""

from __future__ import annotations

import pytest

from tests.browser import browser, screenshot  # noqa: F401
from tests.domain_helpers import wait_until
from tests.lockers import demo_locker, place_ready_hold
from tests.web.axe import check

expect = pytest.importorskip("playwright.sync_api").expect

PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
NEW = "BIB0000001"            # the demo's "Ny Låner": no holds of its own
FILTERS = ("all", "free", "ready", "alarms", "oos")
# 200 doors: the demo's four ready holds (1, 2, 3, 5) and two more (150, 199),
# two out of service (42, 180), two forced open (77, 120: free, with an alarm)
COUNTS = {"all": 200, "free": 192, "ready": 6, "alarms": 2, "oos": 2}
WORDS = {
    "da": {"all": "Alle", "free": "Ledige", "ready": "Klar", "alarms": "Alarmer",
           "oos": "Ude af drift", "every": "Viser alle 200 rum.",
           "shown": "Viser {n} af 200 rum.",
           "elsewhere": "»4711« er ikke under »Alarmer«. Vælg »Alle« for at se det.",
           "none": "Intet rum passer til »999«.", "search": "Søg rum eller afhentningsnummer"},
    "en": {"all": "All", "free": "Free", "ready": "Ready", "alarms": "Alarms",
           "oos": "Out of service", "every": "Showing all 200 compartments.",
           "shown": "Showing {n} of 200 compartments.",
           "elsewhere": "“4711” is not under “Alarms”. Choose “All” to see it.",
           "none": "No compartment matches “999”.",
           "search": "Search compartment or pickup number"},
}


def forced(daemon):
    state = daemon.controller.board.get("state") or {}
    return {a["compartment"] for a in state.get("alarms", []) if a["alarm"] == "door_forced"}


@pytest.fixture
def locker(tmp_path):
    from bibbox.daemon.bootstrap import open_staff_accounts
    daemon = demo_locker(tmp_path, 200, rows=10, timeout_s=0.5)
    try:
        open_staff_accounts(daemon.cfg.locker.state_dir).add("anna", PASSWORD, "admin")
        place_ready_hold(daemon, "B-150", NEW, 150, pickup="8150")
        place_ready_hold(daemon, "B-199", NEW, 199, pickup="4711")
        for n in (42, 180):
            daemon.controller.call(lambda locker, n=n: locker.set_out_of_service(
                n, "Hængslet driller", "test"))
        for n in (77, 120):
            daemon.simulator.set_door(n, True)          # opened with no command
        wait_until(lambda: forced(daemon) == {77, 120}, what="the two forced-door alarms")
        yield daemon
    finally:
        daemon.stop()


class Overview:
    """One logged-in browser page on the overview."""

    def __init__(self, browser, daemon, viewport, lang):  # noqa: F811
        self.base = f"http://127.0.0.1:{daemon.port}"
        self.context = browser.new_context(viewport=viewport, locale="da-DK",
                                           service_workers="block")
        self.context.add_cookies([{"name": "bibbox-lang", "value": lang, "url": self.base}])
        self.page = page = self.context.new_page()
        self.errors = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.goto(self.base + "/staff/login")
        page.fill("#name", "anna")
        page.fill("#password", PASSWORD)
        page.press("#password", "Enter")
        expect(page).to_have_url(self.base + "/staff/")
        self.words = WORDS[lang]
        expect(self.status).to_have_text(self.words["every"])

    def button(self, key):
        return self.page.get_by_test_id(f"filter-{key}")

    def tile(self, n):
        return self.page.get_by_test_id(f"tile-{n}")

    def box(self, n):
        """Tile ``n``'s box once laid out (a tile the live view is drawing
        again has none for a moment)."""
        expect(self.tile(n)).to_be_visible()
        return wait_until(lambda: self.tile(n).bounding_box(), 5, what=f"tile {n} laid out")

    @property
    def shown(self):
        return self.page.locator("#tiles > li:not(.out)")

    @property
    def status(self):
        return self.page.get_by_test_id("finder-status")

    @property
    def search(self):
        return self.page.get_by_role("searchbox", name=self.words["search"])

    def expect_counts(self, counts):
        for key, n in counts.items():
            expect(self.button(key)).to_have_accessible_name(f"{self.words[key]} ({n})")

    def expect_pressed(self, chosen):
        for key in FILTERS:
            expect(self.button(key)).to_have_attribute("aria-pressed", str(key == chosen).lower())

    def close(self):
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def opened(browser, locker):  # noqa: F811
    pages = []

    def open_(viewport, lang="da"):
        pages.append(Overview(browser, locker, viewport, lang))
        return pages[-1]
    yield open_
    for page in pages:
        page.close()


def suffix(lang):
    return "" if lang == "da" else "-" + lang


@pytest.mark.parametrize("lang", ["da", "en"])
def test_on_a_phone_the_filters_and_the_search_come_first(opened, lang):
    view = opened(PHONE, lang)
    page, words = view.page, view.words
    view.expect_counts(COUNTS)
    view.expect_pressed("all")
    # the first screen: every filter and the search, above the tiles
    for target in [view.button(key) for key in FILTERS] + [view.search]:
        box = target.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    search_box = view.search.bounding_box()
    assert view.box(1)["y"] > search_box["y"] + search_box["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    tile = view.box(4)                                  # compact: three a row
    assert tile["width"] < PHONE["width"] / 3 and tile["height"] < 140, tile
    check(page, f"the 200-door overview on a phone ({lang})")
    screenshot(page, "staff-overview-200-phone" + suffix(lang))

    view.button("alarms").click()                       # only the two forced doors
    view.expect_pressed("alarms")
    expect(view.shown).to_have_count(2)
    expect(view.tile(77)).to_be_visible()
    expect(view.tile(120)).to_be_visible()
    expect(view.tile(1)).to_be_hidden()
    expect(view.status).to_have_text(words["shown"].format(n=2))
    check(page, f"the overview filtered to alarms ({lang})")
    screenshot(page, "staff-overview-200-phone-alarms" + suffix(lang))

    view.search.fill("4711")                            # a pickup number, not under alarms
    expect(view.shown).to_have_count(0)
    expect(view.status).to_have_text(words["elsewhere"])
    view.button("all").click()
    expect(view.shown).to_have_count(1)
    expect(view.tile(199)).to_be_visible()
    expect(view.status).to_have_text(words["shown"].format(n=1))

    view.search.fill("999")
    expect(view.status).to_have_text(words["none"])
    view.search.fill("b-150")                           # a hold id, any case
    expect(view.shown).to_have_count(1)
    expect(view.tile(150)).to_be_visible()
    view.search.fill("150")                             # a compartment, and Enter goes there
    view.search.press("Enter")
    expect(view.tile(150)).to_be_focused()
    expect(view.shown).to_have_count(1)
    screenshot(page, "staff-overview-200-phone-search" + suffix(lang))
    view.search.fill("")
    expect(view.shown).to_have_count(200)
    expect(view.status).to_have_text(words["every"])


def test_the_choice_outlives_live_updates_and_keeps_the_place(opened, locker):
    view = opened(PHONE)
    page = view.page
    view.button("free").click()
    expect(view.shown).to_have_count(COUNTS["free"])
    view.tile(160).scroll_into_view_if_needed()
    top = page.evaluate("window.scrollY")
    assert top > 2000, top                              # far down the list
    # another member of staff loads compartment 10, above: it leaves "free"
    place_ready_hold(locker, "B-10", NEW, 10, pickup="1010")
    view.expect_counts({"free": COUNTS["free"] - 1, "ready": COUNTS["ready"] + 1})
    expect(view.tile(10)).to_be_hidden()
    expect(view.shown).to_have_count(COUNTS["free"] - 1)
    view.expect_pressed("free")
    box = view.box(160)                                 # still in sight, no jump to the top
    assert 0 <= box["y"] <= PHONE["height"] - box["height"], box
    # a door forced open is counted at once; the choice stays
    locker.simulator.set_door(33, True)
    view.expect_counts({"alarms": COUNTS["alarms"] + 1})
    expect(view.tile(33)).to_contain_text("uden kommando")
    view.expect_pressed("free")
    # a tile that stops matching stays while it has the focus, and goes after
    view.search.fill("")
    view.tile(4).focus()
    place_ready_hold(locker, "B-4", NEW, 4, pickup="1004")
    expect(view.tile(4)).to_contain_text("Klar")
    expect(view.tile(4)).to_be_focused()
    view.search.focus()
    expect(view.tile(4)).to_be_hidden()
    page.reload()                                       # kept for the tab
    view.expect_pressed("free")
    expect(view.tile(4)).to_be_hidden()


@pytest.mark.parametrize("lang", ["da", "en"])
def test_on_a_desktop_the_front_keeps_its_shape_when_filtered(opened, lang):
    view = opened(DESKTOP, lang)
    page, words = view.page, view.words
    boxes = {n: view.box(n) for n in (1, 2, 11, 4, 150, 191, 200)}
    assert boxes[11]["x"] > boxes[1]["x"] and boxes[11]["y"] == boxes[1]["y"]   # column 2
    assert boxes[2]["x"] == boxes[1]["x"] and boxes[2]["y"] > boxes[1]["y"]     # row 2
    assert boxes[191]["x"] + boxes[191]["width"] <= DESKTOP["width"]          # column 20
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    assert boxes[200]["y"] + boxes[200]["height"] < 1300                       # compact
    check(page, f"the 200-door front ({lang})")
    screenshot(page, "staff-overview-200-desktop" + suffix(lang))

    view.button("ready").focus()                        # by keyboard
    page.keyboard.press("Space")
    view.expect_pressed("ready")
    expect(view.shown).to_have_count(COUNTS["ready"])
    expect(view.status).to_have_text(words["shown"].format(n=COUNTS["ready"]))
    expect(view.tile(4)).to_be_hidden()
    gap = page.locator('#tiles > li[data-n="4"]')       # its place stays, empty
    assert gap.bounding_box()["y"] == boxes[4]["y"]
    assert gap.get_attribute("aria-hidden") == "true"
    assert view.box(150) == boxes[150]                 # the others do not move
    check(page, f"the front filtered to ready ({lang})")
    screenshot(page, "staff-overview-200-desktop-ready" + suffix(lang))
    view.tile(150).click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-title")).to_contain_text("150")
