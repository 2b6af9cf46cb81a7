"""Commands from central: validation, idempotency, execution.

Contract (see ``docs/asyncapi.yaml``, channels ``commands/<name>`` and
``responses``):

- A command arrives on ``<root>/commands/<name>`` as a JSON object
  ``{"request_id", "sent_at", "locker_id", "args", ["actor"]}``.  Retained
  commands, payloads over :data:`MAX_COMMAND_BYTES`, malformed JSON (read by
  :func:`central.wire.read_json`: bounded depth and numbers; the answer
  carries the top-level ``request_id`` whenever it can still be read), wrong
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
  and in the answer store (``central.db``, the last :data:`MAX_REMEMBERED`),
  so a restart does not forget them.  The answer is recorded on the controller
  thread in the same turn that ran the command, so a command that outlives
  the caller's timeout still records its real answer for the replay.
- At most :data:`QUEUE_SIZE` commands wait; the excess is answered ``busy``
  at once.  Memory is bounded by ``QUEUE_SIZE * MAX_COMMAND_BYTES``.
- The domain runs on the controller thread: ``controller.call(fn, timeout=
  COMMAND_TIMEOUT_S)``; a refusal is a :class:`locker.errors.CommandError`
  whose ``code`` is passed on.  A command refused before it runs is a
  :class:`locker.errors.CommandRefused` (a CommandError too).
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

from bibbox.locker.domain.errors import CommandError, CommandRefused, StoreError

from bibbox.central import wire
from bibbox.central.command_table import (ENVELOPE, ID_RE, CommandSpec, check_object,
                                          default_commands)
from bibbox.central.ports import AnswerStore

log = logging.getLogger("bibbox.mqtt")

MAX_COMMAND_BYTES = 16 * 1024
MAX_COMMAND_AGE_S = 300.0       # both ways: stale, or from a clock far ahead
QUEUE_SIZE = 32
COMMAND_TIMEOUT_S = 5.0
LATE_ANSWER_S = 60.0            # after a timeout: how long to watch for its late answer
MAX_REMEMBERED = 10_000         # answered request ids kept for replays
MEMORY_REMEMBERED = 512
PRUNE_EVERY = 100               # answers saved between two prunings of the store
ACTOR_PREFIX = "central"


# ----------------------------------------------------------------- requests
@dataclass
class Request:
    name: str
    body: dict
    response_topic: str | None = None
    correlation: bytes | None = None


# ------------------------------------------------------------------- replay
class AnswerBook:
    """Answers by request id: an LRU in memory over the answer store
    (``central.db``).  :meth:`record` may be called from any thread (it runs
    on the controller thread); the store is touched only by the thread that
    calls :meth:`lookup` and :meth:`flush`."""

    def __init__(self, store: AnswerStore):
        self.store = store
        self._lock = threading.Lock()
        self._memory = collections.OrderedDict()     # id -> (command, json)
        self._unsaved = []
        self._pending = set()
        self._inserts = 0

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
            return self.store.lookup(request_id)
        except StoreError as exc:
            log.error("cannot read answered commands: %s", exc)
            return None

    def flush(self):
        with self._lock:
            rows, self._unsaved = self._unsaved, []
        if not rows:
            return
        prune = self._inserts + len(rows) >= PRUNE_EVERY
        try:
            self.store.add(rows, keep=MAX_REMEMBERED if prune else None)
        except StoreError as exc:
            log.error("cannot save answered commands: %s", exc)
            with self._lock:
                self._unsaved[:0] = rows
            return
        self._inserts = 0 if prune else self._inserts + len(rows)

    def close(self):
        self.flush()
        self.store.close()


# ---------------------------------------------------------------- responses
class Responder:
    """Publishes command answers (from the handler thread or paho's): on the
    request's MQTT 5 response topic when ``topics.is_response_topic``
    accepts it, else on ``<root>/responses``; the correlation data echoed.
    ``publish`` is the transport's."""

    def __init__(self, topics, publish):
        self.topics, self.publish = topics, publish

    def __call__(self, response, req):
        body = response if isinstance(response, bytes) else wire.dumps(response)
        topic, correlation = self.topics.responses, None
        if req is not None:
            if req.response_topic and self.topics.is_response_topic(req.response_topic):
                topic = req.response_topic
            correlation = req.correlation
        sent = self.publish(topic, body, qos=wire.QOS_RESPONSES, retain=False,
                            correlation=correlation)
        if sent.queue_full:
            log.warning("outgoing queue full; a command response was dropped")


# ------------------------------------------------------------------ handler
class CommandHandler:
    """Turns command messages into domain calls and answers.

    ``answers`` is the answer store (``central.db``), closed by :meth:`stop`.
    ``respond(response: dict | bytes, request: Request | None)`` publishes an
    answer (the link routes it to the right topic).  :meth:`submit` is called
    on paho's thread and never blocks; :meth:`handle` does the work on the
    handler's own thread (or directly, in tests)."""

    def __init__(self, *, locker_id, compartments, controller, clock, answers: AnswerStore,
                 respond, response_topic_ok=lambda topic: True, commands=None):
        self.locker_id = locker_id
        self.compartments = set(compartments)
        self.controller = controller
        self.clock = clock
        self.respond = respond
        self.response_topic_ok = response_topic_ok
        self.commands = commands if commands is not None else default_commands()
        self.answers = AnswerBook(answers)
        self.queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = None
        self._stop = threading.Event()
        self.timeouts = 0               # commands the controller did not answer in time

    def register(self, spec: CommandSpec):
        """Add or replace a command (tests, later contract versions)."""
        self.commands[spec.name] = spec

    # -- paho's thread -------------------------------------------------------
    def submit(self, name, payload: bytes, *, retained=False, response_topic=None,
               correlation=None):
        """Cheap checks, then queue.  Errors are answered at once."""
        req = Request(name, {}, response_topic, correlation)
        try:
            body = wire.read_json(payload, max_bytes=MAX_COMMAND_BYTES)
        except wire.BadPayload as exc:
            return self._error(req, exc.request_id, exc.code, str(exc))
        req.body = body
        rid = body.get("request_id") if isinstance(body, dict) else None
        rid = rid if isinstance(rid, str) and ID_RE.match(rid) else None
        if retained:
            return self._error(req, rid, "retained",
                               "retained commands are refused; publish without retain")
        try:
            self.queue.put_nowait(req)
        except queue.Full:
            log.warning("command queue full; %s answered busy", name)
            self._error(req, rid, "busy", "too many commands waiting; retry later")

    # -- the handler thread --------------------------------------------------
    @property
    def thread(self):
        """The handler thread while started, else None."""
        return self._thread

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
        # Idle, it waits for a command with no timeout.  Only after a command
        # timed out (its answer is recorded later, on the controller thread)
        # does it look every second, for LATE_ANSWER_S, to save that answer.
        late_until = 0.0
        while not self._stop.is_set():
            waiting = late_until > time.monotonic()
            try:
                req = self.queue.get(timeout=1.0 if waiting else None)
            except queue.Empty:
                self.answers.flush()
                continue
            if req is None:
                continue
            timeouts = self.timeouts
            try:
                self.handle(req)
            except Exception:     # never let one command kill the thread
                log.exception("command %s failed unexpectedly", req.name)
                self._error(req, None, "internal", "internal error")
            if self.timeouts != timeouts:
                late_until = time.monotonic() + LATE_ANSWER_S
            self.answers.flush()

    def handle(self, req: Request):
        """Validate, de-duplicate, run and answer one command."""
        body = req.body
        rid = None
        try:
            if not isinstance(body, dict):
                raise CommandRefused("bad_request", "the command must be a JSON object")
            if isinstance(body.get("request_id"), str) and ID_RE.match(body["request_id"]):
                rid = body["request_id"]
            if body.get("locker_id") != self.locker_id:
                raise CommandRefused("unauthorised",
                                     "locker_id is missing or names another locker")
            problem = check_object("command", body, ENVELOPE)
            if problem:
                raise CommandRefused("bad_request", problem)
            if req.response_topic is not None and not self.response_topic_ok(
                    req.response_topic):
                req.response_topic = None
                raise CommandRefused("bad_response_topic", "the response topic must be "
                                     "under this locker's responses topic")
            known = self.answers.lookup(rid)
            if known is not None:
                command, answer = known
                if command != req.name:
                    raise CommandRefused("duplicate_request_id",
                                         f"this request id was used for {command}")
                log.info("command %s %s replayed; first answer repeated", req.name, rid)
                return self.respond(answer.encode(), req)
            age = self.clock.wall() - float(body["sent_at"])
            if abs(age) > MAX_COMMAND_AGE_S:
                raise CommandRefused("stale", f"sent_at is {age:+.0f} s off the locker's "
                                     f"clock (limit {MAX_COMMAND_AGE_S:.0f} s)")
            spec = self.commands.get(req.name)
            if spec is None:
                raise CommandRefused("unknown_command", f"unknown command {req.name!r}")
            args = body.get("args", {})
            problem = check_object("args", args, spec.args)
            if problem:
                raise CommandRefused("bad_args", problem)
            if spec.compartment_arg and args[spec.compartment_arg] not in self.compartments:
                raise CommandRefused("unknown_compartment",
                                     f"compartment {args[spec.compartment_arg]} does not exist")
        except CommandRefused as exc:
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
            self.timeouts += 1
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
