"""Commands from central: validation, idempotency, execution.

Contract (see ``docs/asyncapi.yaml``, channels ``commands/<name>`` and
``responses``):

- A command arrives on ``<root>/commands/<name>`` as a JSON object
  ``{"request_id", "sent_at", "locker_id", "args", ["actor"]}``.  Retained
  commands, payloads over :data:`MAX_COMMAND_BYTES`, malformed JSON, wrong
  types, unknown envelope or argument keys, a missing or foreign
  ``locker_id`` (``unauthorised``), ``sent_at`` further than
  :data:`MAX_COMMAND_AGE_S` from our wall clock (``stale``), unknown commands
  and unknown compartments are all refused with an error response, and
  nothing changes.
- Every command gets exactly one answer per delivery:
  ``{"request_id","status","code","message","result","command"}`` on the MQTT 5
  response topic if one was given (it must be under ``<root>/responses``),
  else on ``<root>/responses``; the correlation data is echoed.
- A ``request_id`` that was executed before is answered with the first
  answer, byte for byte, and nothing runs again.  Answers are kept in memory
  and in ``<state_dir>/central.db`` (the last :data:`MAX_REMEMBERED`), so a
  restart does not forget them.  The answer is recorded on the controller
  thread in the same turn that ran the command, so a command that outlives
  the caller's timeout still records its real answer for the replay.
- At most :data:`QUEUE_SIZE` commands wait; the excess is answered ``busy``
  at once.  Memory is bounded by ``QUEUE_SIZE * MAX_COMMAND_BYTES``.
- The domain runs on the controller thread: ``controller.call(fn, timeout=
  COMMAND_TIMEOUT_S)``; a refusal is a :class:`locker.errors.CommandError`
  whose ``code`` is passed on.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import queue
import re
import sqlite3
import threading
from dataclasses import dataclass

from bibbox.locker.domain.errors import CommandError

from bibbox.central import wire

log = logging.getLogger("bibbox.mqtt")

MAX_COMMAND_BYTES = 16 * 1024
MAX_COMMAND_AGE_S = 300.0       # both ways: stale, or from a clock far ahead
QUEUE_SIZE = 32
COMMAND_TIMEOUT_S = 5.0
MAX_REMEMBERED = 10_000         # answered request ids kept for replays
MEMORY_REMEMBERED = 512
ACTOR_PREFIX = "central"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")     # printable ASCII, no spaces
_HOLD_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


# --------------------------------------------------------------------- fields
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
ENVELOPE = {"request_id": Field("string", min_len=1, max_len=128, pattern=_ID_RE),
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


# ----------------------------------------------------------------- requests
@dataclass
class Request:
    name: str
    body: dict
    response_topic: str | None = None
    correlation: bytes | None = None


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------- replay
class AnswerBook:
    """Answers by request id: an LRU in memory over a table in its own
    SQLite file.  :meth:`record` may be called from any thread (it runs on
    the controller thread); the database is touched only by the thread that
    calls :meth:`lookup` and :meth:`flush`."""

    def __init__(self, path):
        self.path = str(path)
        self._lock = threading.Lock()
        self._memory = collections.OrderedDict()     # id -> (command, json)
        self._unsaved = []
        self._pending = set()
        self._conn = None
        self._inserts = 0

    def _db(self):
        if self._conn is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0,
                                   check_same_thread=False)   # closed after the join
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE IF NOT EXISTS answered ("
                         "request_id TEXT PRIMARY KEY, command TEXT NOT NULL, "
                         "answered_at REAL NOT NULL, response TEXT NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS answered_at ON answered (answered_at)")
            self._conn = conn
        return self._conn

    def begin(self, request_id):
        """Mark a request as running; False if it already is."""
        with self._lock:
            if request_id in self._pending:
                return False
            self._pending.add(request_id)
            return True

    def end(self, request_id):
        with self._lock:
            self._pending.discard(request_id)

    def record(self, request_id, command, response_json, ts):
        with self._lock:
            self._memory[request_id] = (command, response_json)
            self._memory.move_to_end(request_id)
            while len(self._memory) > MEMORY_REMEMBERED:
                self._memory.popitem(last=False)
            self._unsaved.append((request_id, command, ts, response_json))

    def lookup(self, request_id):
        """(command, response_json) of an answered request, or None."""
        with self._lock:
            hit = self._memory.get(request_id)
        if hit is not None:
            return hit
        try:
            row = self._db().execute("SELECT command, response FROM answered "
                                     "WHERE request_id=?", (request_id,)).fetchone()
        except sqlite3.Error as exc:
            log.error("cannot read answered commands from %s: %s", self.path, exc)
            return None
        return (row[0], row[1]) if row else None

    def flush(self):
        with self._lock:
            rows, self._unsaved = self._unsaved, []
        if not rows:
            return
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR IGNORE INTO answered VALUES (?,?,?,?)", rows)
            self._inserts += len(rows)
            if self._inserts >= 100:
                self._inserts = 0
                db.execute("DELETE FROM answered WHERE request_id IN (SELECT request_id "
                           "FROM answered ORDER BY answered_at DESC LIMIT -1 OFFSET ?)",
                           (MAX_REMEMBERED,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("cannot save answered commands to %s: %s", self.path, exc)
            try:
                self._conn.execute("ROLLBACK")
            except (sqlite3.Error, AttributeError):
                pass
            with self._lock:
                self._unsaved[:0] = rows

    def close(self):
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# ------------------------------------------------------------------ handler
class CommandHandler:
    """Turns command messages into domain calls and answers.

    ``respond(response: dict | bytes, request: Request | None)`` publishes an
    answer (the link routes it to the right topic).  :meth:`submit` is called
    on paho's thread and never blocks; :meth:`handle` does the work on the
    handler's own thread (or directly, in tests)."""

    def __init__(self, *, locker_id, compartments, controller, clock, db_path,
                 respond, response_topic_ok=lambda topic: True, commands=None):
        self.locker_id = locker_id
        self.compartments = set(compartments)
        self.controller = controller
        self.clock = clock
        self.respond = respond
        self.response_topic_ok = response_topic_ok
        self.commands = commands if commands is not None else default_commands()
        self.answers = AnswerBook(db_path)
        self.queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = None
        self._stop = threading.Event()

    def register(self, spec: CommandSpec):
        """Add or replace a command (tests, later contract versions)."""
        self.commands[spec.name] = spec

    # -- paho's thread -------------------------------------------------------
    def submit(self, name, payload: bytes, *, retained=False, response_topic=None,
               correlation=None):
        """Cheap checks, then queue.  Errors are answered at once."""
        req = Request(name, {}, response_topic, correlation)
        if len(payload) > MAX_COMMAND_BYTES:
            return self._error(req, None, "too_large",
                               f"command payload over {MAX_COMMAND_BYTES} bytes")
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return self._error(req, None, "bad_json", "payload is not valid JSON")
        req.body = body
        rid = body.get("request_id") if isinstance(body, dict) else None
        rid = rid if isinstance(rid, str) and _ID_RE.match(rid) else None
        if retained:
            return self._error(req, rid, "retained",
                               "retained commands are refused; publish without retain")
        try:
            self.queue.put_nowait(req)
        except queue.Full:
            log.warning("command queue full; %s answered busy", name)
            self._error(req, rid, "busy", "too many commands waiting; retry later")

    # -- the handler thread --------------------------------------------------
    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bibbox-mqtt-cmd",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout=2.0):
        self._stop.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.answers.close()

    def _run(self):
        while not self._stop.is_set():
            try:
                req = self.queue.get(timeout=1.0)
            except queue.Empty:
                self.answers.flush()
                continue
            if req is None:
                continue
            try:
                self.handle(req)
            except Exception:     # never let one command kill the thread
                log.exception("command %s failed unexpectedly", req.name)
                self._error(req, None, "internal", "internal error")
            self.answers.flush()

    def handle(self, req: Request):
        """Validate, de-duplicate, run and answer one command."""
        body = req.body
        rid = None
        try:
            if not isinstance(body, dict):
                raise Refused("bad_request", "the command must be a JSON object")
            if isinstance(body.get("request_id"), str) and _ID_RE.match(body["request_id"]):
                rid = body["request_id"]
            if body.get("locker_id") != self.locker_id:
                raise Refused("unauthorised", "locker_id is missing or names another locker")
            problem = check_object("command", body, ENVELOPE)
            if problem:
                raise Refused("bad_request", problem)
            if req.response_topic is not None and not self.response_topic_ok(
                    req.response_topic):
                req.response_topic = None
                raise Refused("bad_response_topic", "the response topic must be under "
                              "this locker's responses topic")
            known = self.answers.lookup(rid)
            if known is not None:
                command, answer = known
                if command != req.name:
                    raise Refused("duplicate_request_id",
                                  f"this request id was used for {command}")
                log.info("command %s %s replayed; first answer repeated", req.name, rid)
                return self.respond(answer.encode(), req)
            age = self.clock.wall() - float(body["sent_at"])
            if abs(age) > MAX_COMMAND_AGE_S:
                raise Refused("stale", f"sent_at is {age:+.0f} s off the locker's clock "
                                       f"(limit {MAX_COMMAND_AGE_S:.0f} s)")
            spec = self.commands.get(req.name)
            if spec is None:
                raise Refused("unknown_command", f"unknown command {req.name!r}")
            args = body.get("args", {})
            problem = check_object("args", args, spec.args)
            if problem:
                raise Refused("bad_args", problem)
            if spec.compartment_arg and args[spec.compartment_arg] not in self.compartments:
                raise Refused("unknown_compartment",
                              f"compartment {args[spec.compartment_arg]} does not exist")
        except Refused as exc:
            log.info("command %s refused: %s", req.name, exc.code)
            return self._error(req, rid, exc.code, str(exc))
        actor = ACTOR_PREFIX + (f":{body['actor']}" if body.get("actor") else "")
        return self._execute(req, spec, rid, args, actor)

    def _execute(self, req, spec, rid, args, actor):
        if not self.answers.begin(rid):
            return self._error(req, rid, "in_progress",
                               "this request is still being processed")

        def run(locker):
            # On the controller thread: run, then record the answer in the
            # same turn so a late finish still leaves the true first answer.
            try:
                result = spec.run(locker, args, actor)
                answer = wire.response(rid, "ok", "ok", "", _jsonable(result),
                                       command=req.name)
            except CommandError as exc:
                answer = wire.response(rid, "error", exc.code, str(exc), None,
                                       command=req.name)
            except Exception as exc:    # a domain bug: answer, do not record
                log.exception("command %s crashed in the domain", req.name)
                return wire.dumps(wire.response(rid, "error", "internal",
                                                type(exc).__name__, None, req.name))
            encoded = wire.dumps(answer)
            self.answers.record(rid, req.name, encoded.decode(), self.clock.wall())
            return encoded

        try:
            encoded = self.controller.call(run, timeout=COMMAND_TIMEOUT_S)
        except CommandError as exc:     # the controller did not answer in time
            log.warning("command %s %s: %s", req.name, rid, exc)
            return self._error(req, rid, exc.code, str(exc))
        finally:
            self.answers.end(rid)
        log.info("command %s %s answered", req.name, rid)
        return self.respond(encoded, req)

    def _error(self, req, rid, code, message):
        return self.respond(wire.response(rid, "error", code, message, None,
                                          command=req.name), req)


def _jsonable(result):
    if result is None:
        return {}
    return json.loads(json.dumps(result, default=str))
