"""The command table of contract 1.0: every command central may send, its
arguments with their JSON types and limits, and how it runs on the locker.

Pure data and checks, no I/O.  Kept in step with the argument schemas of
``docs/asyncapi.yaml`` by ``test_central_contract``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")     # printable ASCII, no spaces
_HOLD_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Field:
    """One argument: its JSON type, whether it is required, and its limits.
    Kept in step with the AsyncAPI schemas by ``test_central_contract``."""
    kind: str                 # string, integer, number, array, object
    required: bool = True
    nullable: bool = False
    max_len: int | None = None
    min_len: int = 0
    pattern: re.Pattern | None = None
    minimum: float | None = None
    item: object = None       # for arrays: a dict of Fields (objects) or None
    max_items: int | None = None

    def check(self, path, value):
        """Return a problem (text) or None."""
        if value is None:
            return None if self.nullable else f"{path} must not be null"
        if self.kind == "string":
            if not isinstance(value, str):
                return f"{path} must be a string"
            if len(value) < self.min_len or (self.max_len and len(value) > self.max_len):
                return f"{path} must be {self.min_len}..{self.max_len} characters"
            if self.pattern is not None and not self.pattern.match(value):
                return f"{path} has the wrong format"
        elif self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{path} must be an integer"
            if self.minimum is not None and value < self.minimum:
                return f"{path} must be at least {self.minimum:g}"
        elif self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                return f"{path} must be a number"
            if self.minimum is not None and value < self.minimum:
                return f"{path} must be at least {self.minimum:g}"
        elif self.kind == "object":
            if not isinstance(value, dict):
                return f"{path} must be an object"
        elif self.kind == "array":
            if not isinstance(value, list):
                return f"{path} must be an array"
            if self.max_items is not None and len(value) > self.max_items:
                return f"{path} may hold at most {self.max_items} entries"
            if len(value) < self.min_len:
                return f"{path} must hold at least {self.min_len} entries"
            for i, entry in enumerate(value):
                problem = check_object(f"{path}[{i}]", entry, self.item)
                if problem:
                    return problem
        return None


def check_object(path, value, fields):
    if not isinstance(value, dict):
        return f"{path} must be an object"
    for key in value:
        if key not in fields:
            return f"{path}.{key} is not a known field"
    for key, f in fields.items():
        if key not in value:
            if f.required:
                return f"{path}.{key} is missing"
            continue
        problem = f.check(f"{path}.{key}", value[key])
        if problem:
            return problem
    return None


HOLD_ID = Field("string", min_len=1, max_len=64, pattern=_HOLD_ID_RE)
REASON = Field("string", min_len=1, max_len=500)
NUMBER = Field("integer", minimum=1)
ITEM = {"barcode": Field("string", min_len=1, max_len=64),
        "title": Field("string", required=False, max_len=200)}
HOLD = {"hold_id": HOLD_ID,
        "patron_hash": Field("string", pattern=_HEX64, min_len=64, max_len=64),
        "items": Field("array", item=ITEM, min_len=1, max_items=50),
        "deadline": Field("number", required=False, nullable=True, minimum=0),
        "size": Field("string", required=False, nullable=True, min_len=1, max_len=16),
        "pickup_number": Field("string", required=False, nullable=True, min_len=1,
                               max_len=16),
        "pickup_code_hash": Field("string", required=False, nullable=True,
                                  pattern=_HEX64, min_len=64, max_len=64)}
ENVELOPE = {"request_id": Field("string", min_len=1, max_len=128, pattern=ID_RE),
            "sent_at": Field("number"),
            "locker_id": Field("string", min_len=1, max_len=128),
            "args": Field("object", required=False),
            "actor": Field("string", required=False, min_len=1, max_len=64)}


def _hold_args(a):
    return {"hold_id": a["hold_id"], "patron_hash": a["patron_hash"],
            "items": [{"barcode": i["barcode"], "title": i.get("title", "")}
                      for i in a["items"]],
            "deadline": a.get("deadline"), "size": a.get("size"),
            "pickup_number": a.get("pickup_number"),
            "pickup_code_hash": a.get("pickup_code_hash")}


@dataclass(frozen=True)
class CommandSpec:
    """A command: its arguments and how it runs on the locker.  ``run`` is
    called on the controller thread as ``run(locker, args, actor)`` and
    returns a JSON-able dict (or None)."""
    name: str
    args: dict
    run: object
    compartment_arg: str | None = None


def default_commands():
    """The commands of contract 1.0 (see the AsyncAPI document)."""
    specs = [
        CommandSpec("get_state", {}, lambda lk, a, actor: lk.state_view()),
        CommandSpec("announce_hold", HOLD,
                    lambda lk, a, actor: lk.announce_hold(**_hold_args(a), actor=actor)),
        CommandSpec("cancel_hold", {"hold_id": HOLD_ID, "reason": REASON},
                    lambda lk, a, actor: lk.cancel_hold(a["hold_id"], actor=actor,
                                                        reason=a["reason"])),
        CommandSpec("sync_announced",
                    {"holds": Field("array", item=HOLD, max_items=5000)},
                    lambda lk, a, actor: lk.sync_announced(
                        [_hold_args(h) for h in a["holds"]], actor=actor)),
        CommandSpec("open_compartment", {"number": NUMBER, "reason": REASON},
                    lambda lk, a, actor: lk.open_compartment(
                        a["number"], actor=actor, reason=a["reason"], purpose="central"),
                    compartment_arg="number"),
        CommandSpec("set_out_of_service",
                    {"number": NUMBER,
                     "reason": Field("string", nullable=True, min_len=1, max_len=500)},
                    lambda lk, a, actor: lk.set_out_of_service(
                        a["number"], a["reason"], actor=actor),
                    compartment_arg="number"),
        CommandSpec("expire_now", {}, lambda lk, a, actor: lk.expire_now(actor=actor)),
    ]
    return {s.name: s for s in specs}
