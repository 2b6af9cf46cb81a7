"""No card number and no PIN leaves the patron's hands.

Whole pickups on the demo locker in headless Chromium (right PIN, a wrong
PIN then the right one, an unknown CPR-shaped card, a blocked patron), with
every logger at DEBUG.  Then every trace they left is scanned for the card
numbers and PINs used: each log record (message, arguments, extras,
tracebacks), the process's stdout/stderr, every file in the state
directory (bibbox.db and its -wal/-shm included), every kiosk response the
browser received (HTML, JS, JSON; /sim is excluded by design: it shows the
made-up demo patrons), every URL the page requested, the final DOM and the
browser's storage.

A PIN is four digits, which turn up by chance inside timestamps and hex
ids, so PINs are searched as whole tokens (not next to a letter or digit);
card numbers are searched anywhere, also in their CPR form with a dash.
Unsalted hashes of either (a PIN's is brute-forced at once) must not
appear either.
"""

from __future__ import annotations

import hashlib
import logging

import pytest

from bibbox.locker.domain.messages import PinEntered
from tests.browser import Kiosk
from tests.privacy_needles import Needles, Scan, log_text

expect = pytest.importorskip("playwright.sync_api").expect

KAREN, KAREN_PIN = "0101709999", "1234"
OLE, OLE_PIN = "BIB0004711", "4321"
METTE, METTE_PIN = "0202809998", "1111"
STRANGER, STRANGER_PIN = "0311659995", "5820"     # CPR-shaped, not a patron
WRONG_PIN = "9073"

CARDS = [KAREN, OLE, METTE, STRANGER]
PINS = [KAREN_PIN, OLE_PIN, METTE_PIN, STRANGER_PIN, WRONG_PIN]


NEEDLES = Needles(CARDS, PINS)
leaks = NEEDLES.leaks


def test_the_scanner_finds_what_it_looks_for():
    assert leaks(f"card {KAREN} read") == [f"card {KAREN}"]
    assert leaks("cpr 010170-9999") == [f"card {KAREN}"]
    assert leaks('{"pin": "9073"}') == ["PIN 9073"]
    assert leaks(hashlib.sha256(b"1234").hexdigest()) == ["sha256(1234)"]
    assert leaks("t=1780001234.5 id=a1234b 12345") == []     # not a PIN token
    assert leaks("ts 1764491234.1234, id 2a38dbef-1234-4321-8443-0c1d2e3f4a5b") == []
    assert leaks("pin 1234.") == ["PIN 1234"]


def pickup(kiosk, card, pins, *, opens=(), denial=None):
    """Present ``card``, type each PIN of ``pins`` on the pad, then either
    take the items out of ``opens`` and finish on the receipt, or expect the
    ``denial`` screen.  Ends on the idle screen."""
    page = kiosk.page
    kiosk.card(card)
    expect(kiosk.screen).to_have_attribute("data-screen", "pin")
    for pin in pins:
        kiosk.tap_pin(pin)
        page.get_by_test_id("key-ok").click()
        expect(page.get_by_test_id("pin-dots")).to_have_attribute("data-count", "0")
        expect(kiosk.screen).not_to_have_attribute("data-screen", "verifying")
        if pin == WRONG_PIN:
            expect(page.get_by_test_id("pin-message")).to_contain_text("Forkert pinkode")
    if denial:
        expect(kiosk.screen).to_have_attribute("data-screen", "denied")
        expect(page.get_by_test_id("denied-title")).to_have_text(denial)
    else:
        for number in opens:
            expect(page.get_by_test_id(f"door-{number}")).to_have_attribute(
                "data-status", "open")
        for number in opens:
            kiosk.close_door(number)
        expect(kiosk.screen).to_have_attribute("data-screen", "receipt")
    page.get_by_test_id("cancel").click()
    expect(kiosk.screen).to_have_attribute("data-screen", "idle")


def test_no_card_number_or_pin_in_logs_database_or_kiosk_traffic(
        make_demo, kiosk_page, caplog, capfd, tmp_path):
    caplog.set_level(logging.DEBUG)                      # root and every logger
    daemon = make_demo(state_dir=tmp_path / "state")
    kiosk = Kiosk(kiosk_page, daemon)
    requested = []
    kiosk_page.on("request", lambda request: requested.append(request.url))
    kiosk.open()
    doms = []

    pickup(kiosk, KAREN, [KAREN_PIN], opens=(1, 3))
    doms.append(kiosk_page.content())
    pickup(kiosk, OLE, [WRONG_PIN, OLE_PIN], opens=(2, 5))
    doms.append(kiosk_page.content())
    pickup(kiosk, STRANGER, [STRANGER_PIN], denial="Kortet blev ikke genkendt")
    doms.append(kiosk_page.content())
    pickup(kiosk, METTE, [METTE_PIN], denial="Du kan ikke låne lige nu")
    doms.append(kiosk_page.content())
    storage = kiosk_page.evaluate(
        "() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie")
    # the pickups really happened and were recorded
    state = kiosk.sim("/sim/state")
    assert not any(d["open"] for d in state["doors"].values())
    assert any("collected" in r.getMessage() for r in caplog.records)
    kiosk_page.close()

    scan = Scan(NEEDLES)
    assert caplog.records, "no log records captured"
    debug_seen = False
    for i, record in enumerate(caplog.records):
        debug_seen |= record.levelno == logging.DEBUG
        scan(f"log record {i} ({record.name})", log_text(record))
    assert debug_seen, "DEBUG records were not captured"
    out, err = capfd.readouterr()
    scan("stdout", out)
    scan("stderr", err)

    files = sorted(p for p in (tmp_path / "state").rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert "bibbox.db" in names
    for path in files:
        scan(f"file {path.name}", path.read_bytes())

    kiosk_responses = [r for r in kiosk.responses if "/sim" not in r["url"]]
    assert any(r["url"].endswith("/api/kiosk") or "/api/kiosk?" in r["url"]
               for r in kiosk_responses)
    assert any("text/html" in r["type"] for r in kiosk_responses)
    for r in kiosk_responses:
        scan(f"response {r['url']}", r["body"])
    for url in requested:
        scan(f"request URL {url}", url)
    for i, dom in enumerate(doms):
        scan(f"DOM after pickup {i + 1}", dom)
    scan("browser storage", storage)

    assert scan.found == {}


def test_the_wal_was_scanned_while_it_held_data(make_demo, tmp_path):
    """The WAL is where fresh rows sit before a checkpoint: make sure the
    scan above looks at a WAL that has content, not an empty file."""
    daemon = make_demo(state_dir=tmp_path / "state")
    daemon.simulator.write_card(f"{KAREN}\r".encode())
    board = daemon.controller.board
    view = board.wait_newer("kiosk", board.get("kiosk")["version"], timeout=5)
    assert view["screen"] == "pin"
    daemon.controller.post(PinEntered(KAREN_PIN))
    for _ in range(50):
        if view["screen"] not in ("pin", "verifying"):
            break
        view = board.wait_newer("kiosk", view["version"], timeout=5)
    assert view["screen"] == "opening"
    wal = tmp_path / "state" / "bibbox.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    for path in (tmp_path / "state").iterdir():
        if path.is_file():
            assert leaks(path.read_bytes()) == [], path.name
