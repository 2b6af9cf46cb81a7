"""Fixtures: the test library system (pysip2) over TCP, TLS and FBS HTTPS."""

import pytest

from tests.library.acs import FbsServer, Library, SipServer, make_ca, server_context
from tests.privacy_needles import card_pattern, pin_pattern, pin_text


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def library():
    return Library()


@pytest.fixture
def sip_server(library):
    server = SipServer(library, login_required=True).start()
    yield server
    server.stop()


@pytest.fixture
def tls_server(library, test_ca):
    ca, cert, key = test_ca
    server = SipServer(library, tls_context=server_context(cert, key),
                       login_required=True).start()
    yield server
    server.stop()


@pytest.fixture
def fbs_server(test_ca):
    ca, cert, key = test_ca
    server = FbsServer(Library(fbs=True), tls_context=server_context(cert, key)).start()
    yield server
    server.stop()


# -- privacy: every test here is scanned afterwards ------------------------------------
def _secrets():
    import json

    from tests.library.acs import DATA
    data = json.loads(DATA.read_text(encoding="utf-8"))
    cards, pins = [], []
    for card, patron in data["patrons"].items():
        cards.append(card_pattern(card))
        if "pin" in patron:
            pins.append(pin_pattern(patron["pin"]))
    return cards, pins


CARD_NEEDLES, PIN_NEEDLES = _secrets()


@pytest.fixture(autouse=True)
def no_card_number_or_pin_left_behind(request, caplog):
    """After each test of the library system (loans, loading, patron checks,
    transports, the demo): no card number of the test library's patrons, in
    any form, in what the locker logged (DEBUG) or wrote under the test's
    tmp_path (the database, its WAL); no PIN in the log.  (PINs are not
    searched in files: a 4-digit pickup number may equal one by chance.)"""
    import logging
    caplog.set_level(logging.DEBUG, logger="bibbox")
    yield
    found = []
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        if not record.name.startswith("bibbox"):
            continue                      # the test library system's own logs
        text = (record.getMessage() + repr(record.args) +
                (record.exc_text or "")).encode("utf-8", "backslashreplace")
        found += [(record.name, p.pattern) for p in CARD_NEEDLES if p.search(text)]
        found += [(record.name, p.pattern) for p in PIN_NEEDLES if p.search(pin_text(text))]
    tmp = request.node.funcargs.get("tmp_path")
    if tmp is not None:
        for path in (p for p in tmp.rglob("*") if p.is_file()):
            if path.suffix in (".pem", ".key", ".csr", ".cnf", ".srl"):
                continue
            data = path.read_bytes()
            found += [(path.name, p.pattern) for p in CARD_NEEDLES if p.search(data)]
    assert found == [], f"card numbers or PINs left behind: {found}"
