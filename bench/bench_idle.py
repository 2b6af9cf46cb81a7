"""An idle simulated locker: start-up time, CPU and memory.

Starts ``bibbox demo`` as a subprocess (``python -m bibbox.daemon.cli demo`` from
this checkout, on a free loopback port, state in a temporary directory),
measures the time from process start to the first 200 on ``/`` (the kiosk
page), lets it settle, then measures over ``--seconds`` (default 60) of
idling: CPU (psutil ``cpu_times`` delta, user + system, children included)
as a share of one core, and RSS (sampled every second; the maximum, and
the USS at the end).  ``--kiosk`` keeps a kiosk long poll open meanwhile
(``GET /api/kiosk?version=N`` in a loop, like the page does).

Targets: first 200 <= 1 s, CPU <= 0.05 % of one core, RSS <= 45 MB.
Prints figures, asserts nothing.

    python bench/bench_idle.py [--seconds 60] [--kiosk]
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


def cpu_seconds(process):
    t = process.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


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
    args = parser.parse_args(argv)

    port = free_port()
    state = tempfile.mkdtemp(prefix="bench-demo-idle-")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bibbox.daemon.cli", "--log-level", "WARNING",
                             "demo", "--port", str(port), "--state-dir", state],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        ready = first_200(base + "/", proc)
        process = psutil.Process(proc.pid)
        stop = threading.Event()
        if args.kiosk:
            threading.Thread(target=kiosk_poller, args=(base, stop), daemon=True).start()
        time.sleep(SETTLE_S)
        cpu0, t0 = cpu_seconds(process), time.perf_counter()
        rss_max = 0
        while time.perf_counter() - t0 < args.seconds:
            rss_max = max(rss_max, process.memory_info().rss)
            time.sleep(min(1.0, max(0.0, args.seconds - (time.perf_counter() - t0))))
        cpu1, t1 = cpu_seconds(process), time.perf_counter()
        rss_end = process.memory_info().rss
        uss = process.memory_full_info().uss
        threads = process.num_threads()
        stop.set()
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    cpu_pct = 100 * (cpu1 - cpu0) / (t1 - t0)
    mib = 1024 * 1024
    print(f"bibbox demo ({'with' if args.kiosk else 'without'} a kiosk long poll), "
          f"{t1 - t0:.0f} s idle, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"start -> first 200 on /   {ready - started:8.3f} s    target <= 1 s: "
          f"{'met' if ready - started <= 1 else 'MISSED'}")
    print(f"CPU while idle            {cpu_pct:8.4f} % of one core "
          f"({(cpu1 - cpu0) * 1000:.1f} ms CPU)    target <= 0.05 %: "
          f"{'met' if cpu_pct <= 0.05 else 'MISSED'}")
    print(f"RSS                       {rss_max / 1e6:8.1f} MB max ({rss_max / mib:.1f} MiB), "
          f"{rss_end / 1e6:.1f} MB at the end, USS {uss / 1e6:.1f} MB    target <= 45 MB: "
          f"{'met' if rss_max <= 45e6 else 'MISSED'}")
    print(f"threads                   {threads:8d}")
    if proc.returncode not in (0, -15) and err:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
