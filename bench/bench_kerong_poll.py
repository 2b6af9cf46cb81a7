"""What polling a Kerong bus costs: CPU of the bus thread per poll and per
second, and how often it is scheduled, against the simulator on a real pty.

One :class:`~bibbox.hal.kerong.KerongBus` per entry of ``--boards`` (the
13-board, 200-door locker is two buses: 10 + 3).  The simulated boards run
in a child process, as real boards are other devices: the driver's figures
are its own, with no simulator thread taking the GIL from it (``--same-process``
puts the simulator in this process, as ``bibbox demo`` does, and reports its
threads too).  CPU of each thread from ``/proc/self/task/TID/schedstat`` (time
on CPU, times scheduled).  Polls are counted on the simulator's side
(requests it saw).  Asserts nothing.

    python bench/bench_kerong_poll.py [--boards 10,3] [--poll-s 0.08]
        [--idle-poll-s S] [--seconds 10] [--same-process] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pathlib
import pstats
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bibbox.hal.kerong import KerongBus  # noqa: E402
from bibbox.hal.kerong_sim import SimulatedKerongBus  # noqa: E402


def schedstat(tid):
    """(ns on CPU, times scheduled) of thread ``tid`` of this process."""
    with open(f"/proc/self/task/{tid}/schedstat") as fh:
        ns, _, slices = fh.read().split()
    return int(ns), int(slices)


def tids(prefix):
    return [t.native_id for t in threading.enumerate() if t.name.startswith(prefix)]


def _simulate(boards_per_bus, conn, polls):
    """The child process: simulated boards until ``conn`` says stop."""
    sims = [SimulatedKerongBus(range(boards), name=f"b{n}")
            for n, boards in enumerate(boards_per_bus)]

    def count(frame):
        with polls.get_lock():
            polls.value += 1
    for sim in sims:
        sim.on_request = count
    conn.send([sim.path for sim in sims])
    conn.recv()
    for sim in sims:
        sim.close()


class Boards:
    """Simulated buses, here or in a child process; ``paths`` and ``polls()``."""

    def __init__(self, boards_per_bus, same_process):
        self._sims = []
        if same_process:
            self._sims = [SimulatedKerongBus(range(b), name=f"b{n}")
                          for n, b in enumerate(boards_per_bus)]
            self.paths = [sim.path for sim in self._sims]
            return
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._polls = context.Value("q", 0)
        self._proc = context.Process(target=_simulate, args=(boards_per_bus, child, self._polls))
        self._proc.start()
        self.paths = self._conn.recv()

    def polls(self):
        return sum(len(s.requests) for s in self._sims) if self._sims else self._polls.value

    def close(self):
        for sim in self._sims:
            sim.close()
        if not self._sims:
            self._conn.send("stop")
            self._proc.join(10)


def measure(boards_per_bus, poll_s, idle_poll_s, seconds, same_process=False):
    boards = Boards(boards_per_bus, same_process)
    buses = []
    try:
        for n, (count, path) in enumerate(zip(boards_per_bus, boards.paths)):
            locks = {n * 1000 + b * 16 + lock + 1: (b, lock)
                     for b in range(count) for lock in range(16)}
            buses.append(KerongBus(f"b{n}", path, locks, poll_s=poll_s, idle_poll_s=idle_poll_s,
                                   timeout_s=0.1))
        time.sleep(1.0)
        bus_tids, sim_tids = tids("bibbox-kerong-"), tids("sim-kerong-")
        before = {t: schedstat(t) for t in bus_tids + sim_tids}
        polls0 = boards.polls()
        t0 = time.perf_counter()
        time.sleep(seconds)
        elapsed = time.perf_counter() - t0
        polls = boards.polls() - polls0
        after = {t: schedstat(t) for t in bus_tids + sim_tids}
    finally:
        for bus in buses:
            bus.close()
        boards.close()

    def total(group):
        ns = sum(after[t][0] - before[t][0] for t in group)
        slices = sum(after[t][1] - before[t][1] for t in group)
        return ns, slices
    return elapsed, polls, total(bus_tids), (total(sim_tids) if sim_tids else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boards", default="10,3", help="boards on each bus")
    parser.add_argument("--poll-s", type=float, default=0.08)
    parser.add_argument("--idle-poll-s", type=float, default=None,
                        help="poll period of a board at rest (default: --poll-s)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--same-process", action="store_true",
                        help="run the simulator in this process, as bibbox demo does")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the bus threads instead (slower; for where the time goes)")
    args = parser.parse_args(argv)
    boards = [int(b) for b in args.boards.split(",")]
    load0 = os.getloadavg()[0]
    if args.profile:
        profiler = cProfile.Profile()
        original = KerongBus._run

        def profiled(self):
            profiler.enable()
            try:
                original(self)
            finally:
                profiler.disable()
        KerongBus._run = profiled
    elapsed, polls, (bus_ns, bus_sw), sim = measure(
        boards, args.poll_s, args.idle_poll_s, args.seconds, args.same_process)
    print(f"kerong polling: {os.cpu_count()} CPUs, load {load0:.2f} before and "
          f"{os.getloadavg()[0]:.2f} after; buses of {boards} boards, poll_s {args.poll_s}"
          f", idle_poll_s {args.idle_poll_s}, {elapsed:.1f} s, simulator in "
          f"{'this' if args.same_process else 'a child'} process")
    print(f"polls: {polls} ({polls / elapsed:.1f}/s)")
    for what, (ns, sw) in (("bus threads (driver)", (bus_ns, bus_sw)),
                           *([("simulator threads", sim)] if sim else [])):
        print(f"{what}: {100 * ns / 1e9 / elapsed:.3f} % of a core, "
              f"{ns / 1e3 / max(polls, 1):.1f} us CPU a poll, "
              f"{sw / max(polls, 1):.2f} times scheduled a poll")
    if args.profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
