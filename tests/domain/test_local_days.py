"""Pickup deadlines are the end of a local day, across daylight saving; the
dates shown and published are local calendar dates."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from bibbox.locker.domain import config
from bibbox.locker.domain.calendar import days_left, end_of_local_day, last_local_date
from bibbox.locker.domain.clock import FakeClock
from bibbox.locker.domain.errors import ConfigError
from tests.domain_helpers import ALICE_CARD, Rig, small_config

CPH = ZoneInfo("Europe/Copenhagen")


def local(*args):
    return dt.datetime(*args, tzinfo=CPH).timestamp()


def test_a_hold_loaded_before_the_clocks_go_back_is_due_at_the_end_of_the_local_day(tmp_path):
    # 2026-10-23 14:00 CEST; summer time ends 2026-10-25.  Seven days on is
    # 30 October: the hold may be collected until midnight, not until 13:00.
    rig = Rig(tmp_path, clock=FakeClock(wall=local(2026, 10, 23, 14, 0)))
    rig.start()
    loaded = rig.controller.call(lambda l: l.load_hold(
        "anna", patron_hash=rig.patron_hash(ALICE_CARD),
        items=[{"barcode": "111", "title": "Bog"}], size="S"))
    assert loaded["deadline"] == local(2026, 10, 31, 0, 0)
    n = loaded["compartment"]
    rig.fire_all()
    rig.door(n, True)
    rig.door(n, False)
    ready = [json.loads(payload) for kind, payload in rig.outbox() if kind == "hold.ready"]
    assert ready[-1]["deadline_date"] == "2026-10-30"
    assert rig.state["compartments"][n - 1]["deadline_date"] == "2026-10-30"
    rig.advance(local(2026, 10, 30, 23, 59) - rig.clock.wall())
    assert rig.store.hold(loaded["hold_id"]).state.value == "ready"     # still in time
    rig.advance(120)
    assert rig.store.hold(loaded["hold_id"]).state.value == "expired"


def test_spring_forward_and_fractions():
    # loaded 2027-03-26, summer time starts 28 March: still local midnight
    assert end_of_local_day(local(2027, 3, 26, 9, 30), 3, CPH) == local(2027, 3, 30, 0, 0)
    # 1.5 days count as two whole days
    assert end_of_local_day(local(2026, 6, 1, 23, 59), 1.5, CPH) == local(2026, 6, 4, 0, 0)


def test_days_left_counts_calendar_days():
    deadline = local(2026, 10, 31, 0, 0)
    assert last_local_date(deadline, CPH) == "2026-10-30"
    assert days_left(deadline, local(2026, 10, 23, 14, 0), CPH) == 7
    assert days_left(deadline, local(2026, 10, 30, 23, 0), CPH) == 0
    assert days_left(deadline, local(2026, 10, 31, 0, 30), CPH) == -1


def test_the_time_zone_is_configurable_and_checked(tmp_path):
    cfg = small_config(tmp_path)
    assert cfg.locker.timezone == "Europe/Copenhagen"
    data = {"locker": {"id": "x", "timezone": "Mars/Olympus"},
            "compartments": [{"number": 1, "size": "S", "relay_pin": 5, "door_pin": 17}]}
    with pytest.raises(ConfigError, match="locker.timezone: unknown time zone"):
        config.parse(data)
