"""An idle simulated locker: start-up time, CPU, wakeups per thread, memory.

Starts ``bibbox demo`` as a subprocess (on a free loopback port, state in a
temporary directory; ``--mqtt`` also starts a real mosquitto and links the
locker to it, as a real locker runs), measures the time from process start
to the first 200 on ``/`` (the kiosk page), lets it settle, then idles for
``--seconds`` (default 60) and reports:

- CPU as a share of one core, from ``/proc/PID/task/*/schedstat`` (time on
  the CPU in nanoseconds; psutil's 10 ms ticks cannot resolve 0.05 % over a
  minute);
- wakeups per minute for every thread, by name (voluntary and involuntary
  context switches from ``/proc/PID/task/TID/status``).  The daemon runs
  under a small launcher that gives each Python thread its name at the OS
  level (``prctl(PR_SET_NAME)``), for this report only;
- RSS (maximum of one sample a second) and USS at the end.

``--kiosk`` keeps a kiosk long poll open meanwhile, like the page does.
``--sip2`` runs the locker with ``verifier.kind = "sip2"`` against the test
library system started in this process (not the daemon's), so the figure is
the daemon with its SIP2 adapter and loan worker loaded, as in a library.
Targets: first 200 <= 1 s, CPU <= 0.05 % of one core (<= 0.02 % with the
link), RSS <= 45 MB.  Prints figures, asserts nothing.

    python bench/bench_idle.py [--seconds 60] [--kiosk] [--mqtt]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import psutil

# The daemon's environment as firmware/bibbox.service (and scripts/demo.sh) set it.
DAEMON_ENV = {"PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "1"}
ROOT = pathlib.Path(__file__).resolve().parent.parent
SETTLE_S = 2.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_200(url, proc, timeout=30.0):
    """Poll ``url`` until it answers 200; the perf_counter time it did."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bibbox demo exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return time.perf_counter()
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


# Run the daemon with OS-level thread names (Python 3.11 does not set them).
LAUNCHER = """
import ctypes, sys, threading
_libc = ctypes.CDLL(None)
_inner = threading.Thread._bootstrap_inner
def _named(self):
    _libc.prctl(15, self.name.encode()[:15], 0, 0, 0)   # PR_SET_NAME
    return _inner(self)
threading.Thread._bootstrap_inner = _named
_libc.prctl(15, b"main", 0, 0, 0)
import importlib
main = importlib.import_module(sys.argv.pop(1)).main
sys.exit(main(sys.argv[1:]))
"""


def thread_stats(pid):
    """tid -> (name, ns on CPU, context switches) for every thread of ``pid``."""
    stats = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            ns = int((task / "schedstat").read_text().split()[0])
            name = (task / "comm").read_text().strip()
            switches = sum(int(line.split()[1]) for line in
                           (task / "status").read_text().splitlines()
                           if line.endswith("ctxt_switches") or "ctxt_switches:" in line)
        except (OSError, ValueError, IndexError):
            continue                      # the thread ended meanwhile
        stats[int(task.name)] = (name, ns, switches)
    return stats


def kiosk_poller(base, stop):
    """Long-poll the kiosk view as the page does, until ``stop`` is set."""
    version = None
    while not stop.is_set():
        url = base + "/api/kiosk" + ("" if version is None else f"?version={version}")
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                version = json.loads(answer.read())["version"]
        except OSError:
            stop.wait(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kiosk", action="store_true", help="keep a kiosk long poll open")
    parser.add_argument("--mqtt", action="store_true",
                        help="start a mosquitto and link the locker to it")
    parser.add_argument("--sip2", action="store_true",
                        help="verifier sip2 against a test library system in this process")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter whose bibbox to run (another checkout's venv)")
    parser.add_argument("--cli-module", default="bibbox.daemon.cli",
                        help="the CLI module to run (locker.cli before the layering)")
    args = parser.parse_args(argv)

    port = free_port()
    state = tempfile.mkdtemp(prefix="bench-demo-idle-")
    broker = None
    extra = []
    if args.mqtt:
        sys.path.insert(0, str(ROOT))
        from tests.brokers import Broker
        broker = Broker(pathlib.Path(state) / "broker")
        broker.start()
        extra = ["--mqtt", broker.url]
    library = None
    if args.sip2:
        sys.path.insert(0, str(ROOT))
        from tests.library.acs import Library, SipServer
        from tests.library.test_daemon_library import library_config
        library = SipServer(Library(), login_required=True).start()
        extra += ["--config", str(library_config(pathlib.Path(state), "sip2", library.port))]
    env = dict(os.environ, **DAEMON_ENV)
    started = time.perf_counter()
    proc = subprocess.Popen([args.python, "-c", LAUNCHER, args.cli_module, "--log-level", "WARNING",
                             "demo", "--port", str(port), "--state-dir", state, *extra],
                            cwd=state, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        ready = first_200(base + "/", proc)
        process = psutil.Process(proc.pid)
        stop = threading.Event()
        if args.kiosk:
            threading.Thread(target=kiosk_poller, args=(base, stop), daemon=True).start()
        time.sleep(SETTLE_S)
        before, t0 = thread_stats(proc.pid), time.perf_counter()
        rss_max = 0
        while time.perf_counter() - t0 < args.seconds:
            rss_max = max(rss_max, process.memory_info().rss)
            time.sleep(min(1.0, max(0.0, args.seconds - (time.perf_counter() - t0))))
        after, t1 = thread_stats(proc.pid), time.perf_counter()
        rss_end = process.memory_info().rss
        uss = process.memory_full_info().uss
        threads = process.num_threads()
        stop.set()
    finally:
        if broker is not None:
            broker.stop()
        if library is not None:
            library.stop()
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    elapsed = t1 - t0
    per_thread = []
    for tid, (name, ns, switches) in after.items():
        _, ns0, switches0 = before.get(tid, (name, 0, 0))
        per_thread.append((name, tid, (ns - ns0) / 1e9, (switches - switches0) * 60 / elapsed))
    cpu_s = sum(t[2] for t in per_thread)
    cpu_pct = 100 * cpu_s / elapsed
    target = 0.02 if args.mqtt else 0.05
    mib = 1024 * 1024
    print(f"bibbox demo ({'with' if args.kiosk else 'without'} a kiosk long poll, "
          f"{'with' if args.mqtt else 'without'} the MQTT link"
          f"{', verifier sip2' if args.sip2 else ''}), "
          f"{elapsed:.0f} s idle, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"start -> first 200 on /   {ready - started:8.3f} s    target <= 1 s: "
          f"{'met' if ready - started <= 1 else 'MISSED'}")
    print(f"CPU while idle            {cpu_pct:8.4f} % of one core "
          f"({cpu_s * 1000:.2f} ms CPU, schedstat)    target <= {target} %: "
          f"{'met' if cpu_pct <= target else 'MISSED'}")
    print(f"RSS                       {rss_max / 1e6:8.1f} MB max ({rss_max / mib:.1f} MiB), "
          f"{rss_end / 1e6:.1f} MB at the end, USS {uss / 1e6:.1f} MB    target <= 45 MB: "
          f"{'met' if rss_max <= 45e6 else 'MISSED'}")
    print(f"threads                   {threads:8d}; wakeups per minute and CPU while idle:")
    for name, tid, seconds, wakeups in sorted(per_thread, key=lambda t: -t[3]):
        print(f"    {name:16} {tid:>8}  {wakeups:8.1f}/min  {seconds * 1000:8.3f} ms")
    if proc.returncode not in (0, -15) and err:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
