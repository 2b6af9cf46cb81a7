"""The receipt printer in the daemon, end to end (issue 12, item 7): the
demo locker with ``[printer]`` on a real pseudo-terminal, a patron's pickup,
the receipt's bytes at the printer (titles and due dates, no card number),
then paper out raising ``printer_offline`` and a good print clearing it; a
printer that is missing raises it too.  Off by default."""

from __future__ import annotations

import json
import os
import pathlib
import urllib.request

import pytest

from bibbox.daemon.cli import DEMO_CONFIG, demo_daemon
from bibbox.daemon.config_file import load as load_config
from bibbox.hal.receipt_printer import PAPER_STATUS
from bibbox.locker.domain.model import AlarmKind
from tests.domain_helpers import wait_until
from tests.hal.test_receipt_printer import pty_pair, read_until  # noqa: F401

KAREN, KAREN_PIN = "0101709999", "1234"        # holds in compartments 1 and 3


def config_with_printer(tmp_path, port):
    text = pathlib.Path(DEMO_CONFIG).read_text(encoding="utf-8")
    path = tmp_path / "demo-printer.toml"
    path.write_text(text + f'\n[printer]\nenabled = true\nport = "{port}"\n', encoding="utf-8")
    return str(path)


@pytest.fixture
def daemon_with(tmp_path):
    made = []

    def make(port):
        daemon = demo_daemon(tmp_path / "state", port=0,
                             config=config_with_printer(tmp_path, port))
        daemon.start()
        made.append(daemon)
        return daemon
    yield make
    for daemon in made:
        daemon.stop()


def post(daemon, path, data):
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.port}{path}",
                                     data=json.dumps(data).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def pickup(daemon):
    daemon.simulator.write_card(KAREN.encode() + b"\r")
    wait_until(lambda: daemon.controller.board.get("kiosk")["screen"] == "pin",
               what="the PIN screen")
    post(daemon, "/api/kiosk/pin", {"pin": KAREN_PIN})
    for n in (1, 3):
        wait_until(lambda n=n: daemon.simulator.door_is_open(n), what=f"door {n} to open")
        post(daemon, f"/sim/doors/{n}", {"open": False})


def printer_alarm(daemon):
    return daemon.controller.call(
        lambda l: l._alarms.is_raised(AlarmKind.PRINTER_OFFLINE))


def test_the_printer_is_off_by_default():
    assert load_config(DEMO_CONFIG).printer.enabled is False


def test_a_pickup_prints_the_receipt_and_paper_out_is_an_alarm(daemon_with, pty_pair):  # noqa: F811
    master, path = pty_pair
    daemon = daemon_with(path)
    pickup(daemon)
    got = read_until(master, PAPER_STATUS)
    assert "Kaffe og kage".encode("cp865") in got and b"Kort over Danmark" in got
    assert "Tak for besøget!".encode("cp865") in got and b"Bibboksen (demo)" in got
    assert KAREN.encode() not in got                     # never a card number
    os.write(master, b"\x72")                            # paper end
    wait_until(lambda: printer_alarm(daemon), what="the printer_offline alarm")
    state = daemon.controller.board.get("state")
    assert any(a["alarm"] == "printer_offline" for a in state["alarms"])
    # the next receipt prints with fresh paper: the alarm clears
    daemon.printer.print_receipt({"title": "test", "lines": ["x"]})
    read_until(master, PAPER_STATUS)
    os.write(master, b"\x12")                            # paper present
    wait_until(lambda: not printer_alarm(daemon), what="the alarm to clear")


def test_a_missing_printer_raises_the_alarm(daemon_with, tmp_path):
    daemon = daemon_with(str(tmp_path / "no-printer"))
    pickup(daemon)
    wait_until(lambda: printer_alarm(daemon), what="the printer_offline alarm")
