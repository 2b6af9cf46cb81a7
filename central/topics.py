"""Every MQTT topic Bibbox uses, and nothing else.

The contract (payloads, QoS, retain) is ``docs/asyncapi.yaml``; this module is
the one place in the code where topic names are spelled.  All topics of a
locker live under its root (``Config.topic_root``, by default
``bibbox/<locker id>``), so a broker ACL of one line per locker confines it.
The only exceptions are the Home Assistant discovery topics, which Home
Assistant dictates (``homeassistant/...``).
"""

from __future__ import annotations

import re

HA_PREFIX = "homeassistant"
HA_STATUS = f"{HA_PREFIX}/status"
_HA_ID_RE = re.compile(r"[^a-zA-Z0-9_-]")
_HA_SLUG_RE = re.compile(r"[^a-z0-9]+")


class Topics:
    """The topics of one locker, built from its root.

    Locker publishes: availability (retained, also the will), heartbeat,
    state and ``compartments/<n>`` (retained), events, responses,
    patron/check.  Locker subscribes: ``commands/+``, patron/verdict and,
    with Home Assistant on, ``homeassistant/status``."""

    def __init__(self, root: str):
        root = root.strip("/")
        if not root or any(c in root for c in "+#") or "//" in root:
            raise ValueError(f"invalid MQTT topic root {root!r}")
        self.root = root
        self.availability = f"{root}/availability"
        self.heartbeat = f"{root}/heartbeat"
        self.state = f"{root}/state"
        self.events = f"{root}/events"
        self.responses = f"{root}/responses"
        self.commands_filter = f"{root}/commands/+"
        self.patron_check = f"{root}/patron/check"
        self.patron_verdict = f"{root}/patron/verdict"
        self._command_prefix = f"{root}/commands/"

    def compartment(self, number: int) -> str:
        return f"{self.root}/compartments/{int(number)}"

    def command(self, name: str) -> str:
        return self._command_prefix + name

    def command_name(self, topic: str) -> str | None:
        """The command name of a ``<root>/commands/<name>`` topic, else None."""
        if topic.startswith(self._command_prefix):
            name = topic[len(self._command_prefix):]
            if name and "/" not in name:
                return name
        return None

    def is_response_topic(self, topic: str) -> bool:
        """True for ``<root>/responses`` and ``<root>/responses/<one level>``:
        the only places a locker answers commands (MQTT 5 response topics
        included)."""
        if topic == self.responses:
            return True
        rest = topic[len(self.responses) + 1:] if topic.startswith(self.responses + "/") else ""
        return bool(rest) and not any(c in rest for c in "/+#")


def ha_node_id(locker_id: str) -> str:
    """The Home Assistant node id of a locker (letters, digits, _ and -)."""
    return _HA_ID_RE.sub("_", f"bibbox_{locker_id}")


def ha_discovery(component: str, node_id: str, object_id: str) -> str:
    """``homeassistant/<component>/<node_id>/<object_id>/config``."""
    return f"{HA_PREFIX}/{component}/{node_id}/{object_id}/config"


def ha_entity_id(component: str, object_id: str) -> str:
    """The full Home Assistant entity id ``<component>.<slug>`` for
    ``default_entity_id``: an entity id allows only ``[a-z0-9_]`` (no
    leading, trailing or double ``_``), so the rest becomes ``_``."""
    return f"{component}.{_HA_SLUG_RE.sub('_', object_id.lower()).strip('_')}"
