"""Drain benchmark: 10,000 events written while the broker is down, then the
broker comes back.  Prints the time until central (a separate mosquitto_sub
process) has every event, events/s, lost, out of order and duplicates.

    python bench/bench_mqtt_drain.py [n_events]

A real locker (fake clock, real SQLite store with synchronous=FULL) and the
real CentralLink; the broker is a real mosquitto on loopback.  Figures, not
assertions."""

import json
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = str(pathlib.Path(__file__).resolve().parent.parent)
sys.path.insert(0, ROOT)

from bibbox.locker.domain.model import EventType  # noqa: E402
from tests.brokers import Broker  # noqa: E402
from tests.central_helpers import LockerRig  # noqa: E402


class MosquittoSub:
    """mosquitto_sub in its own process, so the subscriber does not share the
    link's interpreter; payload lines are read by a thread."""

    def __init__(self, port, topic):
        self.proc = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-q", "1", "-V",
                                      "mqttv5", "-t", topic, "-t", "bench/marker"],
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines, self.cond = [], threading.Condition()
        self.last_at = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.last_at = time.perf_counter()
                self.cond.notify_all()

    def wait(self, predicate, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.lines), timeout)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def main(n=10_000):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-drain-"))
    broker = Broker(tmp / "broker")
    # The link reaches the broker through a proxy in another process, closed
    # until central's subscriber is in place, so no event can pass unseen.
    proxy = subprocess.Popen([sys.executable, "-m", "tests.brokers", "proxy", str(broker.port)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    proxy_port = int(proxy.stdout.readline())
    rig = LockerRig(tmp / "locker")
    link = rig.link(f"mqtt://127.0.0.1:{proxy_port}")

    def write(locker):
        for start in range(0, n, 100):
            with locker.store.unit() as unit:
                for _ in range(min(100, n - start)):
                    unit.event(EventType.DOOR_CLOSED, {"compartment": 1})
    t = time.perf_counter()
    rig.controller.call(write, timeout=120)
    assert link.health()["connected"] is False
    print(f"queued {n} events in the outbox in {time.perf_counter() - t:.2f} s "
          f"(broker down); outbox depth {rig.outbox_depth()}")
    broker.start()
    sub = MosquittoSub(broker.port, "bibbox/test-1/events")
    while not sub.wait(lambda ls: any("marker" in l for l in ls), 0.2):
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "bench/marker",
                        "-m", "marker"], check=True)
    sub.lines.clear()
    t0 = time.perf_counter()
    proxy.send_signal(signal.SIGUSR1)      # the broker is reachable for the link now
    got_all = sub.wait(lambda ls: len(ls) >= n, 300)
    # duplicates may follow; let the outbox empty too
    deadline = time.perf_counter() + 60
    while rig.outbox_depth() and time.perf_counter() < deadline:
        time.sleep(0.05)
    t_empty = time.perf_counter() - t0
    t_last = (sub.last_at or time.perf_counter()) - t0
    events = [json.loads(l) for l in sub.lines if l.startswith("{")]
    seen, order = set(), []
    for ev in events:
        if ev["id"] not in seen:
            seen.add(ev["id"])
            order.append(ev["seq"])
    lost = n - len(seen)
    out_of_order = sum(1 for a, b in zip(order, order[1:]) if b <= a)
    print(f"delivered {len(seen)} distinct events to central in {t_last:.2f} s "
          f"= {len(seen) / t_last:.0f} events/s (outbox empty after {t_empty:.2f} s)")
    print(f"lost: {lost}   out of order: {out_of_order}   duplicates: {len(events) - len(seen)}"
          f"   all arrived: {bool(got_all)}")
    sub.stop()
    rig.close()
    proxy.kill()
    broker.stop()
    return lost, out_of_order


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
