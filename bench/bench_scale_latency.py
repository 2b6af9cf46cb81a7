"""The latencies of :mod:`bench_scale` on a simulated Kerong locker, in
process, with the daemon running:

- accepted PIN -> first unlock frame on the bus: from
  ``controller.post(PinEntered)`` (by default ``TYPED_GAP_S`` after the
  page's ``pin_typed`` hint) to the simulator having read the unlock
  request off its side of the pty (``SimulatedKerongBus.on_request``, on the
  simulator's thread).  The floor, measured right before and after each
  pickup, is one pty write -> read of the same 5 bytes (:class:`bench_pickup.Floor`);
  each pickup is paired with the mean of its two floor samples.  The
  opening is durable before the pulse (write-ahead: one SQLite commit, WAL,
  ``synchronous=FULL``): with the hint it is written at ``pin_typed``, off
  the path (ADR 10); with OK alone in OK's own turn, on it.  A second floor
  samples one such commit in a scratch database beside the locker's, the
  same way.  The lock driver's ``pulse`` -> frame is timed on its own (what
  the bus adds), so is PIN -> the request's write to the port
  (``Link.send``, whichever thread makes it), and the unlocks that met a
  poll exchange on the wire are counted.
- door change on a board -> controller: from ``set_door`` on the simulated
  board to the controller's DoorChanged handler having returned, for a door
  on the last board of the fullest bus (10 boards from 160 doors on), while
  its board is polled fast (the door moved within the last 5 s);
- the same for a door forced while its board is at rest (nothing moved for
  more than 5 s): polled every ``idle_poll_s``; a few samples, the maximum.

Asserts nothing.  A paired difference <= 0 is noise, never a target met.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import tempfile
import threading
import time
from typing import NamedTuple

import bench_pickup
from bench_pickup import PIN, Floor, place, seed, wait_view

now = time.perf_counter
ACTIVE_S = 5.0               # bibbox.hal.serial_link.ACTIVE_S: how long a moved board is polled fast


class Latencies(NamedTuple):
    pin_ms: float            # PIN -> unlock frame p99
    floor_ms: float          # the floor's p99
    paired_ms: float         # paired difference p99
    durable_paired_ms: float  # paired difference p99 against pty + one commit
    commit_ms: float         # one write-ahead commit's p99
    bus_ms: float            # lock driver pulse() -> unlock frame p99
    met: int                 # unlocks that waited for a poll exchange on the wire
    handed_ms: float         # PIN -> the driver writing the unlock frame to the port, p99
    door_ms: float           # door -> controller p99, board polled fast
    rest_ms: float           # forced door at rest -> controller, max


class CommitFloor:
    """One write-ahead's worth of disk: a one-row commit in a scratch
    database in ``directory``, opened as the store opens its own."""

    def __init__(self, directory):
        from bibbox.locker.store.sqlite import connect
        self.conn = connect(os.path.join(directory, "commit-floor.db"))
        self.conn.execute("CREATE TABLE IF NOT EXISTS floor (at REAL)")

    def sample(self):
        t = now()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO floor VALUES (?)", (t,))
        self.conn.execute("COMMIT")
        return now() - t

    def close(self):
        self.conn.close()


def p99(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))] * 1e3 if values else float("nan")


TYPED_GAP_S = (0.25, 0.8)    # last digit -> OK on a touch screen, drawn uniformly
# A status request read this shortly before the pulse (or after it) was still
# being answered when the unlock was queued: 9 reply bytes at 19200 baud + 1 ms.
REPLY_S = 9 * 10 / 19200 + 0.001


def latencies(config, runs=30, door_runs=40, rest_runs=3, pin_rest_s=0.0,
              typed_gap_s=TYPED_GAP_S):
    """The :class:`Latencies` of the locker in ``config``; with ``pin_rest_s``
    (> ACTIVE_S) every PIN comes when every board is at rest again, as at a
    locker that is not emptied by one patron after the other.  With
    ``typed_gap_s`` (lo, hi) the page's ``pin_typed`` hint comes first, and
    OK a gap drawn from [lo, hi] s later; None: OK alone, no hint."""
    import logging
    from bibbox.daemon.cli import SWITCH_INTERVAL_S, demo_daemon
    from bibbox.locker.app import controller as controller_mod
    from bibbox.locker.domain import messages as msg
    from bibbox.locker.domain.messages import KioskAction, PinEntered
    from bibbox.hal.serial_link import Link
    logging.disable(logging.WARNING)
    state = tempfile.TemporaryDirectory(prefix="bench-scale-lat-")
    daemon = demo_daemon(state.name, port=0, config=config)
    original, send = controller_mod.HANDLERS[msg.DoorChanged], Link.send
    floor = None
    try:
        patrons = seed(daemon, runs)
        daemon.start()
        gc.freeze()              # as `bibbox run` and `bibbox demo` do once started (daemon/cli.py)
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        sim, board, controller = daemon.simulator, daemon.controller.board, daemon.controller
        unlocked, unlocked_at = threading.Event(), [0.0]

        met = []                       # per pickup: did the unlock wait for a poll exchange?

        def watcher():
            last_status = [-1.0]

            def on_request(frame):
                if frame[2] == 0x30:
                    last_status[0] = now()
                elif frame[2] == 0x31 and not unlocked.is_set():
                    unlocked_at[0] = now()
                    met.append(last_status[0] >= pulsed_at[0] - REPLY_S)
                    unlocked.set()
            return on_request
        for bus in sim.buses.values():
            bus.on_request = watcher()
        handled = threading.Event()

        def timed(locker, item):
            original(locker, item)
            handled.set()
        controller_mod.HANDLERS[msg.DoorChanged] = timed
        floor, commits = Floor(19200, 0.1), CommitFloor(state.name)
        drivers, pulsed_at = daemon.locker.relays, [0.0]
        pulse = drivers.pulse

        def timed_pulse(compartment, seconds):
            if not pulsed_at[0]:
                pulsed_at[0] = now()
            return pulse(compartment, seconds)
        drivers.pulse = timed_pulse
        handed_at = [0.0]

        def timed_send(link, frame):              # every request's write (os.write)
            if frame[2] == 0x31 and not handed_at[0]:
                handed_at[0] = now()
            return send(link, frame)
        Link.send = timed_send
        numbers = sorted(sim.on_board)
        pin_s, floor_s, door_s, rest_s = [], [], [], []
        bus_s, commit_s, handed_s = [], [], []
        frame = bytes.fromhex("0200300335")
        gaps = random.Random(5)
        for i, (card, patron_hash) in enumerate(patrons):
            compartment = numbers[(i * 17) % len(numbers)]
            place(daemon, i, patron_hash, compartment)
            view, _ = wait_view(board, board.get("kiosk"), lambda v: v["screen"] == "idle")
            before, commit_before = floor.sample(frame)[0], commits.sample()
            sim.write_card(card.encode() + b"\r")
            view, _ = wait_view(board, view, lambda v: v["screen"] == "pin")
            time.sleep(pin_rest_s)
            if typed_gap_s is not None:
                controller.post(KioskAction("pin_typed"))
                time.sleep(gaps.uniform(*typed_gap_s))
            unlocked.clear()
            pulsed_at[0] = handed_at[0] = 0.0
            posted = now()
            controller.post(PinEntered(PIN))
            if not unlocked.wait(5):
                raise TimeoutError("no unlock frame on the bus")
            pin_s.append(unlocked_at[0] - posted)
            bus_s.append(unlocked_at[0] - pulsed_at[0])
            handed_s.append(handed_at[0] - posted)
            after = floor.sample(frame)[0]
            floor_s.append((before + after) / 2)
            commit_s.append((commit_before + commits.sample()) / 2)
            view, _ = wait_view(board, view, lambda v: v["screen"] == "opening" and all(
                c["status"] == "open" for c in v["compartments"]))
            sim.set_door(compartment, False)
            view, _ = wait_view(board, view, lambda v: v["screen"] == "receipt")
            controller.post(KioskAction("cancel"))
            wait_view(board, view, lambda v: v["screen"] == "idle")

        def where(number):
            bus, board_no, lock = sim.on_board[number]
            return len(bus.boards), board_no, lock
        compartment = max(numbers, key=where)          # last board of the fullest bus

        def door_latency(open_):
            handled.clear()
            t0 = now()
            sim.set_door(compartment, open_)
            return now() - t0 if handled.wait(5.0) else None
        door_latency(True)                             # its board moves from now on
        door_latency(False)
        phases = random.Random(11)                     # any phase of the poll period alike
        for run in range(door_runs):
            time.sleep(0.3 + phases.uniform(0.0, 0.1))
            door_s.append(door_latency(run % 2 == 0))
        if sim.door_is_open(compartment):
            door_latency(False)
        for run in range(rest_runs):
            time.sleep(ACTIVE_S + 0.5 + 0.17 * run)  # the board is at rest again
            rest_s.append(door_latency(True))
            time.sleep(0.2)
            door_latency(False)
    finally:
        Link.send = send
        gc.unfreeze()
        sys.setswitchinterval(switch_interval)
        controller_mod.HANDLERS[msg.DoorChanged] = original
        if floor is not None:
            floor.close()
            commits.close()
        daemon.stop()
        state.cleanup()
    paired = [p - f for p, f in zip(pin_s, floor_s)]
    durable = [p - f - c for p, f, c in zip(pin_s, floor_s, commit_s)]
    return Latencies(p99(pin_s), p99(floor_s), p99(paired), p99(durable), p99(commit_s),
                     p99(bus_s), sum(met), p99(handed_s),
                     p99([d for d in door_s if d is not None]),
                     max((r for r in rest_s if r is not None), default=float("nan")) * 1e3)


del bench_pickup
