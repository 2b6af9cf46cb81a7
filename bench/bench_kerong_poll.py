"""What polling a Kerong bus costs: CPU of the bus thread per poll and per
second, and its context switches, against the simulator on a real pty.

One :class:`~bibbox.hal.kerong.KerongBus` with ``--boards`` boards (the
13-board, 200-door locker is two buses: 10 + 3), the simulator in the same
process on its own thread; CPU of each thread from
``/proc/self/task/TID/schedstat`` (time on CPU, times scheduled).  Polls are
counted on the simulator's side (requests it saw).  Asserts nothing.

    python bench/bench_kerong_poll.py [--boards 10,3] [--poll-s 0.09]
        [--idle-poll-s S] [--seconds 10] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
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


def measure(boards_per_bus, poll_s, idle_poll_s, seconds):
    sims, buses = [], []
    for n, boards in enumerate(boards_per_bus):
        sim = SimulatedKerongBus(range(boards), name=f"b{n}")
        locks = {n * 1000 + b * 16 + lock + 1: (b, lock)
                 for b in range(boards) for lock in range(16)}
        kwargs = {} if idle_poll_s is None else {"idle_poll_s": idle_poll_s}
        bus = KerongBus(f"b{n}", sim.path, locks, poll_s=poll_s, timeout_s=0.1, **kwargs)
        sims.append(sim)
        buses.append(bus)
    time.sleep(1.0)
    bus_tids, sim_tids = tids("bibbox-kerong-"), tids("sim-kerong-")
    before = {t: schedstat(t) for t in bus_tids + sim_tids}
    polls0 = sum(len(s.requests) for s in sims)
    t0 = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - t0
    polls = sum(len(s.requests) for s in sims) - polls0
    after = {t: schedstat(t) for t in bus_tids + sim_tids}
    for bus in buses:
        bus.close()
    for sim in sims:
        sim.close()

    def total(group):
        ns = sum(after[t][0] - before[t][0] for t in group)
        slices = sum(after[t][1] - before[t][1] for t in group)
        return ns, slices
    return elapsed, polls, total(bus_tids), total(sim_tids)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boards", default="10,3", help="boards on each bus")
    parser.add_argument("--poll-s", type=float, default=0.09)
    parser.add_argument("--idle-poll-s", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the bus threads instead (slower; for where the time goes)")
    args = parser.parse_args(argv)
    boards = [int(b) for b in args.boards.split(",")]
    load0 = os.getloadavg()[0]
    if args.profile:
        profiler = cProfile.Profile()
        threading.setprofile(lambda *a: None)
        original = KerongBus._run

        def profiled(self):
            profiler.enable()
            try:
                original(self)
            finally:
                profiler.disable()
        KerongBus._run = profiled
    elapsed, polls, (bus_ns, bus_sw), (sim_ns, sim_sw) = measure(
        boards, args.poll_s, args.idle_poll_s, args.seconds)
    print(f"kerong polling: {os.cpu_count()} CPUs, load {load0:.2f} before and "
          f"{os.getloadavg()[0]:.2f} after; buses of {boards} boards, poll_s {args.poll_s}"
          f", idle_poll_s {args.idle_poll_s}, {elapsed:.1f} s")
    per_s = polls / elapsed
    print(f"polls: {polls} ({per_s:.1f}/s)")
    for what, ns, sw in (("bus threads (driver)", bus_ns, bus_sw),
                         ("simulator threads", sim_ns, sim_sw)):
        print(f"{what}: {100 * ns / 1e9 / elapsed:.3f} % of a core, "
              f"{ns / 1e3 / max(polls, 1):.1f} us CPU a poll, "
              f"{sw / max(polls, 1):.2f} times scheduled a poll")
    if args.profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
