"""A database that refuses writes: disk full, read-only.

Two kinds of test:

* In the domain (always run): the store's connection is wrapped so that,
  while told to, every write statement raises the error SQLite raises on a
  full disk ("database or disk is full") or a read-only file ("attempt to
  write a readonly database").  Exact and fast.
* With real file systems (run when the tests may mount, i.e. as root with
  mount privilege; skipped otherwise): the state directory is a small tmpfs
  that is filled up for real, and a read-only bind mount of it for a start
  on read-only media.  A *running* daemon's database cannot be made
  read-only under it (the kernel refuses to remount a file system with files
  open for writing), so that case uses ``PRAGMA query_only``, which makes
  SQLite refuse writes with the same SQLITE_READONLY error.

What must hold: the storage alarm is raised (in memory: the disk refuses
it), published and logged once; the daemon keeps serving and its watchdog
health stays good (a restart would not fix a full disk: no crash loop); no
relay fires for a command whose write-ahead record failed; nothing
half-written is left; once writes succeed again the alarm clears, is
reported after the fact, and a door opening that finished meanwhile is
stored.
"""

import json
import logging
import os
import sqlite3
import subprocess

import pytest

from bibbox.locker.domain import core
from bibbox.locker.domain.errors import StoreError
from bibbox.locker.domain.messages import KioskAction
from bibbox.daemon.systemd import check_health
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig
from tests.fault_helpers import (alarms, enter_pin, fill_disk, mount_tmpfs, place_hold,
                                 present_card, sim_daemon, state, umount, wait_until)

FULL = "database or disk is full"
READ_ONLY = "attempt to write a readonly database"
STORAGE = ("storage_error", None)


class RefusingConnection:
    """The store's connection; while ``error`` is set every write statement
    raises it, as SQLite does on a full disk or a read-only file."""

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COMMIT")

    def __init__(self, conn):
        self._conn, self.error = conn, None

    def execute(self, sql, params=()):
        if self.error and sql.lstrip().upper().startswith(self.WRITES):
            raise sqlite3.OperationalError(self.error)
        return self._conn.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def refusing(rig):
    conn = RefusingConnection(rig.store.conn)
    rig.store.conn = conn
    return conn


def storage_logs(caplog):
    return [r for r in caplog.records if r.levelno >= logging.CRITICAL
            and "storage_error" in r.getMessage()]


def db_rows(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("error", [FULL, READ_ONLY])
def test_a_refused_write_ahead_fires_no_relay_and_raises_the_alarm_once(tmp_path, caplog,
                                                                         error):
    rig = Rig(tmp_path)
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.start()
    rig.place("H1", ALICE_CARD, 1)
    conn = refusing(rig)
    conn.error = error
    rig.card(ALICE_CARD)
    assert rig.kiosk["screen"] == "pin"
    rig.pin(ALICE_PIN)                          # accepted -> write-ahead refused
    assert rig.relays.pulses == []              # no relay for an unrecorded opening
    assert ("storage_error", None) in {(a["alarm"], a["compartment"])
                                       for a in rig.state["alarms"]}
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("denied", "service_unavailable")
    assert db_rows(tmp_path / "bibbox.db", "SELECT * FROM openings") == []
    assert db_rows(tmp_path / "bibbox.db", "SELECT state FROM holds") == [("ready",)]
    assert rig.locker.openings == {} and rig.locker.holds["H1"].state.value == "ready"
    # More traffic while the disk refuses: refused at the card, logged no more.
    rig.locker.kiosk_action(KioskAction("cancel"))
    rig.card(ALICE_CARD)
    assert (rig.kiosk["screen"], rig.kiosk["message"]) == ("denied", "service_unavailable")
    with pytest.raises(StoreError):
        rig.controller.call(lambda l: l.open_compartment(2, "staff", "test"))
    rig.advance(core.STORAGE_RETRY_S + 1)       # a retry, refused again
    assert rig.relays.pulses == []
    assert len(storage_logs(caplog)) == 1
    # The disk takes writes again: the next retry clears the alarm and says so.
    conn.error = None
    rig.advance(core.STORAGE_RETRY_S + 1)
    assert STORAGE not in {(a["alarm"], a["compartment"]) for a in rig.state["alarms"]}
    events = [(r["type"], json.loads(r["payload"]).get("alarm"))
              for r in rig.store.outbox_batch(limit=1000)]
    assert ("alarm.raised", "storage_error") in events
    assert ("alarm.cleared", "storage_error") in events
    rig.locker.kiosk_action(KioskAction("cancel"))
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert [n for n, _ in rig.relays.pulses] == [1]


def test_a_door_seen_open_while_writes_fail_is_stored_once_they_work(tmp_path):
    rig = Rig(tmp_path)
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.start()
    rig.place("H1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    conn = refusing(rig)
    conn.error = FULL                           # the write-ahead made it; then the disk fills
    assert rig.fire_all() == [1]
    rig.door(1, True)                           # the patron opens ...
    rig.door(1, False)                          # ... and closes the door
    assert db_rows(tmp_path / "bibbox.db", "SELECT state FROM holds") == [("ready",)]
    assert STORAGE in {(a["alarm"], a["compartment"]) for a in rig.state["alarms"]}
    conn.error = None
    rig.advance(core.STORAGE_RETRY_S + 1)
    assert db_rows(tmp_path / "bibbox.db", "SELECT state FROM holds") == [("collected",)]
    types = [r["type"] for r in rig.store.outbox_batch(limit=1000)]
    assert types.count("door.opened") == 1
    assert types.index("door.opened") < types.index("hold.collected")
    assert db_rows(tmp_path / "bibbox.db", "SELECT * FROM openings") == []


def test_a_start_on_a_database_that_refuses_writes_serves_with_the_alarm(tmp_path, caplog):
    rig = Rig(tmp_path)
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.start()
    rig.place("H1", ALICE_CARD, 1)
    rig.store.close()
    rig2 = Rig(tmp_path, clock=rig.clock)
    refusing(rig2).error = READ_ONLY
    rig2.start()                                # must not raise: no crash loop
    assert set(rig2.locker.holds) == {"H1"}
    assert STORAGE in {(a["alarm"], a["compartment"]) for a in rig2.state["alarms"]}
    assert len(storage_logs(caplog)) == 1


# -- real file systems ------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    where = tmp_path / "disk"
    if not mount_tmpfs(where, size="4m"):
        pytest.skip("needs root and permission to mount a tmpfs")
    yield where
    umount(where)


@pytest.fixture
def fast_retry(monkeypatch):
    monkeypatch.setattr(core, "STORAGE_RETRY_S", 0.3)


def test_a_full_disk_raises_the_alarm_opens_nothing_and_recovers(tmpfs, fast_retry, caplog):
    state_dir = tmpfs / "state"
    daemon = sim_daemon(state_dir)
    try:
        daemon.start()
        place_hold(daemon, "H1", 0, 1)
        filler = fill_disk(tmpfs)
        assert present_card(daemon, 0)["screen"] == "pin"
        view = enter_pin(daemon, 0)
        assert (view["screen"], view["message"]) == ("denied", "service_unavailable")
        assert STORAGE in alarms(daemon)
        assert daemon.simulator.state()["relays"]["1"] == "off"
        assert not daemon.simulator.door_is_open(1)
        assert check_health(daemon) == []       # the watchdog keeps being fed
        assert len(storage_logs(caplog)) == 1
        os.unlink(filler)
        wait_until(lambda: STORAGE not in alarms(daemon), 5, what="the alarm to clear")
        daemon.controller.post(KioskAction("cancel"))
        present_card(daemon, 0)
        enter_pin(daemon, 0)
        wait_until(lambda: daemon.simulator.door_is_open(1), 5, what="door 1 to open")
        daemon.simulator.set_door(1, False)
        wait_until(lambda: not any(c["occupied"] for c in state(daemon)["compartments"]), 5,
                   what="the hold to be collected")
    finally:
        daemon.stop()
    assert db_rows(state_dir / "bibbox.db", "PRAGMA integrity_check") == [("ok",)]
    # Start again on a full disk: it comes up, says so, and opens nothing.
    filler = fill_disk(tmpfs)
    daemon = sim_daemon(state_dir)
    try:
        daemon.start()
        with pytest.raises(StoreError):
            place_hold(daemon, "H2", 1, 2)
        assert STORAGE in alarms(daemon)
        assert check_health(daemon) == []
    finally:
        daemon.stop()
        os.unlink(filler)


def test_a_read_only_database_raises_the_alarm_and_opens_nothing(tmp_path, fast_retry,
                                                                 caplog):
    daemon = sim_daemon(tmp_path / "state")
    try:
        daemon.start()
        place_hold(daemon, "H1", 0, 1)
        daemon.controller.call(lambda l: l.store.conn.execute("PRAGMA query_only=ON"))
        present_card(daemon, 0)
        view = enter_pin(daemon, 0)
        assert view["message"] == "service_unavailable"
        assert STORAGE in alarms(daemon)
        assert daemon.simulator.state()["relays"]["1"] == "off"
        assert check_health(daemon) == []
        daemon.controller.call(lambda l: l.store.conn.execute("PRAGMA query_only=OFF"))
        wait_until(lambda: STORAGE not in alarms(daemon), 5, what="the alarm to clear")
    finally:
        daemon.stop()
    assert len(storage_logs(caplog)) == 1
    assert db_rows(tmp_path / "state" / "bibbox.db", "SELECT * FROM openings") == []


def test_a_start_on_a_read_only_file_system_serves_with_the_alarm(tmpfs, caplog):
    state_dir = tmpfs / "state"
    daemon = sim_daemon(state_dir)
    daemon.start()
    place_hold(daemon, "H1", 0, 1)
    daemon.stop()                               # clean: no -wal/-shm left behind
    read_only = tmpfs.parent / "ro"
    read_only.mkdir()
    subprocess.run(["mount", "--bind", str(tmpfs), str(read_only)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only)], check=True)
        daemon = sim_daemon(read_only / "state", patrons=())
        try:
            assert daemon.store.read_only
            daemon.start()
            assert STORAGE in alarms(daemon)
            assert [c["occupied"] for c in state(daemon)["compartments"]][0] is True
            view = present_card(daemon, 0)          # refused at once: nothing can be recorded
            assert (view["screen"], view["message"]) == ("denied", "service_unavailable")
            assert daemon.simulator.state()["relays"]["1"] == "off"
            assert check_health(daemon) == []
        finally:
            daemon.stop()
    finally:
        umount(read_only)
