"""The bootstrap's library wiring, from a configuration file: a whole
``Daemon`` with ``verifier.kind = "sip2"`` (plain, trusted loopback) and
``"fbs"`` (HTTPS, a test CA) against the test library system; a pickup end
to end (the patron check, the door, the loan in the library system); then
a clean stop: the loan worker, the verifier and every connection closed,
no thread left behind."""

import os

import pytest

from bibbox.daemon.bootstrap import Daemon
from bibbox.daemon.cli import main
from bibbox.daemon.config_file import load as load_config
from bibbox.locker.domain.identity import CardNumber
from bibbox.locker.domain.messages import PinEntered
from tests.domain_helpers import wait_until
from tests.library.demo_flow import daemon_threads
from tests.fault_helpers import free_port, sim_config_text

SITE_KEY = b"k" * 32


def library_config(tmp_path, kind, port, ca_file=""):
    state = tmp_path / "state"
    state.mkdir()
    creds = tmp_path / "library-credentials"
    creds.write_text("fbs-locker:fbs-secret\n" if kind == "fbs" else "locker1:sip-secret\n")
    os.chmod(creds, 0o600)
    section = f"""
[verifier]
kind = "{kind}"

[library]
host = "127.0.0.1"
port = {port}
tls = {"true" if kind == "fbs" else "false"}
trusted_network = {"false" if kind == "fbs" else "true"}
ca_file = "{ca_file}"
institution = "{"775100" if kind == "fbs" else "DK-775100"}"
location = "BIBBOX1"
credentials_file = "{creds}"
timeout_s = 2.0
retries = 1
"""
    path = tmp_path / "bibbox.toml"
    path.write_text(sim_config_text(state, free_port(), extra=section))
    return path


def load(daemon, card, item):
    """Staff load ``item`` for ``card`` (the card path); its compartment,
    once the hold is ready."""
    patron = daemon.hasher.patron(CardNumber.parse(card))
    loaded = daemon.controller.call(lambda locker: locker.load_hold(
        "staff:test", patron_hash=patron, items=[{"barcode": item, "title": "x"}]))
    n = loaded["compartment"]
    sim = daemon.simulator
    wait_until(lambda: sim.door_is_open(n), what="the door springs open")
    sim.set_door(n, False)
    wait_until(lambda: not sim.relay_energised(n), what="the relay released")
    wait_until(lambda: daemon.controller.call(lambda locker: [
        h.state.value for h in locker.holds.values() if h.compartment == n]) == ["ready"],
        what="the hold is ready")
    return n


def pickup(daemon, card, pin, item):
    """Load ``item`` for ``card`` (the card path), then collect it."""
    n = load(daemon, card, item)
    sim = daemon.simulator
    board = daemon.controller.board
    version = board.get("kiosk")["version"]
    sim.write_card(f"{card}\r".encode())
    wait_until(lambda: board.get("kiosk")["screen"] == "pin", what="the PIN screen")
    daemon.controller.post(PinEntered(pin))
    wait_until(lambda: sim.door_is_open(n), what="the patron's door opens")
    sim.set_door(n, False)
    wait_until(lambda: board.get("kiosk")["screen"] == "receipt", what="the receipt")
    assert board.get("kiosk")["version"] > version


@pytest.mark.parametrize("kind", ["sip2", "fbs"])
def test_a_daemon_against_the_library_system_picks_up_lends_and_stops_clean(
        tmp_path, kind, sip_server, fbs_server, test_ca):
    server = sip_server if kind == "sip2" else fbs_server
    path = library_config(tmp_path, kind, server.port, str(test_ca[0]) if kind == "fbs" else "")
    assert main(["check-config", str(path)]) == 0
    before = daemon_threads()
    daemon = Daemon(load_config(str(path)), site_key=SITE_KEY, kiosk_port=0)
    try:
        daemon.start()
        assert daemon.loan_worker is not None and daemon.library_loading is not None
        pickup(daemon, "L0001", "1234", "I1001")
        library = server.library
        wait_until(lambda: library.checkouts, what="the loan in the library system")
        assert [(i, p, nb) for i, p, nb, _ in library.checkouts] == [("I1001", "L0001", False)]
        wait_until(lambda: daemon.store.loans_waiting() == 0, what="the loan queue drained")
        assert daemon.health()["library"] is True
    finally:
        daemon.stop()
    try:
        wait_until(lambda: daemon_threads() <= before, timeout=15,
                   what="every thread of the daemon stopped")
    except AssertionError:
        raise AssertionError(f"left running: {daemon_threads() - before}") from None
