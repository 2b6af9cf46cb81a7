"""The 48-door demo on three simulated KR-CU16 boards: it starts, a patron
collects through a board door (the unlock frame is on the bus), and a board
that goes silent raises its alarm, its doors unknown, until it is back."""

from pathlib import Path

import pytest

from bibbox.daemon.cli import DEMO_PATRONS, demo_daemon, main
from bibbox.hal.kerong_protocol import request
from bibbox.locker.domain.messages import PinEntered
from tests.domain_helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "demo-48-rs485.toml"


@pytest.fixture
def demo(tmp_path):
    daemon = demo_daemon(tmp_path / "state", port=0, config=str(CONFIG))
    daemon.start()
    yield daemon
    daemon.stop()


def state(daemon):
    return daemon.controller.board.get("state")


def test_the_demo_starts_with_every_door_on_a_board(demo):
    sim = demo.simulator
    assert len(sim.numbers) == 48 and not sim.door_pins        # no GPIO door at all
    assert set(demo.doors.read_all().values()) == {"closed"}
    assert demo.health()["boards"] == {"rs485/0": True, "rs485/1": True, "rs485/2": True}
    doors = sim.state()["doors"]
    assert len(doors) == 48 and doors["48"]["board"] == 2 and doors["48"]["lock"] == 15


def test_a_pickup_opens_a_board_door(demo):
    sim, bus = demo.simulator, demo.simulator.buses["rs485"]
    karen = DEMO_PATRONS[0]
    sim.write_card(karen["card"].encode() + b"\r")
    wait_until(lambda: demo.controller.board.get("kiosk")["screen"] == "pin", what="the PIN")
    demo.controller.post(PinEntered(karen["pin"]))
    # Karen's demo holds are in compartments 1 and 3: board 0, locks 0 and 2.
    wait_until(lambda: {(0, 0), (0, 2)} <= set(bus.unlocks()), what="both unlock frames")
    assert request(0, 0, 0x31) in bus.requests and request(0, 2, 0x31) in bus.requests
    assert set(bus.unlocks()) == {(0, 0), (0, 2)}            # no other door
    wait_until(lambda: sim.door_is_open(1) and sim.door_is_open(3), what="the doors open")
    wait_until(lambda: demo.controller.call(          # both, or a door shut between
        lambda locker: all(n in locker.openings and locker.openings[n].seen_open
                           for n in (1, 3))),            # two polls is never seen open
        what="both doors seen open by polling")
    for n in (1, 3):
        sim.set_door(n, False)

    def collected(locker):
        return not locker.openings and all(h.compartment not in (1, 3)
                                           for h in locker.holds.values())

    wait_until(lambda: demo.controller.call(collected), what="the holds collected")


def test_a_silent_board_raises_its_alarm_and_clears_it(demo):
    sim = demo.simulator
    sim.set_board_silent("rs485", 1, True)
    wait_until(lambda: any(a.get("board") == "rs485/1" for a in state(demo)["alarms"]),
               what="the board alarm")
    wait_until(lambda: demo.locker.doors[17].state.value == "unknown", what="door 17 unknown")
    assert demo.locker.doors[1].state.value == "closed"          # board 0 fine
    sim.set_board_silent("rs485", 1, False)
    wait_until(lambda: not any(a.get("board") for a in state(demo)["alarms"]),
               what="the alarm cleared")
    wait_until(lambda: demo.locker.doors[17].state.value == "closed", what="door 17 known")


def test_check_config_prints_the_bus_map(capsys):
    assert main(["check-config", str(CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "bus 'rs485' (kerong)" in out and "board 2: lock 0->#33" in out
