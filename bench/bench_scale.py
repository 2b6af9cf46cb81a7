"""The locker at 6, 48, 200 and 500 doors in one run: start -> serving, idle
CPU (schedstat, Kerong bus polling included), RSS, and the controller's idle
turn, state snapshot and the state bytes one MQTT reconnect republishes;
accepted PIN -> first unlock frame on the bus against its interleaved floor,
and door change on a board -> controller (:mod:`bench_scale_latency`).

Each size is a simulated locker on Kerong KR-CU16 boards (16 doors a board,
up to 10 boards a bus, :mod:`lockers`), run as ``bibbox demo --config FILE``
in a subprocess (measured as :mod:`bench_idle` does), then in process for
the controller turn (:mod:`bench_core_turn`'s way).  The idle CPU is split:
the byte-for-byte board simulator runs in the demo process (its threads are
named ``sim-kerong-*``), a real locker has boards instead, so the figure
without it is the locker's own.  Every daemon is stopped and every demo
process reaped before the next size, also on an error or Ctrl-C; the run
ends by checking that no child process and no bus thread is left.  Prints a
table and the machine's load; asserts nothing.  Targets at 200 doors: start
<= 1 s, idle CPU <= 0.05 % of a core, RSS <= 45 MB.

    python bench/bench_scale.py [--seconds 20] [--sizes 6,48,200,500]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import bench_idle  # noqa: E402
import bench_scale_latency  # noqa: E402
import lockers  # noqa: E402


def installed_env():
    """The environment of a locker as ``pip install`` leaves it: byte code
    compiled once (pip does it at install time), not again at every start
    as ``PYTHONDONTWRITEBYTECODE`` (set on some development machines) would
    make this editable checkout do -- about 0.2 s more at every start; and
    ``MALLOC_ARENA_MAX=1``, as ``firmware/bibbox.service`` and ``demo.sh``
    run the daemon."""
    env = dict(os.environ, **bench_idle.DAEMON_ENV)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    *(str(bench_idle.ROOT / d) for d in PACKAGES)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return env


PACKAGES = ("central", "daemon", "hal", "library", "locker", "web")


@contextlib.contextmanager
def demo_process(config, port, state, env):
    """``bibbox demo`` on ``config`` as a child process, terminated and
    reaped when the block ends however it ends (killed if SIGTERM does not
    stop it within 10 s)."""
    proc = subprocess.Popen([sys.executable, "-c", bench_idle.LAUNCHER, "bibbox.daemon.cli",
                             "--log-level", "WARNING", "demo", "--config", config,
                             "--port", str(port), "--state-dir", state],
                            cwd=state, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except BaseException:            # a timeout, or Ctrl-C while waiting
            proc.kill()
            proc.wait()


def run_idle(config, seconds, env):
    """(start -> first 200 s, idle CPU % of a core, of it the simulator's %,
    RSS max bytes) of the demo."""
    port = bench_idle.free_port()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as state:
        started = time.perf_counter()
        with demo_process(config, port, state, env) as proc:
            ready = bench_idle.first_200(f"http://127.0.0.1:{port}/", proc) - started
            process = psutil.Process(proc.pid)
            time.sleep(bench_idle.SETTLE_S)
            before, t0 = bench_idle.thread_stats(proc.pid), time.perf_counter()
            rss = 0
            while time.perf_counter() - t0 < seconds:
                rss = max(rss, process.memory_info().rss)
                time.sleep(0.5)
            after, t1 = bench_idle.thread_stats(proc.pid), time.perf_counter()
    used = {tid: ns - before.get(tid, (name, 0, 0))[1] for tid, (name, ns, _) in after.items()}
    simulator = sum(ns for tid, ns in used.items() if after[tid][0].startswith("sim-kerong"))
    share = 100 / 1e9 / (t1 - t0)
    return ready, share * sum(used.values()), share * simulator, rss


def core_turn(config, turns=2000):
    """(idle turn us, state snapshot after a change us) in process."""
    from bibbox.daemon.cli import demo_daemon
    import logging
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-scale-turn-") as state:
        daemon = demo_daemon(state, port=0, config=config)
        try:
            locker = daemon.locker
            t = time.perf_counter()
            for _ in range(turns):
                locker.next_deadline()
                locker.on_time()
                locker.flush()
            idle = (time.perf_counter() - t) / turns * 1e6
            t = time.perf_counter()
            for _ in range(200):
                locker._dirty(state=True)
                locker.flush()
            snapshot_us = (time.perf_counter() - t) / 200 * 1e6
            return idle, snapshot_us, reconnect_bytes(daemon)
        finally:
            daemon.stop()                # its buses poll until stopped


def reconnect_bytes(daemon, broker_kept=True):
    """Payload bytes (topic + payload) the state publisher sends after one
    reconnect with nothing changed: with the session resumed (the broker
    acknowledged every snapshot) only the summary with its digest; with
    ``broker_kept=False`` (a new session, a broker restart) everything."""
    from bibbox.central.state_publisher import StatePublisher
    from bibbox.central.topics import Topics
    sent, mids = [], iter(range(1, 1 << 30))

    class Sent:
        ok = True

        def __init__(self):
            self.mid = next(mids)

    def publish(topic, payload, **kw):
        sent.append(len(topic) + len(payload))
        info = Sent()
        publisher.acknowledged(1, info.mid, False)         # the broker's PUBACK
        return info
    publisher = StatePublisher(board=daemon.controller.board, topics=Topics("bench"),
                               clock=daemon.clock, publish=publish)
    daemon.locker._dirty(state=True)
    daemon.locker.flush()
    publisher.republish(1)
    publisher.take_acks()
    sent.clear()
    publisher.republish(1, broker_kept=broker_kept)
    return sum(sent)


def leftovers():
    """What a run may not leave behind: child processes and bus threads."""
    children = psutil.Process().children(recursive=True)
    threads = [t.name for t in threading.enumerate() if "kerong" in t.name]
    return children, threads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sizes", default="6,48,200,500")
    parser.add_argument("--pin-rest", type=float, default=0.0, metavar="S",
                        help="wait S s at the PIN screen of each pickup (5.5: every board at "
                             "rest again, as at a locker not emptied patron after patron)")
    parser.add_argument("--pickups", type=int, default=30)
    parser.add_argument("--typed-gap", default="%g,%g" % bench_scale_latency.TYPED_GAP_S,
                        metavar="LO,HI", help="s from the pin_typed hint to OK, drawn "
                        "uniformly; 'none': OK alone, no hint")

    args = parser.parse_args(argv)
    typed_gap = None if args.typed_gap == "none" else tuple(
        float(x) for x in args.typed_gap.split(","))
    env = installed_env()
    load0 = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-configs-") as directory:
        for doors in (int(s) for s in args.sizes.split(",")):
            config = lockers.write_locker(doors, directory)
            ready, cpu, sim_cpu, rss = run_idle(config, args.seconds, env)
            idle_us, state_us, reconnect = core_turn(config)
            lat = bench_scale_latency.latencies(config, runs=args.pickups,
                                                pin_rest_s=args.pin_rest,
                                                typed_gap_s=typed_gap)
            rows.append((doors, ready, cpu, sim_cpu, rss, idle_us, state_us, reconnect, lat))
            print(f"{doors} doors done (load {os.getloadavg()[0]:.2f})", file=sys.stderr)
    children, threads = leftovers()
    print(f"bibbox at scale: {os.cpu_count()} CPUs, load {load0[0]:.2f} before and "
          f"{os.getloadavg()[0]:.2f} after (the machine is shared: figures include "
          f"its noise); {args.seconds:.0f} s idle a size; {args.pickups} pickups, "
          f"{args.pin_rest:g} s at each PIN screen, OK "
          + ("alone (no pin_typed hint)" if typed_gap is None else
             "%g-%g s after the pin_typed hint" % typed_gap) + "; left behind: "
          f"{len(children)} child processes, {len(threads)} bus threads")
    print("| doors | start -> serving | idle CPU, % of a core (without the simulator) | "
          "RSS max | idle turn | state snapshot | bytes per reconnect (session resumed) | "
          "PIN -> unlock frame p99 (floor p99; paired difference p99) | "
          + ("paired p99 against pty + one commit (commit p99) | " if typed_gap is None else
             "one write-ahead commit p99 (made at pin_typed, off the path) | ") +
          "pulse -> frame p99 | "
          "PIN -> frame handed to the port p99 | unlocks that met a poll exchange | "
          "door -> controller p99, door moving | forced door at rest -> controller, max |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for doors, ready, cpu, sim_cpu, rss, idle_us, state_us, reconnect, lat in rows:
        paired = (f"{lat.paired_ms:.2f} ms" if lat.paired_ms > 0
                  else "not above the floor's noise")
        print(f"| {doors} | {ready:.2f} s | {cpu:.3f} % ({cpu - sim_cpu:.3f} %) | "
              f"{rss / 1e6:.1f} MB | {idle_us:.0f} us | {state_us:.0f} us | {reconnect} | "
              f"{lat.pin_ms:.2f} ms ({lat.floor_ms:.2f} ms; {paired}) | "
              + (f"{lat.durable_paired_ms:.2f} ms ({lat.commit_ms:.2f} ms) | "
                 if typed_gap is None else f"{lat.commit_ms:.2f} ms | ") +
              f"{lat.bus_ms:.2f} ms | {lat.handed_ms:.2f} ms | {lat.met} of {args.pickups} | "
              f"{lat.door_ms:.1f} ms | {lat.rest_ms:.0f} ms |")
    print("targets at 200 doors: start <= 1 s, idle CPU <= 0.05 %, RSS <= 45 MB; at every "
          "size: PIN -> unlock frame p99 within 5 ms of the floor, door -> controller p99 "
          "<= poll_s (0.08 s) + 10 ms = 90 ms; a forced door at rest within about a second "
          "(idle_poll_s 0.9 s)")


if __name__ == "__main__":
    main()
