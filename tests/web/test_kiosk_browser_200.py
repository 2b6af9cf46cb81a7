"""The kiosk of a 200-door locker in headless Chromium (issue 11, item 6): a
patron with holds in compartments 150 and 199 sees both doors, numbered, in
the cabinet's front (20 columns of 10), beside the list of doors, on the
7" panel (1024x600) and on a small one (800x480), nothing cut off or
hidden under the timer bar, and axe finds nothing at WCAG 2.1 AA."""

from __future__ import annotations

import pytest

from tests.browser import Kiosk, browser, kiosk_page, screenshot  # noqa: F401
from tests.lockers import demo_locker, place_ready_hold
from tests.web.axe import check
from tests.web.test_front_view_browser import box
from tests.web.test_kiosk_browser import expect_screen, present

expect = pytest.importorskip("playwright.sync_api").expect

NEW, NEW_PIN = "BIB0000001", "2468"     # the demo's "Ny Låner": no demo holds


@pytest.fixture
def locker(tmp_path):
    daemon = demo_locker(tmp_path, 200, rows=10, timeout_s=0.5)
    try:
        place_ready_hold(daemon, "B-150", NEW, 150, pickup="8150")
        place_ready_hold(daemon, "B-199", NEW, 199, pickup="4711")
        yield daemon
    finally:
        daemon.stop()


def middles(page, numbers):
    """The middles of the front cells of ``numbers``, all from one layout:
    the view re-renders as the doors change, so boxes taken one by one may
    come from two layouts."""
    found = page.evaluate("""(ns) => ns.map(n => {
        const r = document.querySelector(`[data-testid="front-${n}"]`).getBoundingClientRect();
        return [r.left + r.width / 2, r.top + r.height / 2];
    })""", list(numbers))
    return dict(zip(numbers, found))


def seen(page, test_id):
    """Is the middle of the element on screen and not under anything else?"""
    return page.evaluate("""(id) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        const r = el.getBoundingClientRect();
        const x = r.left + r.width / 2, y = r.top + r.height / 2;
        if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return false;
        const top = document.elementFromPoint(x, y);
        return top === el || el.contains(top);
    }""", test_id)


@pytest.mark.parametrize("size", [{"width": 1024, "height": 600}, {"width": 800, "height": 480}],
                         ids=["7-inch", "800x480"])
def test_the_patron_finds_doors_150_and_199_in_the_front(locker, kiosk_page, size):
    page = kiosk_page
    page.set_viewport_size(size)
    kiosk = Kiosk(page, locker).open()
    present(kiosk, NEW)
    kiosk.tap_pin(NEW_PIN)
    page.get_by_test_id("key-ok").click()
    expect_screen(kiosk, "opening")
    expect(page.get_by_test_id("door-150")).to_contain_text("150")
    expect(page.get_by_test_id("door-199")).to_contain_text("199")
    front = page.get_by_test_id("front")
    expect(front).to_be_visible()
    expect(front.locator(".front-door")).to_have_count(200)
    mine = front.locator('[data-mine="true"]')
    expect(mine).to_have_text(["150", "199"])
    box(page, "front-199")                                    # laid out
    cells = middles(page, (1, 10, 150, 191, 199))
    assert cells[150][0] > cells[1][0] and cells[150][1] == pytest.approx(cells[10][1], abs=1)
    assert cells[199][0] == pytest.approx(cells[191][0], abs=1)    # column 20
    assert cells[191][1] < cells[199][1] < cells[150][1]            # row 9, above row 10
    for test_id in ("front-150", "front-199", "door-150", "door-199", "front-1", "front-200"):
        assert seen(page, test_id), f"{test_id} is off screen or covered at {size}"
    for badge in page.locator("#doors .door-no").all():      # three digits fit their badge
        assert badge.evaluate("b => b.scrollWidth <= b.clientWidth"), badge.text_content()
    check(page, f"the kiosk's opening screen at 200 doors ({size['width']}x{size['height']})")
    screenshot(page, f"kiosk-front-200-{size['width']}x{size['height']}")
