"""An idle central link does not wake: every thread of it waits for work or
for its next real deadline (heartbeat, keepalive), never for a 1 s tick."""

from __future__ import annotations

import threading
import time

import pytest

from tests.brokers import Subscriber, broker, broker_factory  # noqa: F401
from tests.central_helpers import Central, LockerRig, command, contract_validator, wait_until

ROOT = "bibbox/test-1"
LINK_THREADS = ("bibbox-mqtt-send", "bibbox-mqtt-state", "bibbox-mqtt-cmd", "paho-mqtt-client-")


def context_switches(native_id):
    with open(f"/proc/self/task/{native_id}/status") as status:
        return sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)


@pytest.fixture
def rig(tmp_path):
    r = LockerRig(tmp_path / "locker")
    yield r
    r.close()


def test_the_idle_link_threads_do_not_wake_and_the_link_still_answers(broker, rig):
    sub = Subscriber(broker.port, [f"{ROOT}/responses"], validate=contract_validator,
                     qos=1).start()
    link = rig.link(broker.url)                 # heartbeat 300 s, keepalive 300 s
    wait_until(lambda: link.transport.subscribed, 10, "the link's subscriptions")
    central = Central(sub)
    central.response(central.send("get_state", command("get_state", clock=rig.clock)))
    threads = [t for t in threading.enumerate() if t.name.startswith(LINK_THREADS)
               and t in link._threads + [link.commands.thread, link.transport._client._thread]]
    assert len(threads) == 4, [t.name for t in threads]
    time.sleep(0.5)                              # let the answer's wakeups pass
    before = {t.name: context_switches(t.native_id) for t in threads}
    time.sleep(3.2)                              # three ticks of the old 1 s timeouts
    after = {t.name: context_switches(t.native_id) for t in threads}
    assert {n: after[n] - before[n] for n in before} == {n: 0 for n in before}
    rid = central.send("get_state", command("get_state", clock=rig.clock))
    assert central.response(rid)["status"] == "ok"     # work still wakes them at once
    sub.stop()
    assert not sub.errors, sub.errors


def test_the_network_loop_sleeps_until_the_keepalive_deadline_and_pings_then(broker, rig):
    """With a 10 s keepalive the loop wakes once, at the deadline, to ping:
    the broker keeps the connection (no will, no reconnect)."""
    import dataclasses
    cfg = dataclasses.replace(rig.cfg, mqtt=dataclasses.replace(rig.cfg.mqtt, keepalive_s=10))
    link = rig.link(broker.url, cfg=cfg)
    wait_until(lambda: link.transport.subscribed, 10, "the link's subscriptions")
    client = link.transport._client
    assert 9.0 < client.next_deadline_s() <= 10.0
    session = link.transport.session
    pings = []
    client.on_log = lambda c, u, level, text: "PINGRESP" in text and pings.append(text)
    wait_until(lambda: pings, 20, "a PINGRESP")
    assert link.transport.session == session and link.connected
