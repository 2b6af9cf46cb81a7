"""Patron checks through central: the ``central`` adapter of the verifier port.

``CentralVerifier(cfg, clock=clock, port=port)`` sends through ``port``, an
outgoing port that fits :class:`PatronCheckPort` (the central link, or None
when there is no link); whoever wires them hands the link's verdict messages
to :meth:`CentralVerifier.on_verdict` (``link.route_verdicts``), so neither
module knows the other.  Each ``verify(patron_hash, pin, done)`` publishes one
``<root>/patron/check`` request ``{"request_id","patron_hash","pin","sent_at",
"locker_id"}`` and waits, without blocking the caller, for central's answer
on ``<root>/patron/verdict`` ``{"request_id","outcome","reason","due",
"default_due"}`` (at most :data:`MAX_VERDICT_BYTES`, read by
:func:`central.wire.read_json`; the request id from the body, else from the
correlation data; a verdict naming no waiting request is ignored).  ``done`` is called exactly once, from paho's thread or a
timer thread: with the parsed :class:`locker.patrons.Verdict`, or with
``Verdict("unavailable")`` when the link is down, the answer is malformed, or
none came within ``timeout_s`` (``verifier.timeout_s``, 3 s by default).

The PIN is in the request and nowhere else: not in a log line, not in any
other message, not kept after the request is handed to the socket.  The
request goes at QoS 0, not retained, with an MQTT 5 message expiry equal to
the timeout: a patron is waiting at the kiosk, so a request that cannot be
delivered at once is worthless, and QoS 0 means paho never keeps the PIN in
a retry queue or sends it again after a reconnect (QoS 1 would).  TCP still
delivers it intact when the connection holds.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import uuid
from typing import Protocol

from bibbox.locker.domain import patrons
from bibbox.locker.domain.patrons import Verdict

from bibbox.central import wire

log = logging.getLogger("bibbox.mqtt")
MAX_VERDICT_BYTES = 4096
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PatronCheckPort(Protocol):
    """Where patron checks go out (the central link)."""

    @property
    def connected(self) -> bool: ...

    def publish_patron_check(self, payload: bytes, request_id: str,
                             expiry_s: int) -> bool: ...


class CentralVerifier:
    """See the module docstring.  ``port`` is a :class:`PatronCheckPort`,
    or None when there is no link (every check is then ``unavailable``)."""

    def __init__(self, cfg, *, clock, port: PatronCheckPort | None, timeout_s=None):
        self.cfg, self.clock, self.port = cfg, clock, port
        self.timeout_s = float(timeout_s if timeout_s is not None
                               else cfg.verifier.timeout_s)
        self._lock = threading.Lock()
        self._pending = {}          # request_id -> (done, timer)

    def verify(self, patron_hash, pin, done, *, card=None):
        """``card`` is not used: central knows patrons by hash only."""
        request_id = uuid.uuid4().hex
        timer = threading.Timer(self.timeout_s, self._timeout, args=(request_id,))
        timer.daemon = True
        with self._lock:
            self._pending[request_id] = (done, timer)
        port = self.port
        if port is None or not port.connected:
            log.warning("patron check %s: central link is down", request_id)
            return self._finish(request_id, Verdict(patrons.UNAVAILABLE, reason="offline"))
        timer.start()
        body = {"request_id": request_id, "patron_hash": patron_hash,
                "pin": getattr(pin, "value", pin), "sent_at": self.clock.wall(),
                "locker_id": self.cfg.locker.id}
        sent = port.publish_patron_check(wire.dumps(body), request_id,
                                         expiry_s=max(1, math.ceil(self.timeout_s)))
        del body
        if not sent:
            log.warning("patron check %s could not be sent", request_id)
            self._finish(request_id, Verdict(patrons.UNAVAILABLE, reason="offline"))
        else:
            log.info("patron check %s sent", request_id)

    def pending(self):
        with self._lock:
            return len(self._pending)

    # -- answers (paho's thread) ---------------------------------------------
    def on_verdict(self, payload: bytes, correlation: bytes | None, retained: bool):
        """A message on ``<root>/patron/verdict``."""
        if retained:
            log.warning("retained patron verdict ignored")
            return
        try:
            body = wire.read_json(payload, max_bytes=MAX_VERDICT_BYTES)
        except wire.BadPayload as exc:
            body, rid = None, exc.request_id
        else:
            rid = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(rid, str) and correlation:
            rid = bytes(correlation).decode("ascii", "replace")
        if not isinstance(rid, str):
            log.info("patron verdict without a readable request id ignored")
            return
        with self._lock:
            known = rid in self._pending
        if not known:
            log.info("patron verdict for no waiting request (late or foreign)")
            return
        verdict = parse_verdict(body)
        if verdict is None:
            log.warning("patron verdict %s is malformed; treated as unavailable", rid)
            verdict = Verdict(patrons.UNAVAILABLE, reason="bad_answer")
        else:
            log.info("patron check %s answered: %s", rid, verdict.outcome)
        self._finish(rid, verdict)

    def _timeout(self, request_id):
        with self._lock:
            known = request_id in self._pending
        if known:
            log.warning("patron check %s: no answer within %.1f s", request_id,
                        self.timeout_s)
            self._finish(request_id, Verdict(patrons.UNAVAILABLE, reason="timeout"))

    def _finish(self, request_id, verdict):
        with self._lock:
            entry = self._pending.pop(request_id, None)
        if entry is None:
            return          # someone else answered first: done runs once
        done, timer = entry
        timer.cancel()
        try:
            done(verdict)
        except Exception:
            log.exception("the verifier's done callback failed")

    def close(self):
        """Answer everything still waiting with ``unavailable``."""
        with self._lock:
            ids = list(self._pending)
        for rid in ids:
            self._finish(rid, Verdict(patrons.UNAVAILABLE, reason="offline"))


def parse_verdict(body) -> Verdict | None:
    """A :class:`Verdict` from a verdict message, or None if malformed."""
    if not isinstance(body, dict) or body.get("outcome") not in patrons.OUTCOMES:
        return None
    reason = body.get("reason", "") or ""
    due = body.get("due", {}) or {}
    default_due = body.get("default_due")
    if not isinstance(reason, str) or len(reason) > 200 or not isinstance(due, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) and _DATE.match(v)
               for k, v in due.items()):
        return None
    if default_due is not None and not (isinstance(default_due, str)
                                        and _DATE.match(default_due)):
        return None
    return Verdict(body["outcome"], reason=reason, due=dict(due), default_due=default_due)
