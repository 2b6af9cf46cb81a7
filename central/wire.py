"""Payloads on the wire: how each message of ``docs/asyncapi.yaml`` is built.

Pure functions, no I/O.  Every payload is compact UTF-8 JSON.  None of them
carries a card number or a PIN; the only patron datum that leaves the locker
is the keyed patron hash inside hold events (and, for the central verifier,
the PIN inside ``patron/check`` itself, see :mod:`central.verifier`).
"""

from __future__ import annotations

import hashlib

import json
import math
import re

# The version of the AsyncAPI contract this code speaks (info.version there).
CONTRACT_VERSION = "1.1.0"

QOS_EVENTS = 1          # at least once; the outbox row goes only after PUBACK
QOS_AVAILABILITY = 1    # retained; also the will
QOS_STATE = 1           # retained; the PUBACK tells what the broker holds
QOS_HEARTBEAT = 0       # not retained; the next one follows anyway
QOS_RESPONSES = 1
QOS_HA_DISCOVERY = 1    # retained

# Fields of a compartment snapshot (from Locker.state_view); nothing else.
COMPARTMENT_FIELDS = ("number", "size", "state", "door", "lock", "alarms",
                      "occupied", "out_of_service", "deadline", "deadline_date")


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


def availability(state: str, *, version: str, boot_id: str, reason: str | None = None,
                 ts: float | None = None) -> bytes:
    """``{"state": "online"|"offline", "version", "boot_id", "contract"}``;
    offline ones say why (``connection_lost`` for the will, ``stopped``)."""
    msg = {"state": state, "version": version, "boot_id": boot_id,
           "contract": CONTRACT_VERSION}
    if reason is not None:
        msg["reason"] = reason
    if ts is not None:
        msg["ts"] = round(ts, 3)
    return dumps(msg)


def compartment_snapshot(view: dict) -> dict:
    """The public snapshot of one compartment (no patron data)."""
    return {k: view.get(k) for k in COMPARTMENT_FIELDS}


def digest(compartment_snapshots) -> str:
    """A short hash of the compartment snapshots (without ``since``), in
    order: equal digests, equal retained compartment state."""
    h = hashlib.sha256()
    for snapshot in compartment_snapshots:
        h.update(dumps(snapshot))
        h.update(b"\n")
    return h.hexdigest()[:16]


def locker_snapshot(state_view: dict, digest: str | None = None) -> dict:
    """The locker-level summary published on ``<root>/state``; ``digest``
    (see :func:`digest`) when given."""
    comps = state_view.get("compartments", [])
    counts = {"free": 0, "occupied": 0, "out_of_service": 0, "alarm": 0}
    for c in comps:
        counts["occupied" if c.get("occupied") else "free"] += 1
        counts["out_of_service"] += bool(c.get("out_of_service"))
        counts["alarm"] += bool(c.get("alarms"))
    return {"locker_id": state_view.get("locker_id"),
            "compartments": [c["number"] for c in comps],
            "counts": counts,
            "alarms": list(state_view.get("alarms", [])),
            "reader_online": state_view.get("reader_online"),
            **({} if digest is None else {"digest": digest})}


def with_since(snapshot: dict, since: float) -> bytes:
    return dumps({**snapshot, "since": round(since, 3)})


def event(row: dict, locker_id: str) -> bytes:
    """An outbox row as the event message.  The row's payload is already
    JSON (written by the store) and is embedded as it is."""
    head = dumps({"id": row["id"], "seq": row["seq"], "ts": row["ts"],
                  "type": row["type"], "locker_id": locker_id})
    return head[:-1] + b',"data":' + row["payload"].encode() + b"}"


def response(request_id, status: str, code: str, message: str = "", result=None,
             command: str | None = None) -> dict:
    """A command answer: ``{"request_id","status","code","message","result",
    "command"}``; ``status`` is ``ok`` (``code`` "ok") or ``error``."""
    return {"request_id": request_id, "status": status, "code": code,
            "message": message, "result": result, "command": command}


# ------------------------------------------------------------------ reading
MAX_DEPTH = 16            # commands nest 4 deep at most; 16 is generous
MAX_NUMBER_CHARS = 32     # digits of a JSON number; beyond is no real value
# a string, or an unterminated one up to the end: never backtracks over quotes
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")
_REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"([\x21\x23-\x5b\x5d-\x7e]{1,128})"')


class BadPayload(ValueError):
    """A payload that is not a bounded JSON document: ``code`` is the
    contract's error code (``too_large`` or ``bad_json``), ``request_id``
    the top-level ``request_id`` if one could still be read, else None."""

    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(message)
        self.code, self.request_id = code, request_id


def _refuse_number(text):
    raise BadPayload("bad_json", f"number {text[:12]!r} is out of range")


def _bounded_int(text):
    if len(text) > MAX_NUMBER_CHARS:
        _refuse_number(text)
    return int(text)


def _bounded_float(text):
    value = float(text)
    if len(text) > MAX_NUMBER_CHARS or not math.isfinite(value):
        _refuse_number(text)
    return value


def _skeleton(payload: bytes) -> bytes:
    """``payload`` with every string's content blanked (same length), so
    only the structure's brackets remain."""
    return _STRING.sub(lambda m: b'"' + b" " * (len(m.group()) - 2) + b'"', payload)


def _max_depth(skeleton: bytes) -> int:
    depth = deepest = 0
    for m in _BRACKETS.finditer(skeleton):
        depth += 1 if m.group() in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _depth_at(skeleton: bytes, end: int) -> int:
    return (skeleton.count(b"[", 0, end) + skeleton.count(b"{", 0, end)
            - skeleton.count(b"]", 0, end) - skeleton.count(b"}", 0, end))


def _top_level_request_id(payload: bytes, skeleton: bytes) -> str | None:
    for m in _REQUEST_ID.finditer(payload):
        if skeleton[m.start()] == ord('"') and _depth_at(skeleton, m.start()) == 1:
            return m.group(1).decode("ascii")
    return None


def read_json(payload: bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH):
    """The JSON document in ``payload``, read within bounds, or BadPayload.

    Refused: more than ``max_bytes``, not UTF-8, not JSON, nested deeper
    than ``max_depth``, a number longer than :data:`MAX_NUMBER_CHARS` or not
    finite (``NaN``, ``Infinity``, ``1e999``), a lone surrogate in a string.
    Never raises anything else, whatever the bytes."""
    if len(payload) > max_bytes:
        raise BadPayload("too_large", f"payload over {max_bytes} bytes")
    payload = bytes(payload)
    skeleton = _skeleton(payload)
    try:
        if _max_depth(skeleton) > max_depth:
            raise BadPayload("bad_json", f"nested deeper than {max_depth}")
        text = payload.decode("utf-8")
        obj = json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float,
                         parse_constant=_refuse_number)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")    # no lone surrogates
        return obj
    except BadPayload as exc:
        exc.request_id = _top_level_request_id(payload, skeleton)
        raise
    except (ValueError, UnicodeError, RecursionError, OverflowError, TypeError):
        raise BadPayload("bad_json", "payload is not valid JSON",
                         _top_level_request_id(payload, skeleton)) from None
