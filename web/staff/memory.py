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
