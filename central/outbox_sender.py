"""Events: the durable outbox drained to ``<root>/events``.

Contract:
- Every row of the store's ``outbox`` goes, in ``seq`` order, at QoS 1 to
  ``<root>/events`` (:func:`central.wire.event`).  A row is deleted only
  after the broker's PUBACK for it, through the store's
  :class:`~central.ports.OutboxReader` (never by SQL of its own).
- On every new session (reconnect) everything not yet acknowledged is sent
  again from the outbox, oldest first; so central sees each event at least
  once, in order after removing duplicates by ``id``.  At most
  ``window`` events are unacknowledged at a time.
- A PUBACK with a failure (the broker's ACL refused the event) pauses events
  for 30 s, then everything unacknowledged is sent again.
- Acknowledged rows are deleted in batches (``delete_batch``, or when nothing
  is in flight, or after half a second).

Threads: :meth:`OutboxSender.acknowledged` is called on paho's thread and
only queues; everything else runs on the link's sender thread.
"""

from __future__ import annotations

import collections
import logging
import time

from bibbox.locker.domain.errors import StoreError

from bibbox.central import wire

log = logging.getLogger("bibbox.mqtt")
REFUSED_PAUSE_S = 30.0
DELETE_AFTER_S = 0.5


class OutboxSender:
    """The outbox drain of one link run.  ``transport`` is the link's
    :class:`~central.transport.Transport`; ``topic`` is ``<root>/events``."""

    def __init__(self, *, transport, topic, locker_id, window=100, delete_batch=64,
                 now=time.monotonic):
        self.transport, self.topic, self.locker_id = transport, topic, locker_id
        self.now = now                  # stamps events handed to paho (health only)
        self.window, self.delete_batch = window, delete_batch
        self.reader = None
        self.session = 0
        self.inflight = collections.OrderedDict()   # mid -> (session, seq, handed_at)
        self.cursor = 0                 # highest seq handed to paho this session
        self.to_delete = []
        self.last_delete = time.monotonic()
        self.paused_until = 0.0         # after the broker refused an event
        self.last_depth = None          # the outbox depth last counted
        self._acks = collections.deque()  # (session, mid, failed) from paho's thread

    # -- any thread --------------------------------------------------------------
    def acknowledged(self, session, mid, failed):
        """A PUBACK (paho's thread): queued for :meth:`take_acks`."""
        self._acks.append((session, mid, failed))

    @property
    def inflight_count(self):
        return len(self.inflight)

    def oldest_unacked_s(self):
        """Seconds since the oldest event still awaiting its PUBACK was handed
        to paho (by ``now``); None when none awaits one."""
        try:
            first = next(iter(self.inflight.values()))
        except (StopIteration, RuntimeError):     # empty, or changing under us
            return None
        return max(0.0, self.now() - first[2])

    def next_deadline_s(self):
        """Seconds until the sender has timed work (deleting acknowledged
        rows, the end of a pause after a refusal), or None if it has none:
        then it waits to be woken."""
        deadlines = []
        if self.to_delete:
            deadlines.append(0.0 if self.delete_due()
                             else self.last_delete + DELETE_AFTER_S - time.monotonic())
        if self.paused_until:
            deadlines.append(self.paused_until - time.monotonic())
        return max(0.0, min(deadlines)) if deadlines else None

    # -- the sender thread ------------------------------------------------------
    def bind(self, reader):
        """Drain through ``reader`` (an OutboxReader on its own connection)."""
        self.reader = reader
        self.depth()

    def depth(self):
        """Count the outbox now (None if the database fails)."""
        try:
            self.last_depth = self.reader.depth()
        except StoreError:
            self.last_depth = None
        return self.last_depth

    def take_acks(self):
        acks = self._acks
        while acks:
            session, mid, failed = acks.popleft()
            entry = self.inflight.get(mid)
            if entry is None or entry[0] != session:
                continue            # not an event, or from an older session
            del self.inflight[mid]
            if failed:
                self.transport.report_error(f"broker refused event seq {entry[1]}")
                log.error("broker refused event seq %d (check the ACL for %s); "
                          "pausing events for 30 s", entry[1], self.topic)
                self.paused_until = time.monotonic() + REFUSED_PAUSE_S
                continue
            self.to_delete.append(entry[1])

    def new_session(self, session):
        """Everything unacknowledged goes again, from the oldest row."""
        self.delete_acked()
        self.session = session
        self.inflight.clear()
        self.cursor = 0
        self.paused_until = 0.0

    def publish_events(self):
        if self.paused_until:
            if time.monotonic() < self.paused_until or self.inflight:
                return
            self.delete_acked()
            self.paused_until, self.cursor = 0.0, 0      # rewind: resend from the oldest
        room = self.window - len(self.inflight)
        if room <= 0 or (self.inflight and room < self.window // 4):
            return      # refill in batches: fewer queries, fewer wake-ups
        try:
            rows = self.reader.batch(after_seq=self.cursor, limit=room)
        except StoreError as exc:
            self.transport.report_error(f"cannot read the outbox: {exc}")
            log.error("cannot read the outbox: %s", exc)
            return
        if not rows:
            return
        with self.transport.current_session() as session:
            if session != self.session:
                return          # a reconnect slipped in; the next turn starts over
            for row in rows:
                sent = self.transport.publish(self.topic, wire.event(row, self.locker_id),
                                              qos=wire.QOS_EVENTS)
                if sent.queue_full:
                    break       # paho's queue is full; acknowledgements wake us
                self.inflight[sent.mid] = (self.session, row["seq"], self.now())
                self.cursor = row["seq"]

    def delete_due(self):
        """True when acknowledged rows should be deleted now."""
        return bool(self.to_delete) and (len(self.to_delete) >= self.delete_batch
                                         or not self.inflight
                                         or time.monotonic() - self.last_delete
                                         > DELETE_AFTER_S)

    def delete_acked(self):
        if not self.to_delete:
            return
        try:
            self.reader.delete(self.to_delete)
        except StoreError as exc:
            self.transport.report_error(f"cannot delete sent events: {exc}")
            log.error("cannot delete acknowledged events from the outbox: %s", exc)
            return      # kept; tried again next turn (a resend would be a duplicate)
        self.to_delete = []
        self.last_delete = time.monotonic()
        self.depth()

    def drain_before_stop(self, wait, limit_s=1.0):
        """Give in-flight events a moment to be acknowledged, then delete.
        ``wait(seconds)`` sleeps until woken (by an acknowledgement)."""
        deadline = time.monotonic() + limit_s
        while self.inflight and self.transport.connected and time.monotonic() < deadline:
            wait(0.05)
            self.take_acks()
        self.delete_acked()
