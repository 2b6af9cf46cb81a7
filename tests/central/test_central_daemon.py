"""The daemon killed with SIGKILL while events are in flight, then started
again on the same database: central gets every event, in order after
dropping duplicates by id, and the will told it the locker had gone."""

import json
import os
import sqlite3
import subprocess
import sys

from tests.brokers import Subscriber, broker, broker_factory  # noqa: F401
from tests.central_helpers import contract_validator, wait_until

ROOT = "bibbox/test-1"
WRITES = 200_000      # far more than are written before the kill: it comes mid-burst
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def daemon(state_dir, url, n, boot_id):
    proc = subprocess.Popen([sys.executable, "-m", "tests.central_daemon", str(state_dir),
                             url, str(n), boot_id], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def last_seq(db):
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
        depth = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return (row[0] if row else 0), depth
    finally:
        conn.close()


def test_daemon_killed_mid_burst_loses_nothing(broker, tmp_path):
    sub = Subscriber(broker.port, [f"{ROOT}/events", f"{ROOT}/availability"],
                     validate=contract_validator, qos=1).start()
    first = daemon(tmp_path, broker.url, WRITES, "boot-1")
    try:
        sub.wait_for(lambda ms: sum(m.topic.endswith("events") for m in ms) >= 300, 30,
                     what="the burst to be under way")
        # the writer is mid-burst (it never finishes); kill while rows wait
        # for their PUBACK or their delete, so the restart has something to resend
        wait_until(lambda: last_seq(tmp_path / "bibbox.db")[1] > 0, 10,
                   "unacknowledged events in the outbox")
        first.kill()                                  # SIGKILL, events in flight
        first.wait(5)
        will = sub.last(f"{ROOT}/availability", where=lambda m: m.json()["state"] == "offline")
        assert will.json() == {**will.json(), "reason": "connection_lost", "boot_id": "boot-1"}
        total, left = last_seq(tmp_path / "bibbox.db")
        assert 300 <= total < WRITES, (total, left)
        second = daemon(tmp_path, broker.url, 0, "boot-2")
        try:
            sub.last(f"{ROOT}/availability", where=lambda m: m.json().get("boot_id") == "boot-2"
                     and m.json()["state"] == "online")
            sub.wait_for(lambda ms: len({m.json()["id"] for m in ms
                                         if m.topic.endswith("events")}) >= total, 120,
                         what="every committed event")
            wait_until(lambda: last_seq(tmp_path / "bibbox.db")[1] == 0, 10, "an empty outbox")
        finally:
            second.kill()
            second.wait(5)
    finally:
        if first.poll() is None:
            first.kill()
    seen, order, dups = {}, [], 0
    for m in sub.messages:
        if not m.topic.endswith("events"):
            continue
        ev = json.loads(m.payload)
        if ev["id"] in seen:
            assert seen[ev["id"]] == ev
            dups += 1
            continue
        seen[ev["id"]] = ev
        order.append(ev["seq"])
    assert order == list(range(1, total + 1))
    print(f"killed at seq {total} with {left} unacknowledged; {dups} duplicates")
    sub.stop()
    assert not sub.errors, sub.errors
