"""``bibbox demo --ils sip2|fbs`` end to end with the real Daemon: the
embedded test library system started on loopback, an item loaded by
scanning it alone (the library system names the hold's patron), the door
played by the simulator, the patron's card and PIN, the door, and the loan
made in the test library system's own record of checkouts.  Then the
daemon stops with every thread it started."""

import json
import shutil

import pytest

from bibbox.daemon.cli import build_parser
from tests.domain_helpers import wait_until
from tests.library.demo_flow import daemon_threads
from tests.library.demo_flow import (BIRTHE, BIRTHE_PIN, JENS, JENS_PIN, SOREN, SOREN_ITEM,
                                     SOREN_PIN, Http, collect, deny, load_by_item,
                                     start_demo)

ILS = ["sip2", pytest.param("fbs", marks=pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the FBS demo needs openssl"))]


@pytest.mark.parametrize("ils", ILS)
def test_demo_against_the_test_library_system_end_to_end(tmp_path, ils):
    before = daemon_threads()
    daemon = start_demo(tmp_path / "state", ils)
    try:
        library = daemon.test_library.library
        assert daemon.cfg.verifier.kind == ils
        assert daemon.cfg.library.tls is (ils == "fbs")
        web = Http(daemon.port)
        # /sim lists the test library's patrons and items
        status, listing = web.get("/sim/library")
        assert status == 200
        soren = next(p for p in listing["patrons"] if p["card"] == SOREN)
        assert soren["pin"] == SOREN_PIN and soren["status"] == "ok"
        assert {"barcode": SOREN_ITEM, "title": "Fyrtårnets vogter",
                "hold": "Søren Østergaard"} in listing["items"]
        assert any(p["status"] == "card reported lost" for p in listing["patrons"])
        # staff load by scanning the item alone
        web.staff_login()
        hold_id, n = load_by_item(web, SOREN_ITEM)
        assert (SOREN_ITEM, "BIBBOKS1") in library.checkins
        # the library's own denials, with its patrons
        assert deny(web, BIRTHE, BIRTHE_PIN)["message"] == "card_lost"   # its own message
        assert deny(web, JENS, JENS_PIN)["message"] == "patron_blocked"
        denied = [json.loads(r["payload"]) for r in daemon.store.outbox_batch(limit=1000)
                  if r["type"] == "pickup.denied"]
        assert [d.get("detail") for d in denied] == ["lost_card", "fees"]
        # the patron collects with the CPR-shaped card, read with a dash
        receipt = collect(web, SOREN[:6] + "-" + SOREN[6:], [SOREN_PIN], [n])
        assert receipt["screen"] == "receipt"
        wait_until(lambda: library.checkouts, what="the loan in the library system")
        (item, patron, no_block, _date), = library.checkouts
        assert (item, patron, no_block) == (SOREN_ITEM, SOREN, False)
        assert library.loans == {SOREN_ITEM: SOREN}
        wait_until(lambda: daemon.store.loans_waiting() == 0, what="the loan queue drained")
    finally:
        daemon.stop()
    try:
        wait_until(lambda: daemon_threads() <= before, timeout=15,
                   what="every thread of the daemon and its test library stopped")
    except AssertionError:
        raise AssertionError(f"left running: {daemon_threads() - before}") from None


def test_demo_parser_takes_ils():
    args = build_parser().parse_args(["demo", "--ils", "fbs"])
    assert args.ils == "fbs"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--ils", "koha"])
