"""Home Assistant MQTT discovery (optional, ``mqtt.home_assistant``).

For each compartment: a door (``binary_sensor``, device class ``door``), its
lock (``binary_sensor``, device class ``lock``: on means released) and its
alarms (``binary_sensor``, device class ``problem``, the alarm names as
attributes); for the locker: an alarm sensor and a free-compartment count.
All read the retained state topics, and all use the availability topic, so
Home Assistant shows them unavailable while the locker is offline.  Configs
are retained and published again whenever Home Assistant announces itself
(``homeassistant/status`` = ``online``).  Read-only: no command entities.
"""

from __future__ import annotations

from bibbox.central import topics as topics_mod
from bibbox.central import wire


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
                  "unique_id": f"{node}_{object_id}", "object_id": f"{node}_{object_id}"}
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
