"""``bibbox status`` of a 200-door locker (issue 11, item 6): one screen, not
200 rows.  Above 24 compartments it counts the doors and the states, says
how the lock boards answer, and lists only the compartments that need a
look (an alarm, a door not shut, a lock released, a state other than free
or ready); ``--all`` lists every one."""

from __future__ import annotations

import pytest

from bibbox.daemon.cli import main
from bibbox.daemon.cli_ops import FULL_TABLE_MAX, render_status
from tests.domain_helpers import wait_until
from tests.lockers import demo_locker, place_ready_hold

URL = "http://127.0.0.1:8080"


def compartment(n, state="free", door="closed", lock="locked", alarms=()):
    return {"number": n, "size": "SML"[n % 3], "state": state, "door": door, "lock": lock,
            "alarms": list(alarms)}


def answer(compartments, boards=None, alarms=()):
    return {"state": {"locker_id": "big", "alarms": list(alarms), "compartments": compartments},
            "outbox_depth": 0,
            "health": {"controller": True, "reader": True, "link": None,
                       "boards": boards or {}}}


def table_rows(text):
    return [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]


def test_a_big_locker_is_counted_and_only_what_needs_a_look_is_listed():
    comps = [compartment(n) for n in range(1, 201)]
    for n in (1, 2, 3, 150):
        comps[n - 1] = compartment(n, "ready")
    comps[41] = compartment(42, "out_of_service")
    comps[76] = compartment(77, door="open", alarms=["door_forced"])
    comps[119] = compartment(120, "opening", door="open", lock="released")
    for n in range(17, 33):                             # board rs485-0/1 silent
        comps[n - 1] = dict(comps[n - 1], door="unknown")
    boards = {f"rs485-{b // 10}/{b % 10}": b != 1 for b in range(13)}
    text = render_status(answer(comps, boards, [
        {"alarm": "door_forced", "compartment": 77},
        {"alarm": "board_offline", "compartment": None, "board": "rs485-0/1"}]), URL)
    lines = text.splitlines()
    assert len(lines) < 40, text
    assert "  boards      12 of 13 answering; SILENT: rs485-0/1" in lines
    assert "  alarms      door_forced (compartment 77), board_offline (board rs485-0/1)" in lines
    assert "  doors       200: 182 closed, 16 unknown, 2 open" in lines
    assert "  states      194 free, 4 ready, 1 opening, 1 out of service" in lines
    assert ("  attention   19 of 200 compartments need a look (every one: bibbox status --all)"
            in lines)
    listed = [int(r[0]) for r in table_rows(text)]
    assert listed == [17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 42, 77, 120]
    every = render_status(answer(comps, boards), URL, every=True)
    assert [int(r[0]) for r in table_rows(every)] == list(range(1, 201))
    assert "attention" not in every


def test_a_quiet_big_locker_says_so_and_a_small_one_lists_every_compartment():
    text = render_status(answer([compartment(n) for n in range(1, 201)],
                                {f"rs485-0/{b}": True for b in range(10)}), URL)
    assert "  boards      10 of 10 answering" in text.splitlines()
    assert "  doors       200: 200 closed" in text.splitlines()
    assert "attention   none of 200 compartments need a look" in text
    assert not table_rows(text)
    small = render_status(answer([compartment(n) for n in range(1, FULL_TABLE_MAX + 1)]), URL)
    assert len(table_rows(small)) == FULL_TABLE_MAX and "attention" not in small
    assert "boards" not in small                          # a GPIO locker has none


@pytest.mark.slow
def test_status_of_a_running_200_door_locker(tmp_path, capsys):
    daemon = demo_locker(tmp_path, 200, rows=10, timeout_s=0.5)
    try:
        place_ready_hold(daemon, "B-150", "BIB0000001", 150, pickup="8150")
        daemon.simulator.set_door(77, True)               # opened with no command
        wait_until(lambda: any(a["alarm"] == "door_forced" for a in
                               daemon.controller.board.get("state")["alarms"]),
                   what="the forced-door alarm")
        url = f"http://127.0.0.1:{daemon.port}"
        capsys.readouterr()
        code = main(["status", "--url", url])
        out = capsys.readouterr().out
        assert code == 3, out                             # an alarm
        lines = out.splitlines()
        assert len(lines) < 20, out
        assert "  boards      13 of 13 answering" in lines
        assert "  doors       200: 199 closed, 1 open" in lines
        assert "  states      195 free, 5 ready" in lines   # the demo's four and 150
        assert [r[0] for r in table_rows(out)] == ["77"]
        assert main(["status", "--url", url, "--all"]) == 3
        assert len(table_rows(capsys.readouterr().out)) == 200
    finally:
        daemon.stop()
