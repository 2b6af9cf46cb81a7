"""Helpers for the central-link tests: the AsyncAPI contract as a validator,
a threaded locker rig, and command builders."""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bibbox.daemon.bootstrap import build_central_link
from bibbox.locker.domain.model import EventType
from bibbox.locker.domain.messages import DoorChanged
from tests.domain_helpers import Rig, wait_until  # noqa: F401  (re-exported)

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"
DOC_URI = "urn:bibbox:asyncapi"
VERSION, BOOT_ID = "9.9.9-test", "boot-test"


class Contract:
    """``docs/asyncapi.yaml`` loaded once: schemas by name and a channel
    matcher that finds the message schema of any topic."""

    _instance = None

    @classmethod
    def load(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        self.doc = yaml.safe_load(DOC_PATH.read_text())
        self.schemas = self.doc["components"]["schemas"]
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)
        self._validators = {}
        self.channels = []
        for name, ch in self.doc["channels"].items():
            pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(ch["address"])) + "$"
            schemas = []
            for m in ch["messages"].values():
                msg = self.resolve(m["$ref"])
                schemas.append(msg["payload"]["$ref"].rsplit("/", 1)[1])
            self.channels.append((name, re.compile(pattern), schemas))

    def resolve(self, ref):
        node = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def validator(self, schema_name):
        v = self._validators.get(schema_name)
        if v is None:
            v = Draft202012Validator({"$ref": f"{DOC_URI}#/components/schemas/{schema_name}"},
                                     registry=self.registry, format_checker=FormatChecker())
            self._validators[schema_name] = v
        return v

    def validate(self, schema_name, obj):
        errors = sorted(self.validator(schema_name).iter_errors(obj), key=str)
        if errors:
            raise AssertionError(f"{schema_name}: " + "; ".join(
                f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]))

    def channel_of(self, topic):
        for name, rx, schemas in self.channels:
            if rx.match(topic):
                return name, schemas
        return None, []

    def validate_message(self, topic, payload: bytes):
        """Raise AssertionError unless ``topic`` is a channel of the contract
        and ``payload`` matches its message schema."""
        name, schemas = self.channel_of(topic)
        if name is None:
            raise AssertionError(f"topic {topic!r} is not in the contract")
        try:
            obj = json.loads(payload)
        except ValueError:
            obj = payload.decode("utf-8", "replace")
        self.validate(schemas[0], obj)
        return name, obj


def contract_validator(topic, payload):
    Contract.load().validate_message(topic, payload)


class LockerRig:
    """A real Locker on a FakeClock with a real store, its Controller running
    on its own thread (as in production), and links made on demand."""

    def __init__(self, tmp_path, **sections):
        self.rig = Rig(tmp_path, **sections)
        self.rig.start()
        self.cfg, self.store, self.clock = self.rig.cfg, self.rig.store, self.rig.clock
        self.controller = self.rig.controller
        self.locker = self.rig.locker
        self.controller.start()
        self.links = []

    def link(self, url, start=True, cfg=None, **attrs):
        link = build_central_link(cfg or self.cfg, controller=self.controller,
                                  store=self.store, clock=self.clock, version=VERSION,
                                  boot_id=BOOT_ID, url=url)
        link.reconnect_min_s, link.reconnect_max_s = 0.1, 0.5
        for k, v in attrs.items():
            setattr(link, k, v)
        if start:
            link.start()
        self.links.append(link)
        return link

    def call(self, fn):
        return self.controller.call(fn, timeout=5)

    def emit(self, n, compartment=1):
        """Write ``n`` events (door.closed), one transaction each, on the
        controller thread as the domain would."""
        def write(locker):
            for _ in range(n):
                with locker.store.unit() as unit:
                    unit.event(EventType.DOOR_CLOSED, {"compartment": compartment})
        self.call(write)

    def door(self, number, is_open):
        self.controller.post(DoorChanged(number, is_open))

    def outbox_depth(self):
        """The outbox depth, counted on a connection of its own."""
        reader = self.store.outbox_reader()
        try:
            return reader.depth()
        finally:
            reader.close()

    def close(self):
        for link in self.links:
            link.stop()
        self.controller.stop()


def command(name, args=None, *, locker_id="test-1", request_id=None, sent_at=None,
            clock=None, **extra):
    """A command body as central sends it (dict)."""
    body = {"request_id": request_id or uuid.uuid4().hex,
            "sent_at": sent_at if sent_at is not None else clock.wall(),
            "locker_id": locker_id}
    if args is not None:
        body["args"] = args
    body.update(extra)
    return body


class Central:
    """Plays central: sends commands, collects responses by request id."""

    def __init__(self, sub, root="bibbox/test-1"):
        self.sub, self.root = sub, root
        self.lock = threading.Lock()

    def send(self, name, body, *, raw=None, retain=False, properties=None, validate=True):
        if validate and raw is None:
            schema = "".join(p.title() for p in name.split("_")) + "Command"
            Contract.load().validate(schema, body)
        payload = raw if raw is not None else json.dumps(body).encode()
        info = self.sub.publish(f"{self.root}/commands/{name}", payload, qos=1,
                                retain=retain, properties=properties)
        info.wait_for_publish(5)
        return body.get("request_id") if isinstance(body, dict) else None

    def response(self, request_id, topic=None, timeout=10.0, n=1):
        topic = topic or f"{self.root}/responses"

        def found(msgs):
            hits = [m for m in msgs if m.topic == topic and m.json().get("request_id") == request_id]
            return hits if len(hits) >= n else None
        return self.sub.wait_for(found, timeout, what=f"response to {request_id}")[n - 1].json()
