"""No card number and no PIN leaves the patron's hands -- with a library
system (issue 10, item 9).

Whole runs of ``bibbox demo --ils sip2`` and ``--ils fbs`` (the real
Daemon against the embedded test library system), every logger at DEBUG:
staff load by item, two patrons the library system blocks, a wrong PIN
then the right one, two pickups, the loans made.  Then every trace is
scanned for the card numbers and PINs used, in every form (plain, lower
case, a CPR with a dash or a space, FBS's ``LN:``): each log record, the
process's stdout/stderr, every file of the state directory (the database
and its WAL), the outbox (what MQTT would carry) and every page and API
answer the daemon served (``/sim`` excluded by design: it shows the made-up
patrons).  A reply that does not parse is logged -- redacted, never whole.
And card numbers and PINs go to the library system only inside TLS or over
a network the configuration marks as trusted.
"""

from __future__ import annotations

import logging
import shutil

import pytest

from bibbox.daemon.cli import main
from bibbox.library import fbs as fbs_dialect
from bibbox.library.client import LibraryClient
from bibbox.library.sip2 import ReplyError
from bibbox.library.transport import InsecureTransport, SipTransport
from tests.library.acs import RawServer
from tests.privacy_needles import Needles, Scan, log_text
from tests.library.demo_flow import (BIRTHE, BIRTHE_PIN, JENS, JENS_PIN, METTE, METTE_ITEMS,
                                     METTE_PIN, SOREN, SOREN_ITEM, SOREN_PIN, WRONG_PIN, Http,
                                     collect, deny, load_by_item, start_demo)
from tests.domain_helpers import wait_until
from tests.fault_helpers import sim_config_text

CARDS = [SOREN, METTE, BIRTHE, JENS]
PINS = [SOREN_PIN, METTE_PIN, BIRTHE_PIN, JENS_PIN, WRONG_PIN]
NAMES = ["Søren Østergaard", "Mette Kjærgaard"]       # the library's AE: not logged either
PAGES = ["/", "/api/kiosk", "/staff/", "/staff/api/state", "/staff/api/announced",
         "/staff/api/unload", "/staff/api/me", "/staff/audit", "/staff/api/audit",
         "/staff/alarms", "/staff/admin", "/static/kiosk.js", "/status", "/api/status"]


NEEDLES = Needles(CARDS, PINS)
leaks = NEEDLES.leaks


def test_the_scanner_finds_every_form():
    assert leaks(f"x {SOREN[:6]} {SOREN[6:]} y") == [f"card {SOREN}"]
    assert leaks(f"AALN:{SOREN}|") == [f"card {SOREN}"]
    assert leaks(METTE.lower()) == [f"card {METTE}"]
    assert leaks(f'"pin":"{SOREN_PIN}"') == [f"PIN {SOREN_PIN}"]
    assert leaks("t=17800004711.5 a0471b") == []


ILS = ["sip2", pytest.param("fbs", marks=pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the FBS demo needs openssl"))]


@pytest.mark.parametrize("ils", ILS)
def test_no_card_number_or_pin_anywhere_after_a_library_demo_run(tmp_path, ils, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    daemon = start_demo(state, ils)
    try:
        library = daemon.test_library.library
        web = Http(daemon.port)
        web.staff_login()
        _, soren_n = load_by_item(web, SOREN_ITEM)
        mette_n = [load_by_item(web, item)[1] for item in METTE_ITEMS]
        deny(web, BIRTHE, BIRTHE_PIN)
        deny(web, JENS, JENS_PIN)
        collect(web, f"{SOREN[:6]} {SOREN[6:]}", [WRONG_PIN, SOREN_PIN], [soren_n])
        web.post("/api/kiosk/action", {"action": "cancel"})
        collect(web, METTE, [METTE_PIN], sorted(set(mette_n)))
        wait_until(lambda: len(library.checkouts) == 3, what="three loans")
        wait_until(lambda: daemon.store.loans_waiting() == 0, what="the loan queue drained")
        for page in PAGES:
            web.get(page)
        outbox = [(r["type"], r["payload"]) for r in daemon.store.outbox_batch(limit=100000)]
    finally:
        daemon.stop()
    assert {t for t, _ in outbox} >= {"hold.collected", "pickup.denied"}

    scan = Scan(NEEDLES)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert any(r.name.startswith("bibbox.library") for r in caplog.records)
    for i, record in enumerate(caplog.records):
        text = log_text(record)
        scan(f"log record {i} ({record.name})", text)
        for name in NAMES:
            if name in text:
                scan.found.setdefault(f"log record {i}", []).append(name)
    out, err = capfd.readouterr()
    scan("stdout", out)
    scan("stderr", err)
    files = sorted(p for p in state.rglob("*") if p.is_file())
    assert {"bibbox.db", "bibbox.db-wal"} <= {p.name for p in files}
    for path in files:
        scan(f"file {path.name}", path.read_bytes())
    for kind, payload in outbox:
        scan(f"outbox {kind}", payload)
    served = [(path, body) for path, body in web.seen if not path.startswith("/sim")]
    assert any(path == "/api/kiosk" for path, _ in served)
    assert any(path.startswith("/staff/api/item") for path, _ in served)
    for i, (path, body) in enumerate(served):
        scan(f"response {i} {path}", body)
    assert scan.found == {}


def test_a_reply_that_does_not_parse_is_logged_redacted_at_debug(caplog):
    """Every personal field of a garbled 64 (AA, AE, AD, CY, DA, ...) is
    blanked in the one log line that shows it; the frame is never whole."""
    caplog.set_level(logging.DEBUG)
    garbled = (f"64XXXX AO|AA{SOREN}|AD{SOREN_PIN}|AEØstergaard, Søren|CY{METTE}|"
               f"DA{NAMES[1]}|AC{SOREN_PIN}|\r").encode()
    server = RawServer([garbled, garbled]).start()
    try:
        client = LibraryClient(SipTransport("127.0.0.1", server.port, tls=False,
                                            trusted_network=True, timeout_s=1, retries=0,
                                            checksums=False), institution="DK-775100")
        with pytest.raises(ReplyError):
            client.patron_information(SOREN, SOREN_PIN)
        client.close()
    finally:
        server.stop()
    logged = [r for r in caplog.records if r.name.startswith("bibbox")]
    assert any("AA***" in r.getMessage() for r in logged)
    for record in logged:
        text = record.getMessage() + repr(record.args)
        assert leaks(text) == [], text
        assert "Søren" not in text and NAMES[1] not in text


def test_card_numbers_go_only_inside_tls_or_on_a_trusted_network(tmp_path, capsys):
    with pytest.raises(InsecureTransport):
        SipTransport("127.0.0.1", 6001, tls=False)
    with pytest.raises(InsecureTransport):
        fbs_dialect.FbsTransport("127.0.0.1", "775100", tls=False)
    SipTransport("127.0.0.1", 6001, tls=False, trusted_network=True).close()
    config = tmp_path / "plain.toml"
    config.write_text(sim_config_text(tmp_path / "state", 8080, extra="""
[verifier]
kind = "sip2"

[library]
host = "sip.example.org"
institution = "DK-775100"
tls = false
"""))
    with pytest.raises(SystemExit) as refused:
        main(["check-config", str(config)])
    assert refused.value.code == 2
    assert "library.tls" in capsys.readouterr().err
    trusted = tmp_path / "trusted.toml"
    trusted.write_text(config.read_text().replace("tls = false", "tls = false\n"
                                                  "trusted_network = true"))
    assert main(["check-config", str(trusted)]) == 0
