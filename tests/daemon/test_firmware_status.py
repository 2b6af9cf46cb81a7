"""``bibbox status``: the running daemon's live state for an operator, from
the kiosk port's loopback ``/api/status``."""

import json

import pytest

from bibbox.daemon.cli import main
from bibbox.daemon.cli_ops import render_status
from tests.fault_helpers import alarms, free_port, place_hold, sim_daemon, wait_until


@pytest.fixture
def daemon(tmp_path):
    d = sim_daemon(tmp_path / "state")
    d.start()
    yield d
    d.stop()


def status(capsys, *args):
    capsys.readouterr()
    code = main(["status", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_of_a_healthy_locker(daemon, capsys):
    place_hold(daemon, "H1", 0, 2)
    code, out, _ = status(capsys, "--url", f"http://127.0.0.1:{daemon.port}")
    assert code == 0, out
    assert "locker fault-1" in out
    assert "controller  ok" in out and "reader      online" in out
    assert "central     not configured" in out and "alarms      none" in out
    assert "event(s) waiting" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[1][2] == "ready" and rows[0][2] == "free"
    assert all(r[3] == "closed" and r[4] == "locked" for r in rows)


def test_status_shows_alarms_and_exits_3(daemon, capsys):
    daemon.simulator.set_door(5, True)             # opened with no command: forced
    wait_until(lambda: ("door_forced", 5) in alarms(daemon), 5, what="the forced alarm")
    code, out, _ = status(capsys, "--url", f"http://127.0.0.1:{daemon.port}")
    assert code == 3
    assert "door_forced (compartment 5)" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("5 "))
    assert "open" in row and "door_forced" in row
    code, out, _ = status(capsys, "--url", f"http://127.0.0.1:{daemon.port}", "--json")
    data = json.loads(out)
    assert {"state", "outbox_depth", "health"} <= set(data)


def test_status_finds_the_port_in_the_config(daemon, capsys, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f"""[locker]\nid = "x"\n[web]\nkiosk_port = {daemon.port}\n
[[compartments]]\nnumber = 1\nsize = "S"\nrelay_pin = 5\ndoor_pin = 17\n""")
    assert status(capsys, "--config", str(path))[0] == 0


def test_status_without_a_daemon(capsys):
    code, out, err = status(capsys, "--url", f"http://127.0.0.1:{free_port()}", "--timeout",
                            "1")
    assert code == 1 and "no daemon answers" in err


def test_the_central_link_is_described():
    data = {"state": {"locker_id": "a", "alarms": [], "compartments": []}, "outbox_depth": 7,
            "health": {"controller": True, "reader": None,
                       "link": {"connected": False, "broker": "mqtt://central:1883",
                                "last_error": "connection refused"}}}
    text = render_status(data, "http://127.0.0.1:8080")
    assert "central     DISCONNECTED (mqtt://central:1883): connection refused" in text
    assert "reader      not configured" in text and "7 event(s) waiting" in text
