"""kill -9 at random points of 200 mixed loadings and pickups.

The simulated locker runs as a real process (``bibbox run`` on a simulated
configuration; its pulses are 0.1 s so 200 operations fit the time budget).
A timer kills it with SIGKILL at a random moment -- in the middle of an HTTP
request, a transaction, a relay pulse, a door opening -- and the driver
restarts it and carries on.  After every kill, with the process gone, the
database is checked; after every restart, the live locker is checked:

* ``PRAGMA integrity_check`` is ``ok``;
* no hold is lost: every hold whose loading the daemon acknowledged (HTTP 200
  from ``/sim/load``) is in the database, and no hold goes back to an earlier
  state (a collected hold stays collected, a ready one is not loading again);
* no event is lost: every outbox row seen at one check is there, unchanged,
  at the next (the simulated locker has no broker, so nothing drains it);
* no event is duplicated except with its own id: ids are unique, ``seq``
  strictly increases across restarts, and no hold is reported ready,
  collected or expired twice;
* no hold is marked collected whose door never opened: each
  ``hold.collected`` follows a ``door.opened`` (pickup) of its compartment
  after the hold was ready;
* after the restart every relay is off (the simulator's pins), the doors
  were re-read (the daemon's view equals the simulator's) and no opening is
  left hanging.
"""

import random
import threading
import time

import pytest

from tests.fault_helpers import (PATRONS, DaemonProcess, Down, get, import_patrons,
                                 post, read_db, wait_until, write_sim_config)

OPERATIONS = 200
STEPS = {"announced": {"loading"}, "loading": {"announced", "ready"},
         "ready": {"collected", "expired"}, "collected": set(), "expired": set()}


def reachable(state):
    seen, todo = set(), [state]
    while todo:
        for nxt in STEPS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen

pytestmark = pytest.mark.slow


class Driver:
    """Drives the locker over HTTP and keeps the ledger of what it was told."""

    def __init__(self, port, rng):
        self.port, self.rng = port, rng
        self.acked_loads = {}        # hold_id -> patron index
        self.waiting = set()         # patrons with a hold not seen collected yet
        self.next_hold = 1
        self.stats = {"load_ok": 0, "load_refused": 0, "pickup_opened": 0,
                      "pickup_denied": 0, "interrupted": 0}

    # -- operations --------------------------------------------------------
    def load(self):
        patron = self.rng.randrange(len(PATRONS))
        hold_id = f"K-{self.next_hold:04d}"
        self.next_hold += 1
        items = [{"barcode": f"{hold_id}-{i}", "title": f"Bog {i}"}
                 for i in range(self.rng.randint(1, 2))]
        status, body = post(self.port, "/sim/load",
                            {"card": PATRONS[patron][0], "items": items, "hold_id": hold_id})
        if status != 200:
            self.stats["load_refused"] += 1
            return
        self.acked_loads[hold_id] = patron      # the daemon said yes: it must keep it
        self.waiting.add(patron)
        self.stats["load_ok"] += 1
        number = body["compartment"]
        wait_until(lambda: get(self.port, "/sim/state")["doors"][str(number)]["open"], 5,
                   what=f"door {number} to spring open for loading")
        post(self.port, f"/sim/doors/{number}", {"open": False})
        wait_until(lambda: self.compartment(number)["state"] != "loading", 5,
                   what=f"compartment {number} loaded")

    def pickup(self):
        if self.waiting and self.rng.random() < 0.85:
            patron = self.rng.choice(sorted(self.waiting))
        else:
            patron = self.rng.randrange(len(PATRONS))
        card, pin = PATRONS[patron]
        if self.rng.random() < 0.1:
            pin = "0000"                         # a wrong PIN now and then
        self.idle()
        post(self.port, "/sim/card", {"data": card + "\r"})
        wait_until(lambda: self.kiosk()["screen"] in ("pin", "denied"), 5, what="PIN screen")
        before = self.kiosk()
        if before["screen"] == "pin":
            post(self.port, "/api/kiosk/pin", {"pin": pin})
            view = wait_until(lambda: (lambda v: v if v["version"] > before["version"]
                                       and v["screen"] != "verifying" else None)(self.kiosk()),
                              5, what="verdict")
            if view["screen"] == "opening":
                self.stats["pickup_opened"] += 1
                for c in view["compartments"]:
                    number = c["number"]
                    if c["status"] == "unavailable":
                        continue
                    wait_until(lambda: get(self.port, "/sim/state")["doors"][str(number)]["open"],
                               5, what=f"door {number} to spring open")
                    post(self.port, f"/sim/doors/{number}", {"open": False})
                wait_until(lambda: self.kiosk()["screen"] in ("receipt", "idle"), 5,
                           what="receipt")
                self.waiting.discard(patron)
            else:
                self.stats["pickup_denied"] += 1
        self.idle()

    # -- looking -------------------------------------------------------------
    def kiosk(self):
        return get(self.port, "/api/kiosk")

    def compartment(self, number):
        state = get(self.port, "/api/status")["state"]
        return next(c for c in state["compartments"] if c["number"] == number)

    def idle(self):
        if self.kiosk()["screen"] in ("pin", "receipt", "denied", "code"):
            post(self.port, "/api/kiosk/action", {"action": "cancel"})

    def step(self):
        occupied = sum(1 for c in get(self.port, "/api/status")["state"]["compartments"]
                       if c["occupied"] or c["state"] != "free")
        if occupied < 6 and (self.rng.random() < 0.5 or not self.acked_loads):
            self.load()
        else:
            self.pickup()


class Checker:
    """The invariants, across every kill."""

    def __init__(self):
        self.outbox = []          # rows seen at the previous check
        self.states = {}          # hold_id -> state at the previous check
        self.checks = 0

    def after_kill(self, state_dir, acked_loads):
        db = read_db(state_dir)
        self.checks += 1
        assert db["integrity"] == "ok"
        for hold_id in acked_loads:
            assert hold_id in db["holds"], f"acknowledged hold {hold_id} lost"
        for hold_id, old in self.states.items():
            new = db["holds"][hold_id]["state"]
            assert new == old or new in reachable(old), f"hold {hold_id}: {old} -> {new}"
        self.states = {h: r["state"] for h, r in db["holds"].items()}
        rows = db["outbox"]
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), "an event id appears twice"
        seqs = [r["seq"] for r in rows]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        by_seq = {r["seq"]: r for r in rows}
        for old in self.outbox:
            assert by_seq.get(old["seq"]) == old, f"event {old['seq']} lost or changed"
        if self.outbox:
            new = [r for r in rows if r["seq"] > self.outbox[-1]["seq"]]
            assert len(new) == len(rows) - len(self.outbox)
        self.outbox = rows
        self.check_events(rows)
        return db

    @staticmethod
    def check_events(rows):
        import json
        once = {}
        ready_at = {}
        for r in rows:
            data = json.loads(r["payload"])
            if r["type"] in ("hold.ready", "hold.collected", "hold.expired"):
                key = (r["type"], data["hold_id"])
                assert key not in once, f"{key} reported twice (seq {once.get(key)}, {r['seq']})"
                once[key] = r["seq"]
            if r["type"] == "hold.ready":
                ready_at[data["hold_id"]] = r["seq"]
        for r in rows:
            if r["type"] != "hold.collected":
                continue
            data = json.loads(r["payload"])
            number, since = data["compartment"], ready_at.get(data["hold_id"], 0)
            opened = [o for o in rows if o["type"] == "door.opened"
                      and since < o["seq"] < r["seq"]
                      and json.loads(o["payload"]).get("compartment") == number
                      and json.loads(o["payload"]).get("purpose") == "pickup"]
            assert opened, f"hold {data['hold_id']} collected without its door seen open"

    @staticmethod
    def after_restart(port):
        sim = get(port, "/sim/state")
        assert set(sim["relays"].values()) == {"off"}, sim["relays"]
        state = get(port, "/api/status")["state"]
        for c in state["compartments"]:
            physical = "open" if sim["doors"][str(c["number"])]["open"] else "closed"
            assert c["door"] == physical, (c, physical)
            assert c["lock"] == "locked"
            assert c["state"] not in ("opening",), c


def test_kill_9_at_random_points_loses_nothing(tmp_path):
    rng = random.Random(20261121)
    config, port, state = write_sim_config(tmp_path)
    import_patrons(config, tmp_path)
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
    driver, checker = Driver(port, rng), Checker()
    kills = 0
    started = time.monotonic()
    daemon.start()
    done = 0
    while done < OPERATIONS:
        timer = threading.Timer(rng.uniform(0.2, 3.0), daemon.kill)
        timer.start()
        try:
            while done < OPERATIONS:
                try:
                    driver.step()
                finally:
                    done += 1
        except (Down, AssertionError) as exc:
            if daemon.alive():          # a real failure, not the kill
                timer.cancel()
                daemon.kill()
                raise AssertionError(f"operation {done} failed: {exc}\n"
                                     + daemon.log_tail()) from exc
            driver.stats["interrupted"] += 1
        timer.cancel()
        timer.join()
        if daemon.alive() and done >= OPERATIONS:
            assert daemon.terminate() == 0
        else:
            daemon.kill()
            kills += 1
        checker.after_kill(state, driver.acked_loads)
        if done < OPERATIONS:
            daemon.start()
            checker.after_restart(port)
    daemon.start()
    checker.after_restart(port)
    daemon.terminate()
    db = checker.after_kill(state, driver.acked_loads)
    elapsed = time.monotonic() - started
    print(f"\n{OPERATIONS} operations, {kills} kills, {checker.checks} checks, "
          f"{elapsed:.0f} s; {driver.stats}; holds: "
          f"{sorted(collections_count(db['holds']).items())}")
    assert kills >= 10, "too few kills to mean anything"
    assert driver.stats["load_ok"] >= 30 and driver.stats["pickup_opened"] >= 15, driver.stats


def collections_count(holds):
    import collections
    return collections.Counter(h["state"] for h in holds.values())
