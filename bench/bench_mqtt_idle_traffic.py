"""Bytes a day for an idle locker at the default heartbeat (300 s) and
keepalive (the config defaults).

Measured, not guessed: the link talks to a real mosquitto through a TCP proxy
that counts every byte of TCP payload (all MQTT framing included) both ways.
Two short runs with shortened intervals give the size of one heartbeat and
of one keepalive exchange; the connect (CONNECT, CONNACK, SUBSCRIBE,
availability, state snapshots, first heartbeat) is counted once.  The daily
figure is extrapolated from those measured sizes.  TCP/IP headers (52 bytes a
segment, IPv4 with timestamps) and TLS records (~22 bytes each, TLS 1.3
AES-GCM) are added as an estimate below the measured figure.

    python bench/bench_mqtt_idle_traffic.py
"""

import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from tests.brokers import Broker, Subscriber, TcpProxy  # noqa: E402
from tests.central_helpers import LockerRig, wait_until  # noqa: E402

DAY = 86400
from bibbox.locker.domain.config import MqttSection

HEARTBEAT_S, KEEPALIVE_S = MqttSection.heartbeat_s, MqttSection.keepalive_s  # the defaults
TCPIP, TLS = 52, 22
DOORS, RECONNECTS = 200, 4


def run(tmp, name, *, heartbeat_s, keepalive_s, seconds):
    broker = Broker(tmp / f"broker-{name}").start()
    proxy = TcpProxy(broker.port)
    rig = LockerRig(tmp / name, mqtt={"heartbeat_s": heartbeat_s})
    sub = Subscriber(broker.port, ["bibbox/test-1/heartbeat"]).start()
    link = rig.link(proxy.url, keepalive_s=keepalive_s)
    wait_until(lambda: link.health()["connected"], 10, "the link")
    sub.wait_for(lambda ms: ms, 10)                 # the first heartbeat is out
    time.sleep(0.5)                                  # let the connect burst settle
    connect_up, connect_down = proxy.bytes_up, proxy.bytes_down
    n0 = len(sub.messages)
    time.sleep(seconds)                              # idle: that is what we measure
    up, down = proxy.bytes_up - connect_up, proxy.bytes_down - connect_down
    heartbeats = len(sub.messages) - n0
    size = len(sub.messages[-1].payload)
    rig.close()
    sub.stop()
    proxy.close()
    broker.stop()
    return connect_up, connect_down, up, down, heartbeats, size


def reconnect_burst(tmp):
    """Bytes both ways of one reconnect that resumes the session (the 4-door
    rig): CONNECT/CONNACK, SUBSCRIBE, availability, the state summary and
    whatever compartments the broker had not acknowledged, the heartbeat."""
    broker = Broker(tmp / "broker-rc").start()
    proxy = TcpProxy(broker.port)
    rig = LockerRig(tmp / "rc", mqtt={"heartbeat_s": 3600})
    sub = Subscriber(broker.port, ["bibbox/test-1/heartbeat"]).start()
    link = rig.link(proxy.url, keepalive_s=60)
    wait_until(lambda: link.health()["connected"], 10, "the link")
    sub.wait_for(lambda ms: ms, 10)
    wait_until(lambda: len(link._state.acked) == 5, 10, "every snapshot acknowledged")
    time.sleep(0.5)
    proxy.sever()
    wait_until(lambda: not link.health()["connected"], 10, "the link down")
    before = proxy.bytes_up + proxy.bytes_down
    sub.clear()
    sub.wait_for(lambda ms: ms, 10)                  # the reconnect's heartbeat is out
    time.sleep(0.5)
    burst = proxy.bytes_up + proxy.bytes_down - before
    rig.close()
    sub.stop()
    proxy.close()
    broker.stop()
    return burst


def state_bytes(doors):
    """(payload bytes of a full state publish, of the resumed-session
    republish) of a ``doors``-door locker, from :mod:`bench_scale`."""
    import logging
    import bench_scale
    import lockers
    from bibbox.daemon.cli import demo_daemon
    logging.disable(logging.WARNING)
    config = lockers.write_locker(doors, tempfile.mkdtemp())
    daemon = demo_daemon(tempfile.mkdtemp(), port=0, config=config)
    messages = doors + 1
    return (bench_scale.reconnect_bytes(daemon, broker_kept=False) + 4 * messages,
            bench_scale.reconnect_bytes(daemon) + 4)      # + MQTT header and packet id


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-idle-"))
    # 1: heartbeats every 5 s, keepalive 60 s (no ping within the run)
    cu, cd, up, down, beats, payload = run(tmp, "hb", heartbeat_s=5, keepalive_s=60,
                                           seconds=30.2)
    hb_bytes = up / beats
    # 2: no heartbeat, keepalive 2 s: PINGREQ/PINGRESP only
    _, _, pu, pd, _, _ = run(tmp, "ka", heartbeat_s=3600, keepalive_s=2, seconds=20.2)
    pings = max(1, round(pu / 2))                  # a PINGREQ is 2 bytes
    ping_up, ping_down = pu / pings, pd / pings
    print(f"connect (CONNECT..first heartbeat): {cu} B up, {cd} B down")
    print(f"one heartbeat: {hb_bytes:.0f} B up (payload {payload} B) over {beats} heartbeats;"
          f" down during them: {down} B")
    print(f"one keepalive: {ping_up:.1f} B up, {ping_down:.1f} B down ({pings} in 20 s)")
    n_hb, n_ping = DAY / HEARTBEAT_S, DAY / KEEPALIVE_S
    mqtt_day = cu + cd + n_hb * hb_bytes + n_ping * (ping_up + ping_down)
    # TCP/IP: each MQTT packet one segment + one bare ACK back; a ping is two
    # segments and one ACK.  TLS: one record per MQTT packet.
    segs = 2 * n_hb + 3 * n_ping + 30
    records = n_hb + 2 * n_ping + 15
    wire_day = mqtt_day + segs * TCPIP + records * TLS
    print(f"idle locker at heartbeat {HEARTBEAT_S} s, keepalive {KEEPALIVE_S} s, one "
          f"connection a day:")
    print(f"  MQTT (measured sizes): {mqtt_day / 1024:.1f} KiB/day "
          f"= {mqtt_day * 30 / 1024 / 1024:.2f} MiB/month")
    print(f"  with TCP/IP and TLS headers (estimate): {wire_day / 1024:.1f} KiB/day "
          f"= {wire_day * 30 / 1024 / 1024:.2f} MiB/month")
    # a day at 200 doors with 4 reconnects that resume the session: the 4-door
    # figures measured above plus the whole 200-door state on top (an upper
    # bound: the 4-door rig's own state is counted twice)
    burst = reconnect_burst(tmp)
    full200, resumed200 = state_bytes(DOORS)
    day200 = mqtt_day + full200 + RECONNECTS * (burst + resumed200)
    print(f"one reconnect, session resumed (4 doors, measured): {burst} B both ways; "
          f"at {DOORS} doors its state is {resumed200} B "
          f"(a new session or a restarted broker: {full200} B)")
    print(f"idle locker at {DOORS} doors, {RECONNECTS} reconnects a day: "
          f"{day200 / 1000:.1f} kB/day MQTT, an upper bound (target <= 200 kB/day), "
          f"{(day200 + RECONNECTS * 40 * TCPIP + RECONNECTS * 20 * TLS + segs * TCPIP + records * TLS) / 1000:.1f} kB/day "
          f"with TCP/IP and TLS headers (estimate; the TCP and TLS handshakes not counted)")


if __name__ == "__main__":
    main()
