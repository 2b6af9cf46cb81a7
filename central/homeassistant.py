"""Home Assistant MQTT discovery (optional, ``mqtt.home_assistant``).

For each compartment: a door (``binary_sensor``, device class ``door``), its
lock (``binary_sensor``, device class ``lock``: on means released) and its
alarms (``binary_sensor``, device class ``problem``, the alarm names as
attributes); for the locker: an alarm sensor and a free-compartment count.
All read the retained state topics, and all use the availability topic, so
Home Assistant shows them unavailable while the locker is offline.  Each
names its entity id with ``default_entity_id`` (the full id, e.g.
``binary_sensor.bibbox_<locker id>_door_1``; ``object_id`` was deprecated by
Home Assistant 2025.10 and is ignored from 2026.4).  Configs
are retained and published again whenever Home Assistant announces itself
(``homeassistant/status`` = ``online``) and after every connect
(:class:`Discovery`).  Read-only: no command entities.
"""

from __future__ import annotations

import logging

from bibbox.central import topics as topics_mod
from bibbox.central import wire

log = logging.getLogger("bibbox.mqtt")


def discovery_messages(*, locker_id, name, version, topics, compartments):
    """``[(topic, payload_bytes), ...]`` for every entity of the locker."""
    node = topics_mod.ha_node_id(locker_id)
    device = {"identifiers": [node], "name": name, "manufacturer": "Bibbox",
              "model": "Pickup locker", "sw_version": version}
    availability = {"availability_topic": topics.availability,
                    "availability_template": "{{ value_json.state }}",
                    "payload_available": "online", "payload_not_available": "offline"}
    out = []

    def add(component, object_id, config):
        config = {**config, **availability, "device": device,
                  "unique_id": f"{node}_{object_id}",
                  "default_entity_id": topics_mod.ha_entity_id(component,
                                                               f"{node}_{object_id}")}
        out.append((topics_mod.ha_discovery(component, node, object_id), wire.dumps(config)))

    for n in sorted(compartments):
        state = topics.compartment(n)
        add("binary_sensor", f"door_{n}", {
            "name": f"Compartment {n} door", "device_class": "door",
            "state_topic": state,
            "value_template": "{{ {'open': 'ON', 'closed': 'OFF'}"
                              ".get(value_json.door, 'None') }}"})
        add("binary_sensor", f"lock_{n}", {
            "name": f"Compartment {n} lock", "device_class": "lock",
            "state_topic": state,
            "value_template": "{{ 'ON' if value_json.lock == 'released' else 'OFF' }}"})
        add("binary_sensor", f"alarm_{n}", {
            "name": f"Compartment {n} alarm", "device_class": "problem",
            "state_topic": state,
            "value_template": "{{ 'ON' if value_json.alarms else 'OFF' }}",
            "json_attributes_topic": state,
            "json_attributes_template": "{{ {'alarms': value_json.alarms,"
                                        " 'state': value_json.state} | tojson }}"})
    add("binary_sensor", "alarm", {
        "name": "Locker alarm", "device_class": "problem", "state_topic": topics.state,
        "value_template": "{{ 'ON' if value_json.alarms else 'OFF' }}"})
    add("sensor", "free", {
        "name": "Free compartments", "state_topic": topics.state,
        "value_template": "{{ value_json.counts.free }}", "state_class": "measurement"})
    return out


class Discovery:
    """When to publish the discovery configs: after each connect and when
    Home Assistant announces itself.  :meth:`request` and :meth:`on_status`
    may run on paho's thread; :meth:`publish_if_due` on the link's sender.
    ``publish(topic, payload, qos=, retain=)`` sends."""

    def __init__(self, *, locker_id, name, version, topics, compartments, publish):
        self.locker_id, self.name, self.version = locker_id, name, version
        self.topics, self.compartments, self.publish = topics, compartments, publish
        self.due = False

    def request(self):
        self.due = True

    def on_status(self, payload: bytes) -> bool:
        """A message on ``homeassistant/status``; True if it asks for discovery."""
        if payload.strip() != b"online":
            return False
        log.info("Home Assistant is online; discovery published again")
        self.due = True
        return True

    def publish_if_due(self, state_view):
        """Publish every config if due; the compartments are those of
        ``state_view()`` (the Board's state) or else the configured ones."""
        if not self.due:
            return
        self.due = False
        numbers = [c["number"] for c in (state_view() or {}).get("compartments", [])] \
            or list(self.compartments)
        for topic, payload in discovery_messages(
                locker_id=self.locker_id, name=self.name, version=self.version,
                topics=self.topics, compartments=numbers):
            self.publish(topic, payload, qos=wire.QOS_HA_DISCOVERY, retain=True)
