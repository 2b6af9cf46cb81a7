"""``bibbox selftest``: pulse every lock, watch every door, print a table.

On the simulated locker (doors spring open when released, the test closes
them) and on mock pins standing in for a real locker whose doors do not
move (where the operator is asked).  It refuses to run while a daemon owns
the pins."""

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bibbox.daemon.config_file import load as load_config
from bibbox.locker.domain import config as config_mod
from bibbox.daemon import selftest
from bibbox.daemon.cli import main
from tests.fault_helpers import free_port, write_sim_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim(tmp_path):
    path, port, state = write_sim_config(tmp_path, pulse_s=0.1)
    return load_config(path), path


def run(cfg, capsys, **kwargs):
    capsys.readouterr()
    code = selftest.run(cfg, open_timeout=kwargs.pop("open_timeout", 1.0), **kwargs)
    out = capsys.readouterr()
    return code, out.out, out.err


def result_of(out, number):
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == str(number) and len(parts) > 3 and parts[1].startswith("GPIO"):
            return " ".join(parts[3:])
    raise AssertionError(f"no row for compartment {number} in\n{out}")


def test_the_simulated_locker_passes(sim, capsys):
    cfg, path = sim
    capsys.readouterr()
    code = main(["selftest", "--config", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "6 ok, 0 failed" in out and "(simulated)" in out
    for number in range(1, 7):
        assert result_of(out, number).startswith("ok: opened")


def test_a_jammed_door_is_no_movement(sim, capsys):
    cfg, _ = sim
    hw = selftest.Hardware(cfg)
    try:
        hw.simulator.set_jammed(2, True)
        code, out, _ = run(cfg, capsys, hardware=hw, numbers=[1, 2, 3])
    finally:
        hw.close()
    assert code == 1
    assert result_of(out, 2).startswith("NO DOOR MOVEMENT")
    assert result_of(out, 1).startswith("ok") and result_of(out, 3).startswith("ok")
    assert "2 ok, 1 failed" in out


def test_swapped_wiring_names_the_door_that_opened(sim, capsys):
    cfg, _ = sim
    hw = selftest.Hardware(cfg)
    try:
        pins = hw.simulator.by_relay_pin        # relay of 1 wired to the lock of 2 and back
        one, two = cfg.compartment(1).relay_pin, cfg.compartment(2).relay_pin
        pins[one], pins[two] = 2, 1
        code, out, _ = run(cfg, capsys, hardware=hw, numbers=[1, 2])
        assert not any(hw.simulator.door_is_open(n) for n in (1, 2))   # closed after
    finally:
        hw.close()
    assert code == 1
    assert "OPENED ANOTHER DOOR: the pulse opened door 2 instead" in result_of(out, 1)
    assert "OPENED ANOTHER DOOR: the pulse opened door 1 instead" in result_of(out, 2)


def test_a_door_that_reads_open_and_never_closes_is_stuck_open(sim, capsys, monkeypatch):
    cfg, _ = sim
    hw = selftest.Hardware(cfg)
    fired = []
    watcher = hw.simulator.factory.output_watcher
    hw.simulator.factory.output_watcher = lambda pin, value: (fired.append(pin.info.name),
                                                              watcher(pin, value))
    monkeypatch.setattr(selftest.SimOperator, "close_door", lambda self, n: None)
    try:
        hw.simulator.set_door(4, True)
        code, out, _ = run(cfg, capsys, hardware=hw, numbers=[4], close_timeout=0.3)
    finally:
        hw.close()
    assert code == 1
    assert result_of(out, 4).startswith("SENSOR STUCK OPEN")
    assert f"GPIO{cfg.compartment(4).relay_pin}" not in fired     # never pulsed


@pytest.fixture
def mock_locker(tmp_path, monkeypatch):
    """A 'real' locker whose lgpio factory hands out mock pins: doors closed,
    locks that move nothing."""
    from gpiozero.pins.mock import MockFactory
    monkeypatch.setattr("bibbox.hal.pins.make_pin_factory", lambda name: MockFactory())
    path = tmp_path / "real.toml"
    path.write_text(f"""[locker]\nid = "real"\nstate_dir = "{tmp_path}/state"\n
[hardware]\npin_factory = "lgpio"\n[web]\nkiosk_port = {free_port()}\n
[timing]\npulse_s = 0.1\n
[[compartments]]\nnumber = 1\nsize = "S"\nrelay_pin = 5\ndoor_pin = 17\n""")
    cfg = load_config(path)
    hw = selftest.Hardware(cfg)
    hw.factory.pin(17).drive_low()            # reed switch closed: door shut
    yield cfg, hw
    hw.close()


@pytest.mark.parametrize("answer, expected", [
    ("y", "SENSOR STUCK CLOSED"), ("n", "LOCK DID NOT RELEASE"), (None, "NO DOOR MOVEMENT")])
def test_the_operator_tells_a_stuck_sensor_from_a_stuck_lock(mock_locker, capsys, answer,
                                                             expected):
    cfg, hw = mock_locker
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return answer
    code, out, _ = run(cfg, capsys, hardware=hw, interactive=answer is not None, ask=ask,
                       open_timeout=0.3, close_timeout=0.2)
    assert code == 1
    assert result_of(out, 1).startswith(expected), out
    assert bool(asked) == (answer is not None)
    assert hw.relays.states() == {1: False}


def test_only_the_compartments_asked_for(sim, capsys):
    cfg, path = sim
    capsys.readouterr()
    assert main(["selftest", "--config", str(path), "--compartment", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 ok, 0 failed" in out and result_of(out, 3).startswith("ok")
    assert main(["selftest", "--config", str(path), "--compartment", "9"]) == 2


def test_refused_while_the_daemon_holds_the_lock(sim, capsys):
    cfg, path = sim
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom bibbox.daemon.config_file import load as load_config\n"
         "from bibbox.daemon.bootstrap import state_lock\n"
         f"state_lock(load_config({str(path)!r}), 'bibbox daemon')\n"
         "print('locked', flush=True)\ntime.sleep(30)\n"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, out, err = run(cfg, capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "held by another process (bibbox daemon pid" in err
    assert "systemctl stop bibbox" in err
    assert run(cfg, capsys)[0] == 0           # the lock went with the process


def test_refused_while_a_daemon_answers_on_the_kiosk_port(sim, capsys):
    cfg, _ = sim

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"state": {"compartments": []}, "health": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("127.0.0.1", cfg.web.kiosk_port), Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code, out, err = run(cfg, capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 2 and "a bibbox daemon answers at" in err


def test_board_doors_are_tested_through_their_boards(tmp_path, capsys):
    """On the 48-door demo every lock is on a KR-CU16 board: the test sends
    the unlock frame, sees the door open by polling, and names the board."""
    from bibbox.hal.kerong_protocol import request
    cfg = load_config(ROOT / "config" / "demo-48-rs485.toml")
    cfg = config_mod.replace(cfg, locker={"state_dir": str(tmp_path)})
    hw = selftest.Hardware(cfg)
    try:
        code, out, err = run(cfg, capsys, numbers=[1, 17], hardware=hw)
        bus = hw.simulator.buses["rs485"]
        assert request(0, 0, 0x31) in bus.requests and request(1, 0, 0x31) in bus.requests
        assert set(bus.unlocks()) == {(0, 0), (1, 0)}
    finally:
        hw.close()
    assert code == 0, out + err
    assert "rs485/1 lock 0" in out and "2 ok, 0 failed" in out
