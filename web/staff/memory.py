"""What the staff page keeps in memory only: opaque patron tokens and the
answers of state-changing calls by idempotency key.  A restart forgets
both (a token then means scanning the card again)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict


class PatronTokens:
    """Opaque tokens standing for patron hashes, per staff member, for a
    few hours."""

    def __init__(self, ttl_s=4 * 3600, max_size=20_000):
        self.ttl_s, self.max_size = ttl_s, max_size
        self._lock = threading.Lock()
        self._items = OrderedDict()

    def put(self, patron_hash, owner):
        token = "T" + secrets.token_urlsafe(18)
        with self._lock:
            self._items[token] = (patron_hash, owner, time.monotonic() + self.ttl_s)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
        return token

    def get(self, token, owner):
        """The patron hash ``token`` stands for, if ``owner`` made it and it
        has not expired; else None."""
        with self._lock:
            entry = self._items.get(token) if isinstance(token, str) else None
        if entry is None or entry[1] != owner or entry[2] < time.monotonic():
            return None
        return entry[0]


class Idempotency:
    """Answers by (staff name, idem key): a replay gets the first answer,
    a replay while the first is still running gets ``(None, 409)``."""

    def __init__(self, max_size=5000):
        self.max_size = max_size
        self._lock = threading.Lock()
        self._done = OrderedDict()
        self._running = set()

    def run(self, key, fn):
        """``fn()`` -> (body, status), once per key; answers below 500 are kept."""
        with self._lock:
            if key in self._done:
                body, status = self._done[key]
                return dict(body, replayed=True), status
            if key in self._running:
                return None, 409
            self._running.add(key)
        try:
            body, status = fn()
        finally:
            with self._lock:
                self._running.discard(key)
        if status < 500:
            with self._lock:
                self._done[key] = (body, status)
                while len(self._done) > self.max_size:
                    self._done.popitem(last=False)
        return body, status


class PollSlots:
    """A bound on the staff long polls waiting at once: at most ``total`` in
    all and ``per_session`` per session, so that waiting polls never hold
    every one of the web server's worker threads (the kiosk and the staff
    pages keep the rest)."""

    def __init__(self, total, per_session):
        self.total, self.per_session = total, per_session
        self._lock = threading.Lock()
        self._by_session = {}

    def acquire(self, session):
        """Take a slot for ``session``; False (take none) when over a bound."""
        with self._lock:
            held = self._by_session.get(session, 0)
            if held >= self.per_session or sum(self._by_session.values()) >= self.total:
                return False
            self._by_session[session] = held + 1
            return True

    def release(self, session):
        with self._lock:
            held = self._by_session.get(session, 0) - 1
            if held > 0:
                self._by_session[session] = held
            else:
                self._by_session.pop(session, None)
