"""Payloads on the wire: how each message of ``docs/asyncapi.yaml`` is built.

Pure functions, no I/O.  Every payload is compact UTF-8 JSON.  None of them
carries a card number or a PIN; the only patron datum that leaves the locker
is the keyed patron hash inside hold events (and, for the central verifier,
the PIN inside ``patron/check`` itself, see :mod:`central.verifier`).
"""

from __future__ import annotations

import json

# The version of the AsyncAPI contract this code speaks (info.version there).
CONTRACT_VERSION = "1.0.0"

QOS_EVENTS = 1          # at least once; the outbox row goes only after PUBACK
QOS_AVAILABILITY = 1    # retained; also the will
QOS_STATE = 0           # retained; republished in full after every reconnect
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


def locker_snapshot(state_view: dict) -> dict:
    """The locker-level summary published on ``<root>/state``."""
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
            "reader_online": state_view.get("reader_online")}


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
