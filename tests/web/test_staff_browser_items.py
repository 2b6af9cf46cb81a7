"""The staff page with item sensors, in headless Chromium, against the
48-door demo on simulated KR-CU16 boards with their IR sensors on: a
loading closed on an empty compartment is not ready and the page says so
and offers the same door again; an item where nothing belongs shows its
alarm on the overview.  The grace window passes on the injected clock."""

import pytest

from bibbox.locker.domain.clock import FakeClock
from tests.domain_helpers import wait_until
from tests.system.test_item_sensors_e2e import demo_48_with_item_sensors
from tests.web.test_staff_browser import ITEMS, KAREN, PASSWORD, Shift, in_browser

GRACE = 0.5        # as demo_48_with_item_sensors sets it; the clock is injected


@pytest.fixture
def sensing_locker(tmp_path):
    from bibbox.daemon.bootstrap import open_staff_accounts
    from bibbox.daemon.cli import demo_daemon
    config = demo_48_with_item_sensors(tmp_path)
    daemon = demo_daemon(tmp_path / "state", port=0, clock=FakeClock(), config=str(config))
    daemon.start()
    open_staff_accounts(daemon.cfg.locker.state_dir).add("anna", PASSWORD, "admin")
    yield daemon
    daemon.stop()


def test_a_loading_the_sensor_does_not_confirm_and_a_stray_item(sensing_locker):
    def scenario(chromium):
        context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                       locale="da-DK", service_workers="block")
        context.set_default_timeout(10_000)
        try:
            load_into_an_empty_door(Shift(context.new_page(), sensing_locker))
        finally:
            context.close()
    in_browser(scenario)


def close_when_seen_open(shift, n):
    """Close door ``n`` once the locker has seen it open (a board is polled:
    a door opened and shut between two polls is never seen open)."""
    wait_until(lambda: shift.call(lambda l: n in l.openings and l.openings[n].seen_open),
               what=f"door {n} seen open")
    shift.sim(f"/sim/doors/{n}", {"open": False})


def load_into_an_empty_door(shift):
    from playwright.sync_api import expect
    page, base, sim = shift.page, shift.base, shift.daemon.simulator
    page.goto(base + "/staff/load")
    page.fill("#name", "anna")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    expect(page).to_have_url(base + "/staff/load")
    shift.scan("#item", ITEMS[0])
    page.locator("#item").press("Enter")
    shift.scan("#card", KAREN)
    open_btn = page.locator("#open-btn")
    expect(open_btn).to_be_focused()
    n = int(open_btn.get_attribute("data-n"))
    open_btn.press("Enter")
    pending = page.locator("#pending li").first
    expect(pending).to_have_attribute("data-state", "loading")
    hold = pending.get_attribute("data-hold")
    close_when_seen_open(shift, n)                       # nothing was put in
    expect(pending).to_contain_text("tjekker at materialerne ligger i")
    shift.advance(GRACE + 0.5)
    expect(pending).to_have_attribute("data-state", "announced")
    expect(pending).to_contain_text(f"Sensoren ser intet i rum {n}")
    retry = page.get_by_test_id(f"retry-{hold}")
    expect(retry).to_have_text(f"Læg i rum {n} igen")    # the same door, this time with it
    retry.click()
    expect(pending).to_have_attribute("data-state", "loading")
    wait_until(lambda: shift.door_open(n), what=f"door {n} open again")
    shift.sim(f"/sim/doors/{n}/item", {"present": True})
    wait_until(lambda: shift.call(lambda l: l.items_present.get(n)), what="the item seen")
    close_when_seen_open(shift, n)
    expect(pending).to_have_attribute("data-state", "ready")

    # -- an item where nothing belongs --------------------------------------------------
    sim.set_item(40, True)
    wait_until(lambda: shift.call(lambda l: l.items_present.get(40)), what="the stray item")
    shift.advance(GRACE + 0.5)
    page.get_by_role("link", name="Oversigt").click()
    expect(page.get_by_test_id("tile-40")).to_contain_text("skulle være tomt")
