"""The holds that open come from the library system's answer (64, AS) where
it reports them: a whole ``Daemon`` with ``verifier.kind = "sip2"`` against
the test library system.

* A patron who shows their health card opens the hold loaded for their
  library card: the library system names the same person behind both.
* A hold loaded for the patron that the library system no longer lists
  (cancelled there) stays shut.
* When the library system's list names none of the holds here, the holds
  loaded for this card open, as without a list."""

from bibbox.daemon.bootstrap import Daemon
from bibbox.daemon.config_file import load as load_config
from bibbox.locker.domain.messages import PinEntered
from tests.domain_helpers import wait_until
from tests.library.test_daemon_library import SITE_KEY, library_config, load

HEALTH_CARD_OF_L0001 = "1507804321"     # library.json: "same_as": "L0001"


def show_card(daemon, card, pin):
    board = daemon.controller.board
    daemon.simulator.write_card(f"{card}\r".encode())
    wait_until(lambda: board.get("kiosk")["screen"] == "pin", what="the PIN screen")
    daemon.controller.post(PinEntered(pin))
    wait_until(lambda: board.get("kiosk")["screen"] in ("opening", "denied"),
               what="the verdict")
    return board.get("kiosk")


def test_the_library_systems_hold_list_decides_which_doors_open(tmp_path, sip_server):
    path = library_config(tmp_path, "sip2", sip_server.port)
    daemon = Daemon(load_config(str(path)), site_key=SITE_KEY, kiosk_port=0)
    try:
        daemon.start()
        listed = load(daemon, "L0001", "I1001")       # in L0001's AS list
        cancelled = load(daemon, "L0001", "I2000")    # loaded for L0001, not listed
        kiosk = show_card(daemon, HEALTH_CARD_OF_L0001, "1234")
        assert kiosk["screen"] == "opening"
        sim = daemon.simulator
        wait_until(lambda: sim.door_is_open(listed), what="the listed hold's door opens")
        assert not sim.door_is_open(cancelled)
        assert [c["number"] for c in kiosk["compartments"]] == [listed]
        sim.set_door(listed, False)
        board = daemon.controller.board
        wait_until(lambda: board.get("kiosk")["screen"] == "receipt", what="the receipt")
        library = sip_server.library
        wait_until(lambda: library.checkouts, what="the loan in the library system")
        assert [(i, p) for i, p, _, _ in library.checkouts] == [("I1001", "L0001")]
        held = daemon.controller.call(lambda locker: [
            (h.compartment, h.state.value) for h in locker.holds.values()])
        assert held == [(cancelled, "ready")]
    finally:
        daemon.stop()


def test_a_list_that_names_nothing_here_falls_back_to_the_card(tmp_path, sip_server):
    path = library_config(tmp_path, "sip2", sip_server.port)
    daemon = Daemon(load_config(str(path)), site_key=SITE_KEY, kiosk_port=0)
    try:
        daemon.start()
        n = load(daemon, "L0004", "I2000")     # L0004 has no holds in the library system
        kiosk = show_card(daemon, "L0004", "4444")
        assert kiosk["screen"] == "opening"
        wait_until(lambda: daemon.simulator.door_is_open(n), what="the card's hold opens")
    finally:
        daemon.stop()
