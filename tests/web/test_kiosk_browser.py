"""The kiosk page in headless Chromium, against the whole simulated locker.

Cards go into the real pseudo-terminal the reader thread reads; relays are
gpiozero MockPins; doors are closed through /sim.  Every wait is one of
Playwright's auto-waiting expectations; nothing asserts a duration.

The second half drives the page from canned views published on a Board
behind the real Flask app, to show every message code in both languages.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bibbox.daemon.config_file import load as load_config
from bibbox.locker.domain.messages import KioskAction, PickupCodeEntered, PinEntered
from tests.browser import (Kiosk, browser, demo, kiosk, kiosk_page,  # noqa: F401
                           make_demo, screenshot)

expect = pytest.importorskip("playwright.sync_api").expect

KAREN, KAREN_PIN = "0101709999", "1234"      # holds in compartments 1 and 3
OLE, OLE_PIN = "BIB0004711", "4321"          # holds in compartments 2 and 5
METTE, METTE_PIN = "0202809998", "1111"      # blocked for fees
NEW, NEW_PIN = "BIB0000001", "2468"          # no holds
KAREN_TITLES = ["Kaffe og kage", "Havens fugle", "Kort over Danmark"]


def watch_relays(daemon):
    """Record each relay energise (compartment number) as the MockPin changes."""
    from bibbox.hal.simulator import _gpio_number
    sim = daemon.simulator
    fired, original = [], sim.factory.output_watcher

    def watcher(pin, value):
        number = sim.by_relay_pin.get(_gpio_number(pin))
        if number is not None and value == sim.relay_active_high:
            fired.append(number)
        original(pin, value)

    sim.factory.output_watcher = watcher
    return fired


def due_text(daemon, days=30, lang="da"):
    """The due date the local verifier gives a loan made now."""
    day = dt.datetime.fromtimestamp(daemon.clock.wall(), dt.timezone.utc).date() + \
        dt.timedelta(days=days)
    if lang == "da":
        return f"Afleveres senest {day:%d.%m.%Y}"
    return f"Due back by {day.day} {day:%B %Y}"


def expect_screen(kiosk, name):
    expect(kiosk.screen).to_have_attribute("data-screen", name)


def present(kiosk, card):
    kiosk.card(card)
    expect_screen(kiosk, "pin")


# ---------------------------------------------------------------- the pickup
def test_whole_pickup_on_the_touch_screen(kiosk):
    page, daemon = kiosk.page, kiosk.daemon
    fired = watch_relays(daemon)
    expect(page.locator("h1#title-idle")).to_have_text("Scan dit sundhedskort eller lånerkort")
    expect(page.locator("html")).to_have_attribute("lang", "da")
    expect(page.get_by_test_id("timer")).to_be_hidden()
    screenshot(page, "1-idle")

    present(kiosk, KAREN)
    expect(page.locator("#title-pin")).to_have_text("Indtast din pinkode")
    expect(page.get_by_test_id("timer")).to_be_visible()
    expect(page.get_by_test_id("countdown")).to_have_text(
        re.compile(r"Skærmen lukker om \d+ sekunder"))
    ok = page.get_by_test_id("key-ok")
    expect(ok).to_be_disabled()
    kiosk.tap_pin("12")
    expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "2")
    page.get_by_test_id("key-erase").click()
    kiosk.tap_pin("234")
    dots = page.get_by_test_id("pin-dots")
    expect(dots).to_have_attribute("data-count", "4")
    expect(dots.locator(".dot.filled")).to_have_count(4)
    expect(dots).to_have_attribute("aria-label", "4 af 4 cifre indtastet")
    expect(ok).to_be_enabled()
    screenshot(page, "2-pin")
    assert KAREN_PIN not in page.content()          # masked: only dots in the DOM
    ok.click()

    expect_screen(kiosk, "opening")
    doors = page.get_by_test_id("doors")
    expect(doors.locator("li")).to_have_count(2)
    expect(page.get_by_test_id("door-1")).to_have_attribute("data-status", "open")
    expect(page.get_by_test_id("door-3")).to_have_attribute("data-status", "open")
    expect(page.get_by_test_id("door-1")).to_have_text(re.compile("Låge 1 er åben"))
    expect(page.get_by_test_id("door-3")).to_have_text(re.compile("Låge 3 er åben"))
    expect(page.locator("#title-opening")).to_have_text("Dine låger åbnes")
    expect(page.get_by_test_id("close-prompt")).to_have_text(
        "Luk lågen, når du har taget dine materialer.")
    expect(page.get_by_test_id("countdown")).to_have_text(
        re.compile(r"^Luk lågen inden for \d+ sekunder$"))
    expect(page.get_by_test_id("extend")).to_be_hidden()      # no buttons while doors open
    expect(page.get_by_test_id("cancel")).to_be_hidden()
    expect(page.get_by_test_id("help")).to_be_hidden()        # no dead end here
    screenshot(page, "3-opening")
    assert sorted(fired) == [1, 3]                   # each coil pulsed exactly once
    state = kiosk.sim("/sim/state")
    assert state["doors"]["1"]["open"] and state["doors"]["3"]["open"]
    assert not state["doors"]["2"]["open"]

    kiosk.close_door(1)
    expect(page.get_by_test_id("door-1")).to_have_attribute("data-status", "closed")
    expect_screen(kiosk, "opening")                  # door 3 is still open
    kiosk.close_door(3)
    expect_screen(kiosk, "receipt")
    items = page.get_by_test_id("item")
    expect(items).to_have_count(3)
    for i, title in enumerate(KAREN_TITLES):
        expect(items.nth(i).locator(".item-title")).to_have_text(title)
        expect(items.nth(i).locator(".item-due")).to_have_text(due_text(daemon))
    expect(page.get_by_test_id("receipt-close")).to_be_hidden()   # every door is closed
    expect(page.get_by_test_id("cancel")).to_have_text("Færdig")
    screenshot(page, "4-receipt")
    assert kiosk.sim("/sim/state")["relays"] == {str(n): "off" for n in range(1, 7)}

    page.get_by_test_id("cancel").click()
    expect_screen(kiosk, "idle")


def test_small_screen_layout_fits(kiosk):
    """On an 800×480 panel every PIN key and the timer buttons are on screen."""
    page = kiosk.page
    page.set_viewport_size({"width": 800, "height": 480})
    present(kiosk, KAREN)
    kiosk.tap_pin("9999")
    page.get_by_test_id("key-ok").click()
    expect(page.get_by_test_id("pin-message")).to_be_visible()
    screenshot(page, "2-pin-800x480")
    for testid in ["key-1", "key-0", "key-ok", "key-erase", "extend", "cancel", "lang-da",
                   "lang-en", "lang-de", "lang-pl", "lang-uk", "lang-ar", "large-text"]:
        box = page.get_by_test_id(testid).bounding_box()
        assert box["width"] >= 64 and box["height"] >= 64, testid
        assert box["y"] >= 0 and box["y"] + box["height"] <= 480, testid
        assert box["x"] >= 0 and box["x"] + box["width"] <= 800, testid


# ---------------------------------------------------------------- wrong PINs
def test_wrong_pin_shows_tries_left_then_blocks_the_card(kiosk):
    page = kiosk.page
    present(kiosk, KAREN)
    message = page.get_by_test_id("pin-message")
    expect(message).to_be_hidden()
    for tries_left in (2, 1):
        kiosk.tap_pin("9999")
        page.get_by_test_id("key-ok").click()
        expect(message).to_have_text(f"Forkert pinkode. Du har {tries_left} forsøg tilbage.")
        expect_screen(kiosk, "pin")
        expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "0")
        expect(page.get_by_test_id("status")).to_have_text(re.compile("Forkert pinkode"))
    screenshot(page, "2-pin-wrong")
    kiosk.tap_pin("9999")
    page.get_by_test_id("key-ok").click()
    expect_screen(kiosk, "denied")
    expect(page.get_by_test_id("denied-title")).to_have_text("Spærret her i 15 minutter")
    expect(page.get_by_test_id("denied-help")).to_have_text(
        "For mange forkerte pinkoder. Dit kort virker stadig alle andre steder.")
    expect(page.get_by_test_id("timer")).to_be_visible()
    expect(page.get_by_test_id("extend")).to_be_hidden()
    expect(page.get_by_test_id("cancel")).to_have_text("OK")
    expect(page.get_by_test_id("help-phone")).to_have_text("Ring til biblioteket: 33 12 34 56")
    screenshot(page, "5-denied")
    assert kiosk.sim("/sim/state")["relays"] == {str(n): "off" for n in range(1, 7)}


def test_double_tapped_ok_sends_one_pin(kiosk):
    page, daemon = kiosk.page, kiosk.daemon
    pins_posted = []
    post = daemon.controller.post

    def counting_post(message):
        if isinstance(message, PinEntered):
            pins_posted.append("pin")      # count only: never keep a PIN
        return post(message)

    daemon.controller.post = counting_post  # the kiosk API looks it up per request
    fired = watch_relays(daemon)
    present(kiosk, KAREN)
    kiosk.tap_pin("9999")
    page.evaluate("() => { const ok = document.getElementById('key-ok');"
                  " ok.click(); ok.click(); ok.click(); }")
    expect(page.get_by_test_id("pin-message")).to_have_text(
        "Forkert pinkode. Du har 2 forsøg tilbage.")   # one failure counted, not three
    assert len(pins_posted) == 1
    kiosk.tap_pin(KAREN_PIN)
    page.get_by_test_id("key-ok").dblclick()
    expect_screen(kiosk, "opening")
    expect(page.get_by_test_id("door-3")).to_have_attribute("data-status", "open")
    assert len(pins_posted) == 2
    assert sorted(fired) == [1, 3]


# ---------------------------------------------------------------- keyboard alone
def test_keyboard_only_pickup(kiosk):
    page = kiosk.page
    present(kiosk, KAREN)
    expect(page.locator("#title-pin")).to_be_focused()
    page.keyboard.press("Tab")
    key1 = page.get_by_test_id("key-1")
    expect(key1).to_be_focused()
    outline = key1.evaluate("el => getComputedStyle(el).outlineStyle + ' ' + "
                            "getComputedStyle(el).outlineWidth")
    assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
    page.keyboard.press("Enter")                      # the focused key types its digit
    expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "1")
    page.keyboard.type("239")
    page.keyboard.press("Backspace")
    expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "3")
    page.keyboard.press("4")
    for _ in range(11):                               # keys 2-9, erase, 0, OK
        page.keyboard.press("Tab")
    expect(page.get_by_test_id("key-ok")).to_be_focused()
    page.keyboard.press("Shift+Tab")                  # on 0: a full PIN, so Enter submits
    expect(page.get_by_test_id("key-0")).to_be_focused()
    page.keyboard.press("Enter")
    expect_screen(kiosk, "opening")
    expect(page.get_by_test_id("door-3")).to_have_attribute("data-status", "open")
    kiosk.close_door(1)
    kiosk.close_door(3)
    expect_screen(kiosk, "receipt")
    expect(page.get_by_test_id("item")).to_have_count(3)
    expect(page.locator("#title-receipt")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("extend")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("cancel")).to_be_focused()
    page.keyboard.press("Enter")
    expect_screen(kiosk, "idle")


def test_typing_digits_and_enter_without_focus_on_the_pad(kiosk):
    page = kiosk.page
    present(kiosk, KAREN)
    page.keyboard.type(KAREN_PIN)
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")                      # a second Enter does nothing
    expect_screen(kiosk, "opening")
    page.keyboard.press("Escape")                     # no cancelling an opening
    expect(page.get_by_test_id("door-1")).to_have_attribute("data-status", "open")


# ---------------------------------------------------------------- language
def test_language_buttons(kiosk):
    page = kiosk.page
    english, danish = page.get_by_test_id("lang-en"), page.get_by_test_id("lang-da")
    expect(english).to_have_text("English")
    expect(english).to_have_attribute("lang", "en")
    expect(danish).to_have_attribute("aria-pressed", "true")
    english.click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#title-idle")).to_have_text("Scan your health card or library card")
    expect(english).to_have_attribute("aria-pressed", "true")
    expect(danish).to_have_attribute("aria-pressed", "false")
    expect(danish).to_have_text("Dansk")
    expect(danish).to_have_attribute("lang", "da")
    screenshot(page, "1-idle-en")
    present(kiosk, KAREN)
    expect(page.locator("#title-pin")).to_have_text("Enter your PIN")
    expect(page.get_by_test_id("key-erase")).to_have_text("Erase")
    expect(page.get_by_test_id("extend")).to_have_text("More time")
    expect(page.get_by_test_id("cancel")).to_have_text("Cancel")
    kiosk.tap_pin("0000")
    page.get_by_test_id("key-ok").click()
    expect(page.get_by_test_id("pin-message")).to_have_text("Wrong PIN. You have 2 tries left.")
    kiosk.tap_pin(KAREN_PIN)
    page.get_by_test_id("key-ok").click()
    expect(page.get_by_test_id("door-1")).to_have_text(re.compile("Door 1 is open"))
    expect(page.get_by_test_id("door-3")).to_have_text(re.compile("Door 3 is open"))
    kiosk.close_door(1)
    kiosk.close_door(3)
    expect_screen(kiosk, "receipt")
    expect(page.get_by_test_id("item").first.locator(".item-due")).to_have_text(
        due_text(kiosk.daemon, lang="en"))
    expect(page.get_by_test_id("receipt-reopen")).to_have_text(
        "Forgot something? Show your card again and the door opens again.")
    danish.click()                                    # back to Danish mid-session
    expect(page.get_by_test_id("receipt-reopen")).to_have_text(
        "Har du glemt noget? Vis dit kort igen, så åbnes lågen igen.")
    english.click()
    page.get_by_test_id("cancel").click()
    expect_screen(kiosk, "idle")
    # the next patron starts in the default language
    expect(page.locator("#title-idle")).to_have_text("Scan dit sundhedskort eller lånerkort")


def test_the_page_offers_every_catalogue(kiosk):
    """Every catalogue in web/static/i18n is a button, named in itself
    (tests/web/test_kiosk_catalogues.py checks the keys)."""
    languages = kiosk.page.evaluate("() => window.BIBBOX_I18N.languages")
    assert languages[:2] == ["da", "en"]
    assert set(languages) == {"da", "en", "de", "pl", "uk", "ar"}
    buttons = kiosk.page.get_by_test_id("languages").locator("button")
    expect(buttons).to_have_text(["Dansk", "English", "العربية", "Deutsch", "Polski",
                                  "Українська"])


# ---------------------------------------------------------------- countdown
def test_countdown_extend_and_timeout(make_demo, kiosk_page):
    """Server and page on fake clocks moved together: the countdown shows
    what the server will do, More time restores it, and at zero the locker
    returns to idle."""
    from bibbox.locker.domain.clock import FakeClock
    daemon = make_demo(clock=FakeClock())
    page = kiosk_page
    page.clock.install()
    kiosk = Kiosk(page, daemon).open()
    present(kiosk, KAREN)
    countdown = page.get_by_test_id("countdown")
    expect(countdown).to_have_attribute("data-seconds", "30")
    expect(countdown).to_have_text("Skærmen lukker om 30 sekunder")

    page.clock.run_for(12_000)
    daemon.clock.advance(12)
    expect(countdown).to_have_attribute("data-seconds", "18")
    page.get_by_test_id("extend").click()
    expect(countdown).to_have_attribute("data-seconds", "30")
    expect_screen(kiosk, "pin")

    page.clock.run_for(21_000)
    expect(countdown).to_have_attribute("data-seconds", "9")
    expect(countdown).to_have_class(re.compile(r"\bsoon\b"))
    expect(page.get_by_test_id("status")).to_have_text(re.compile(r"Kun \d+ sekunder tilbage"))
    page.clock.run_for(9_000)
    expect(countdown).to_have_attribute("data-seconds", "0")
    daemon.clock.advance(30)
    daemon.controller.wake()
    expect_screen(kiosk, "idle")
    expect(page.get_by_test_id("timer")).to_be_hidden()


# ---------------------------------------------------------------- denials
def test_denial_messages_from_the_locker(make_demo, kiosk_page):
    from bibbox.locker.domain.clock import FakeClock
    daemon = make_demo(clock=FakeClock())
    kiosk = Kiosk(kiosk_page, daemon).open()
    page = kiosk.page
    cases = [
        ("BIB9999999", "0000", "Kortet blev ikke genkendt", "Kontakt biblioteket"),
        (METTE, METTE_PIN, "Du kan ikke låne lige nu", "Biblioteket har spærret dit kort"),
        (NEW, NEW_PIN, "Der er intet til dig i skabet", "Du får besked"),
    ]
    for card, pin, title, help_start in cases:
        present(kiosk, card)
        kiosk.tap_pin(pin)
        page.get_by_test_id("key-ok").click()
        expect_screen(kiosk, "denied")
        expect(page.get_by_test_id("denied-title")).to_have_text(title)
        expect(page.get_by_test_id("denied-help")).to_have_text(re.compile("^" + help_start))
        page.get_by_test_id("cancel").click()
        expect_screen(kiosk, "idle")

    daemon.clock.advance(8 * 86400)                   # past every pickup deadline
    daemon.controller.wake()
    present(kiosk, OLE)
    kiosk.tap_pin(OLE_PIN)
    page.get_by_test_id("key-ok").click()
    expect(page.get_by_test_id("denied-title")).to_have_text("Afhentningsfristen er overskredet")
    assert kiosk.sim("/sim/state")["relays"] == {str(n): "off" for n in range(1, 7)}


def test_a_second_card_during_a_session_gets_a_notice(kiosk):
    page = kiosk.page
    present(kiosk, KAREN)
    kiosk.tap_pin("12")
    kiosk.card(OLE)
    expect(page.get_by_test_id("notice")).to_have_text(
        "Et andet kort er i gang. Tryk Afbryd for at starte forfra.")
    expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "2")
    page.get_by_test_id("cancel").click()
    expect_screen(kiosk, "idle")
    expect(page.get_by_test_id("notice")).to_be_hidden()


# ---------------------------------------------------------------- the /sim panel
def test_sim_panel_presents_cards_and_moves_doors(kiosk, browser):
    """The simulator's page drives the same locker the kiosk page shows."""
    page = kiosk.page
    panel = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        panel.goto(kiosk.base + "/sim")
        expect(panel.get_by_test_id("sim-doors").locator(".tile")).to_have_count(6)
        expect(panel.get_by_test_id("sim-patrons").locator("tr")).to_have_count(4)
        expect(panel.get_by_test_id("kiosk-link")).to_have_attribute("href", "/")
        panel.get_by_test_id("sim-present-0").click()            # Karen's card
        expect_screen(kiosk, "pin")
        kiosk.tap_pin(KAREN_PIN)
        page.get_by_test_id("key-ok").click()
        for n in (1, 3):
            expect(panel.get_by_test_id(f"sim-door-{n}")).to_have_attribute("data-open", "true")
        expect(panel.get_by_test_id("sim-door-2")).to_have_attribute("data-open", "false")
        screenshot(panel, "6-sim")
        panel.get_by_test_id("sim-close-1").click()
        panel.get_by_test_id("sim-close-3").click()
        expect_screen(kiosk, "receipt")
        panel.get_by_test_id("sim-jam-4").click()
        expect(panel.get_by_test_id("sim-door-4")).to_have_attribute("data-jammed", "true")
        panel.get_by_test_id("sim-open-4").click()               # jammed: stays shut
        expect(panel.get_by_test_id("sim-jam-4")).to_have_text("Unjam")
        door = kiosk.sim("/sim/state")["doors"]["4"]
        assert (door["open"], door["jammed"]) == (False, True)
        panel.get_by_test_id("sim-card").fill("BIB0000001")
        panel.get_by_test_id("sim-card-send").click()
        expect_screen(kiosk, "pin")            # a new card on the receipt: the next patron
    finally:
        panel.close()


# ---------------------------------------------------------------- canned views
class BoardOnly:
    """A controller stand-in: a real Board to publish views on, and a list
    of what the page posted."""

    def __init__(self):
        from bibbox.locker.app.controller import Board
        self.board, self.posted = Board(), []

    def post(self, message):
        self.posted.append(message)


@pytest.fixture
def canned(kiosk_page, tmp_path):
    """The real kiosk app (waitress, loopback) over a Board the test writes to.
    Yields ``(page, show)``; ``show(**view)`` publishes a view and waits
    until the page has rendered it."""
    from bibbox.locker.domain import config as config_mod
    from bibbox.daemon.cli import DEMO_CONFIG
    from bibbox.web.app import create_app
    from bibbox.web.serving import WebServer
    cfg = config_mod.replace(load_config(DEMO_CONFIG),
                             locker={"state_dir": str(tmp_path)})
    controller = BoardOnly()
    app = create_app(controller=controller, cfg=cfg, parts=("kiosk",))
    server = WebServer(app, "127.0.0.1", 0, threads=4)
    server.start()
    versions = iter(range(1, 10_000))

    def publish(**view):
        view = {"screen": "idle", "notice": "", "reader_online": True,
                "locker_name": "Test", "version": next(versions), **view}
        controller.board.publish("kiosk", view)
        return view

    def show(**view):
        view = publish(**view)
        expect(kiosk_page.locator("#screen")).to_have_attribute(
            "data-version", str(view["version"]))
        return view

    publish()
    kiosk_page.goto(f"http://127.0.0.1:{server.port}/")
    expect(kiosk_page.locator("#screen")).to_have_attribute("data-version", "1")
    yield kiosk_page, show, controller
    kiosk_page.close()
    controller.board.close()          # free long polls
    server.stop()


SESSION = {"message": "", "tries_left": None, "seconds_left": 12, "minutes_blocked": None,
           "compartments": [], "items": []}
DENIALS = {
    "card_blocked": ("Spærret her i 5 minutter", "Locked here for 5 minutes",
                     "Your card still works everywhere else"),
    "card_lost": ("Kortet er meldt mistet", "This card has been reported lost",
                  "contact the library for a new card"),
    "patron_blocked": ("Du kan ikke låne lige nu", "You cannot borrow right now",
                       "blocked your card, for example because of fees or a lost card"),
    "unknown_card": ("Kortet blev ikke genkendt", "Card not recognised", "contact the library"),
    "nothing_here": ("Der er intet til dig i skabet", "There is nothing for you in the locker",
                     "ready to collect"),
    "only_expired": ("Afhentningsfristen er overskredet", "The pickup deadline has passed",
                     "gone back to the library"),
    "service_unavailable": ("Vi kan ikke kontrollere dit kort lige nu",
                            "We cannot check your card right now", "try again"),
    "compartment_unavailable": ("Lågen kan ikke åbnes lige nu",
                                "The door cannot be opened right now", "contact the library"),
    "something_new": ("Det lykkedes ikke", "That did not work", "contact the library"),
}


def test_every_denial_code_has_a_clear_message(canned):
    page, show, _ = canned
    for code, (da_title, en_title, en_help) in DENIALS.items():
        show(**{**SESSION, "screen": "denied", "message": code, "minutes_blocked": 5})
        expect(page.get_by_test_id("denied-title")).to_have_text(da_title)
        expect(page.get_by_test_id("denied-help")).not_to_be_empty()
        expect(page.get_by_test_id("status")).to_contain_text(da_title)
        page.get_by_test_id("lang-en").click()
        expect(page.get_by_test_id("denied-title")).to_have_text(en_title)
        expect(page.get_by_test_id("denied-help")).to_contain_text(
            re.compile(re.escape(en_help), re.I))
        page.get_by_test_id("lang-da").click()
    expect(page.get_by_test_id("denied-help")).to_have_text("Kontakt biblioteket.")


def test_notices_banner_and_door_problems(canned):
    page, show, _ = canned
    for code, text in [("busy", "Vent et øjeblik – en låge er ved at åbne."),
                       ("card_unreadable", "Kortet kunne ikke læses. Prøv igen.")]:
        show(notice=code)
        expect(page.get_by_test_id("notice")).to_have_text(text)
    show(reader_online=False)
    expect(page.get_by_test_id("reader-offline")).to_have_text(
        "Kortlæseren virker ikke lige nu. Kontakt biblioteket.")
    expect(page.get_by_test_id("notice")).to_be_hidden()
    screenshot(page, "1-idle-reader-offline")
    show()
    expect(page.get_by_test_id("reader-offline")).to_be_hidden()

    show(**{**SESSION, "screen": "verifying", "seconds_left": 10})
    expect(page.locator("#title-verifying")).to_have_text("Et øjeblik …")
    expect(page.get_by_test_id("timer")).to_be_hidden()
    screenshot(page, "2b-verifying")
    doors = [{"number": 2, "status": "queued"}, {"number": 4, "status": "unlocked"},
             {"number": 5, "status": "jammed"}, {"number": 6, "status": "unavailable"}]
    show(**{**SESSION, "screen": "opening", "compartments": doors})
    expect(page.get_by_test_id("door-2")).to_have_text(re.compile("Låge 2 åbnes om lidt"))
    expect(page.get_by_test_id("door-4")).to_have_text(re.compile("Låge 4 er låst op"))
    expect(page.get_by_test_id("door-5")).to_have_text(re.compile(
        "Låge 5 kunne ikke åbnes. Dine materialer er stadig reserveret til dig."))
    expect(page.get_by_test_id("help-phone")).to_have_text("Ring til biblioteket: 33 12 34 56")
    expect(page.get_by_test_id("door-6")).to_have_text(re.compile("Låge 6 kan ikke åbnes"))
    screenshot(page, "3b-opening-problems")
    show(**{**SESSION, "screen": "receipt", "seconds_left": 45,
            "compartments": [{"number": 2, "status": "closed"}],
            "items": [{"barcode": "123", "title": "", "due": None},
                      {"barcode": "456", "title": "Med dato", "due": "2027-01-05"}]})
    items = page.get_by_test_id("item")
    expect(items.nth(0)).to_contain_text("123")
    expect(items.nth(0)).to_contain_text("Se afleveringsdatoen i din lånerkonto.")
    expect(items.nth(1)).to_contain_text("Afleveres senest 05.01.2027")


def test_pickup_code_screen_when_central_is_offline(canned):
    page, show, controller = canned
    show(**{**SESSION, "screen": "code", "message": "central_offline", "seconds_left": 30})
    expect(page.locator("#title-pin")).to_have_text("Indtast afhentningskoden")
    expect(page.get_by_test_id("pin-message")).to_have_text(re.compile(
        "^Vi kan ikke kontrollere pinkoden lige nu"))
    expect(page.get_by_test_id("timer")).to_be_visible()
    screenshot(page, "2c-code")
    for d in "7011":
        page.get_by_test_id(f"key-{d}").click()
    page.keyboard.type("ab9")                        # letters from a keyboard, upper-cased
    dots = page.get_by_test_id("pin-dots")
    expect(dots).to_have_attribute("data-count", "7")
    expect(dots.locator(".dot.filled")).to_have_count(7)
    page.keyboard.press("Backspace")
    with page.expect_response("**/api/kiosk/code") as answer:
        page.get_by_test_id("key-ok").click()
    assert answer.value.request.post_data_json == {"code": "7011AB"}
    assert controller.posted[-1] == PickupCodeEntered("7011AB")
    expect(dots).to_have_attribute("data-count", "0")
    show(**{**SESSION, "screen": "code", "message": "wrong_code", "tries_left": 2,
            "seconds_left": 30})
    expect(page.get_by_test_id("pin-message")).to_have_text(
        "Forkert kode. Du har 2 forsøg tilbage.")
    page.get_by_test_id("lang-en").click()
    expect(page.locator("#title-pin")).to_have_text("Enter your pickup code")
    expect(page.get_by_test_id("pin-message")).to_have_text("Wrong code. You have 2 tries left.")


def test_digits_typed_on_a_hardware_keypad_show_as_dots(canned):
    page, show, _ = canned
    show(**{**SESSION, "screen": "pin", "seconds_left": 30, "keypad_digits": 0})
    dots = page.get_by_test_id("pin-dots")
    expect(dots).to_have_attribute("data-count", "0")
    show(**{**SESSION, "screen": "pin", "seconds_left": 30, "keypad_digits": 3})
    expect(dots).to_have_attribute("data-count", "3")
    expect(dots.locator(".dot.filled")).to_have_count(3)
    expect(page.get_by_test_id("key-ok")).to_be_disabled()   # OK is the keypad's own


def test_buttons_post_the_right_requests(canned):
    page, show, controller = canned
    show(**{**SESSION, "screen": "pin", "seconds_left": 30})
    for press, action in [(lambda: page.get_by_test_id("extend").click(), "extend"),
                          (lambda: page.get_by_test_id("cancel").click(), "cancel"),
                          (lambda: page.keyboard.press("Escape"), "cancel")]:
        with page.expect_response("**/api/kiosk/action") as answer:
            press()
        assert answer.value.ok
        assert answer.value.request.post_data_json == {"action": action}
    with page.expect_response("**/api/kiosk/action") as answer:
        page.keyboard.type("5678")                  # typed in full: a hint, no digits
    assert answer.value.request.post_data_json == {"action": "pin_typed"}
    with page.expect_response("**/api/kiosk/pin") as answer:
        page.get_by_test_id("key-ok").click()
    request = answer.value.request
    assert request.method == "POST" and request.url.endswith("/api/kiosk/pin")
    assert request.post_data_json == {"pin": "5678"}
    expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "0")
    expect(page.get_by_test_id("key-ok")).to_be_disabled()
    assert "5678" not in page.content()
    stored = page.evaluate("() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)"
                           " + document.cookie + location.href")
    assert "5678" not in stored
    assert controller.posted == [KioskAction("extend"), KioskAction("cancel"),
                                 KioskAction("cancel"), KioskAction("pin_typed"),
                                 PinEntered("5678")]
    show(**{**SESSION, "screen": "verifying"})       # the answer re-enables nothing yet
    show(**{**SESSION, "screen": "pin", "message": "wrong_pin", "tries_left": 1,
            "seconds_left": 30})
    expect(page.get_by_test_id("pin-message")).to_have_text(
        "Forkert pinkode. Du har 1 forsøg tilbage.")
    page.keyboard.type("1")
    expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "1")
