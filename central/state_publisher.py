"""State: the retained ``<root>/state`` summary and one retained
``<root>/compartments/<n>`` snapshot per compartment, from the controller's
Board.

Contract: only snapshots whose content changed are published, each with
``since`` (when that content began), retained at QoS 1, so the broker's
PUBACK says it holds it; the publisher keeps, per compartment, the content
last acknowledged.  After a reconnect (:meth:`StatePublisher.republish`) it
sends the locker summary (with ``digest``, a hash of every compartment
snapshot, so a consumer can tell its copies are whole) and only the
compartments whose acknowledged content differs from the current one (never
acknowledged, or changed since), with their old ``since``.
"""

from __future__ import annotations

from collections import deque

from bibbox.central import wire


class StatePublisher:
    """Publishes the Board's ``state`` snapshot; one thread calls it (the
    link's sender).  ``publish(topic, payload, qos=, retain=)`` sends."""

    def __init__(self, *, board, topics, clock, publish):
        self.board, self.topics, self.clock, self.publish = board, topics, clock, publish
        self.version = object()         # the Board version last published
        self.locker_last = None         # (content, since)
        self.comp_last = {}             # number -> (content, since)
        self.acked = {}                 # number or "state" -> content the broker acknowledged
        self.pending = {}               # mid -> (key, content), this session's unacknowledged
        self.session = None
        self._acks = deque()            # (session, mid, failed), appended by any thread

    def acknowledged(self, session, mid, failed):
        """A PUBACK (any thread); taken by :meth:`take_acks` on the sender's."""
        self._acks.append((session, mid, failed))

    def take_acks(self):
        acks = self._acks
        while acks:
            session, mid, failed = acks.popleft()
            entry = self.pending.pop(mid, None) if session == self.session else None
            if entry is not None and not failed:
                self.acked[entry[0]] = entry[1]

    def republish(self, session=None, broker_kept=False):
        """A new connection: the summary with its digest, and every
        compartment whose acknowledged snapshot is not the current one.
        ``broker_kept``: the broker resumed our session (CONNACK session
        present), so it still holds what it acknowledged; otherwise (a new
        session, a broker that restarted) everything is sent again."""
        self.take_acks()
        if not broker_kept:
            self.acked.clear()
        self.session = session
        self.pending.clear()            # the old session's PUBACKs will never come
        self.version = object()
        self.publish_changes(reconnect=True)

    def publish_changes(self, reconnect=False):
        snap = self.board.get("state")
        if snap is None or (not reconnect and snap.get("version") == self.version):
            return
        self.version = snap.get("version")
        now = self.clock.wall()
        contents = [(view["number"], wire.compartment_snapshot(view))
                    for view in snap.get("compartments", [])]
        for n, content in contents:
            self.comp_last[n] = self._publish_if(self.topics.compartment(n), n, content,
                                                 self.comp_last.get(n), now, reconnect)
        locker = wire.locker_snapshot(snap, digest=wire.digest(c for _, c in contents))
        self.locker_last = self._publish_if(self.topics.state, "state", locker,
                                            self.locker_last, now, reconnect)

    def _publish_if(self, topic, key, content, last, now, reconnect):
        if last is not None and last[0] == content:
            if not reconnect or (key != "state" and self.acked.get(key) == content):
                return last
            since = last[1]
        else:
            since = now
        sent = self.publish(topic, wire.with_since(content, since), qos=wire.QOS_STATE,
                            retain=True)
        mid = getattr(sent, "mid", None)
        if mid is not None and getattr(sent, "ok", True):
            self.pending[mid] = (key, content)
        return content, since


def watch_board(board, wake, stopping):
    """Call ``wake()`` whenever the Board's ``state`` gets a new version (the
    ``bibbox-mqtt-state`` thread), until ``stopping`` (an Event of this run
    only) is set.  It waits on the Board with no timeout, so an idle locker
    never wakes it; after a stop it ends at the Board's next change (or
    close), calling nothing more."""
    version = None
    while not stopping.is_set():
        snap = board.wait_newer("state", version, timeout=None)
        if stopping.is_set():
            return
        new = snap.get("version") if snap else None
        if new != version:
            version = new
            wake()
