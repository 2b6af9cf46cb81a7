"""Door edge to retained state on the wire: p50/p99 over 500 edges.

A real locker (fake clock, real store) on its controller thread with the real
CentralLink and a real mosquitto on loopback.  Each edge is posted to the
controller as the door-sensor adapter does (``controller.post(DoorChanged(n,
is_open)``; the gpiozero/MockFactory wiring in front of it adds its debounce
time, not measured here) and timed until a subscriber holds the retained
``compartments/<n>`` message showing it.  Forced-door alarms come and go with
the edges (no unlock was asked for); that is part of what is published.

    python bench/bench_mqtt_door_to_wire.py [edges]
"""

import pathlib
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bibbox.locker.domain.messages import DoorChanged  # noqa: E402

from tests.brokers import Broker  # noqa: E402
from tests.central_helpers import LockerRig, wait_until  # noqa: E402


def main(edges=500):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-door-"))
    broker = Broker(tmp / "broker").start()
    rig = LockerRig(tmp / "locker")
    link = rig.link(broker.url)
    wait_until(lambda: link.health()["connected"], 10, "the link")
    topic = "bibbox/test-1/compartments/1"
    seen = {"door": None, "at": 0.0}
    cond = threading.Condition()

    def on_message(client, userdata, msg):
        door = b'"door":"open"' in msg.payload
        with cond:
            seen["door"], seen["at"] = door, time.perf_counter()
            cond.notify_all()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(topic, qos=0)
    sub.loop_start()
    with cond:
        cond.wait_for(lambda: seen["door"] is False, 10)
    latencies = []
    for i in range(edges):
        want = i % 2 == 0
        rig.clock.advance(30)              # no flapping, no held-open alarm
        t0 = time.perf_counter()
        rig.controller.post(DoorChanged(1, want))
        with cond:
            ok = cond.wait_for(lambda: seen["door"] is want, 5)
            t1 = seen["at"]
        if not ok:
            print(f"edge {i} never showed up on the wire")
            continue
        latencies.append((t1 - t0) * 1000)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(f"{len(latencies)} door edges -> retained compartment state at a subscriber:")
    print(f"  p50 {q[49]:.2f} ms   p90 {q[89]:.2f} ms   p99 {q[98]:.2f} ms   "
          f"max {latencies[-1]:.2f} ms")
    sub.disconnect()
    sub.loop_stop()
    rig.close()
    broker.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
