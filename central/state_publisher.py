"""State: the retained ``<root>/state`` summary and one retained
``<root>/compartments/<n>`` snapshot per compartment, from the controller's
Board.

Contract: only snapshots whose content changed are published, each with
``since`` (when that content began); after every reconnect all of them are
published again (:meth:`StatePublisher.republish`) with their old ``since``.
QoS 0 is enough: a message lost with a connection is replaced by the full
republish on the next one.
"""

from __future__ import annotations

from bibbox.central import wire


class StatePublisher:
    """Publishes the Board's ``state`` snapshot; one thread calls it (the
    link's sender).  ``publish(topic, payload, qos=, retain=)`` sends."""

    def __init__(self, *, board, topics, clock, publish):
        self.board, self.topics, self.clock, self.publish = board, topics, clock, publish
        self.version = object()         # the Board version last published
        self.locker_last = None         # (content, since)
        self.comp_last = {}             # number -> (content, since)

    def republish(self):
        """Everything again (a new connection: the broker may have lost it)."""
        self.version = object()
        self.publish_changes(force=True)

    def publish_changes(self, force=False):
        snap = self.board.get("state")
        if snap is None or (not force and snap.get("version") == self.version):
            return
        self.version = snap.get("version")
        now = self.clock.wall()
        self.locker_last = self._publish_if(self.topics.state, wire.locker_snapshot(snap),
                                            self.locker_last, now, force)
        for view in snap.get("compartments", []):
            n = view["number"]
            self.comp_last[n] = self._publish_if(self.topics.compartment(n),
                                                 wire.compartment_snapshot(view),
                                                 self.comp_last.get(n), now, force)

    def _publish_if(self, topic, content, last, now, force):
        if last is not None and last[0] == content:
            if not force:
                return last
            since = last[1]
        else:
            since = now
        self.publish(topic, wire.with_since(content, since), qos=wire.QOS_STATE, retain=True)
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
