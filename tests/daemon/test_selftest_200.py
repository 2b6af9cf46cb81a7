"""``bibbox selftest`` on a 200-door locker (issue 11, item 6): 13 simulated
KR-CU16 boards on two RS485 buses.  Every door is pulsed and listed once, in
a table whose columns line up however long a board's channel name is, and a
failure is named again on the last line, so 200 rows need not be read to
find it.  Slow: one pulse and two polls a door, 200 times."""

from __future__ import annotations

import re

import pytest

from bibbox.daemon import selftest
from bibbox.daemon.cli import main
from bibbox.daemon.config_file import load as load_config
from tests.fault_helpers import free_port
from tests.lockers import write_locker

pytestmark = pytest.mark.slow
DOORS = 200


@pytest.fixture
def config(tmp_path):
    # short pulses and quick polls: the test waits for every door in turn
    return write_locker(DOORS, str(tmp_path), rows=10, pulse_s=0.1, poll_s=0.03, timeout_s=0.5,
                        state_dir=str(tmp_path / "state"), kiosk_port=free_port())


def rows(out):
    """{number: the row} of the result table."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+)  ", line)
        if m:
            number = int(m.group(1))
            assert number not in found, f"compartment {number} listed twice"
            found[number] = line
    return found


def test_every_door_of_200_is_tested_and_listed(config, capsys):
    capsys.readouterr()
    code = main(["selftest", "--config", config])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert f"Self-test of locker 'bench-{DOORS}': {DOORS} compartment(s) (simulated)" in out
    assert f"{DOORS} ok, 0 failed" in out and "failed:" not in out
    table = rows(out)
    assert sorted(table) == list(range(1, DOORS + 1))
    assert all(" ok: opened " in line for line in table.values())
    assert "rs485-0/0 lock 0" in table[1] and "rs485-1/2 lock 7" in table[200]
    # the columns line up: the result starts at the same place on every row
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#  relay"))
    starts = {line.index(" ok: ") for line in table.values()}
    assert starts == {header.index(" result")}, starts


def test_failures_are_named_on_the_last_line(config, capsys):
    cfg = load_config(config)
    hw = selftest.Hardware(cfg)
    try:
        hw.simulator.set_jammed(17, True)
        hw.simulator.set_jammed(150, True)
        capsys.readouterr()
        code = selftest.run(cfg, numbers=[16, 17, 150, 151], hardware=hw, open_timeout=1.0)
        out = capsys.readouterr().out
    finally:
        hw.close()
    assert code == 1
    table = rows(out)
    assert "NO DOOR MOVEMENT" in table[17] and "NO DOOR MOVEMENT" in table[150]
    assert " ok: " in table[16] and " ok: " in table[151]
    last = out.strip().splitlines()
    assert last[-2:] == ["2 ok, 2 failed",
                         "failed: 17 (no door movement), 150 (no door movement)"]
