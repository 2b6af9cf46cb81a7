"""The heartbeat: ``<root>/heartbeat`` every ``mqtt.heartbeat_s`` and right
after each connect (QoS 0, not retained; the next one follows anyway).

The body is ``{"ts", "uptime_s", "boot_id", "outbox_depth", "inflight",
"reader_online", "sensor_faults", "controller_idle_s", "disk_free_bytes",
"cpu_temp_c"}`` (``Heartbeat`` in ``docs/asyncapi.yaml``).
"""

from __future__ import annotations

import time

from bibbox.central import sysinfo, wire


class Heartbeat:
    """One thread calls it (the link's sender).  ``outbox_depth()`` counts
    the outbox now, ``inflight()`` says how many events await a PUBACK,
    ``publish(topic, payload, qos=, retain=)`` sends; ``uptime_s`` counts
    from ``started_mono`` (``time.monotonic()``, by default now)."""

    def __init__(self, *, topic, interval_s, controller, clock, boot_id, state_dir,
                 outbox_depth, inflight, publish, started_mono=None):
        self.topic, self.interval_s = topic, interval_s
        self.controller, self.clock, self.boot_id = controller, clock, boot_id
        self.state_dir = state_dir
        self.outbox_depth, self.inflight, self.publish = outbox_depth, inflight, publish
        self.started_mono = time.monotonic() if started_mono is None else started_mono
        self.next_at = 0.0

    def due_now(self):
        """Send one at the next chance (a new connection)."""
        self.next_at = 0.0

    def seconds_left(self) -> float:
        return self.next_at - time.monotonic()

    def publish_if_due(self):
        if time.monotonic() >= self.next_at:
            self.publish_now()

    def publish_now(self):
        self.next_at = time.monotonic() + self.interval_s
        snap = self.controller.board.get("state") or {}
        faults = sorted(c["number"] for c in snap.get("compartments", [])
                        if c.get("door") == "unknown" or "sensor_flapping" in c.get("alarms", ()))
        healthy_at = getattr(self.controller, "healthy_at", None)
        body = {"ts": round(self.clock.wall(), 3),
                "uptime_s": int(time.monotonic() - self.started_mono),
                "boot_id": self.boot_id,
                "outbox_depth": self.outbox_depth(),
                "inflight": self.inflight(),
                "reader_online": snap.get("reader_online"),
                "library_online": snap.get("library_online"),
                "sensor_faults": faults,
                "controller_idle_s": (None if healthy_at is None
                                      else round(time.monotonic() - healthy_at, 1)),
                "disk_free_bytes": sysinfo.disk_free_bytes(self.state_dir),
                "cpu_temp_c": sysinfo.cpu_temp_c()}
        self.publish(self.topic, wire.dumps(body), qos=wire.QOS_HEARTBEAT, retain=False)
