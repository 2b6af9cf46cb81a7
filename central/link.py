"""The link to the central system over MQTT: the parts, composed.

Contract (topics in :mod:`central.topics`, payloads in ``docs/asyncapi.yaml``),
one concern a module:

- **Transport and availability** (:mod:`central.transport`): the paho
  client, TLS, the will, ``online`` first on every connect, subscriptions
  made again on every connect, ``offline``/``stopped`` on :meth:`CentralLink.stop`.
- **Events** (:mod:`central.outbox_sender`): the outbox, in order, at QoS 1;
  a row deleted only after its PUBACK; everything unacknowledged again after
  a reconnect.
- **State** (:mod:`central.state_publisher`): retained, only what changed,
  all of it again after every reconnect.
- **Heartbeat** (:mod:`central.heartbeat`), **Home Assistant discovery**
  (:mod:`central.homeassistant`), **commands** (:mod:`central.commands`).
- **Patron checks**: :meth:`CentralLink.publish_patron_check` is the outgoing
  port of :mod:`central.verifier`; verdicts go to the handler given to
  :meth:`CentralLink.route_verdicts`.  Neither module imports the other.

The bootstrap hands in the store objects (``store`` fits
:class:`central.ports.OutboxStore`, ``answers`` :class:`central.ports.AnswerStore`)
and the secrets as values (``credentials``: ``(user, password)`` or None).
Construction validates the URL and loads the TLS files (ConfigError); it
does no network I/O.

Threads: paho's network thread (callbacks only set flags and queue work),
``bibbox-mqtt-send`` (the only one that drains the outbox and publishes
state, heartbeats and discovery, on its own store connection),
``bibbox-mqtt-state`` (waits on the Board and wakes the sender) and
``bibbox-mqtt-cmd`` (runs commands through ``controller.call``).  None of
them wakes without work: each waits on an event, the Board, its queue, its
socket, or its next real deadline (the heartbeat, the keepalive).

Health (:meth:`CentralLink.health`, shown by ``/api/status`` and ``bibbox
status``; its ``unhealthy`` part fails the systemd watchdog, see
``daemon/systemd.py``).  The rule: what a restart fixes is unhealthy -- the
network loop or one of the link's threads has stopped, or, while connected,
an event has waited for its PUBACK longer than :attr:`CentralLink.stall_limit_s`
(the loop no longer reads, the connection is wedged).  What a restart does
not fix is reported only, never restarts the daemon: a broker that is down
or unreachable (paho keeps retrying), events the broker refuses (its ACL).
"""

from __future__ import annotations

import logging
import threading
import time

from bibbox.central.commands import CommandHandler, Responder
from bibbox.central.heartbeat import Heartbeat
from bibbox.central.homeassistant import Discovery
from bibbox.central.outbox_sender import OutboxSender
from bibbox.central.state_publisher import StatePublisher, watch_board
from bibbox.central.topics import HA_STATUS, Topics
from bibbox.central.transport import Availability, Subscription, TlsFiles, Transport

log = logging.getLogger("bibbox.mqtt")


class CentralLink:
    """The MQTT link of one locker; see the module docstring.  ``url``
    overrides ``cfg.mqtt.url``.  The tunables below are read at :meth:`start`."""

    keepalive_s = 60          # PINGREQ when idle; a dead link is noticed in 1.5x this
    reconnect_min_s = 1.0     # paho backs off from here, doubling ...
    reconnect_max_s = 60.0    # ... up to here; the start is jittered per locker
    event_window = 100        # events handed to paho and not yet acknowledged
    delete_batch = 64         # acknowledged rows deleted in one transaction

    def __init__(self, cfg, *, controller, store, answers, clock, version, boot_id,
                 url=None, credentials=None):
        self.cfg, self.controller, self.store, self.clock = cfg, controller, store, clock
        self.keepalive_s = cfg.mqtt.keepalive_s
        self.version, self.boot_id = str(version), str(boot_id)
        self.locker_id = cfg.locker.id
        self.topics = Topics(cfg.topic_root)
        subscriptions = [Subscription(self.topics.commands_filter),
                         Subscription(self.topics.patron_verdict)]
        if cfg.mqtt.home_assistant:
            subscriptions.append(Subscription(HA_STATUS, retain_as_published=False))
        self.transport = Transport(
            session_expiry_s=cfg.mqtt.command_session_s,
            client_id=f"bibbox-{self.locker_id}", url=url or cfg.mqtt.url, clock=clock,
            availability=Availability(self.topics.availability, version=self.version,
                                      boot_id=self.boot_id, clock=clock),
            subscriptions=subscriptions, credentials=credentials,
            tls=TlsFiles(cfg.mqtt.ca_file, cfg.mqtt.cert_file, cfg.mqtt.key_file))
        self.commands = CommandHandler(
            locker_id=self.locker_id, compartments=[c.number for c in cfg.compartments],
            controller=controller, clock=clock, answers=answers,
            respond=Responder(self.topics, self.transport.publish),
            response_topic_ok=self.topics.is_response_topic)
        self.discovery = Discovery(locker_id=self.locker_id, name=cfg.locker.name,
                                   version=self.version, topics=self.topics,
                                   compartments=[c.number for c in cfg.compartments],
                                   publish=self.transport.publish)
        self._verdicts = None             # (handler, closed) from route_verdicts
        self.transport.route(self.topics.command_name, self._on_command)
        self.transport.route(self.topics.patron_verdict.__eq__, self._on_verdict)
        self.transport.route(HA_STATUS.__eq__, self._on_ha_status)
        self.transport.on_connected.append(self._on_connected)
        self.transport.on_ack = self._on_ack
        self._started = False
        self._wake_event = threading.Event()
        self._stopping = threading.Event()
        self._started_mono = time.monotonic()
        self._threads = []
        self._outbox = None               # the OutboxSender of the current run
        self._state = None                # the StatePublisher of the current run

    # ------------------------------------------------------------ public API
    @property
    def connected(self):
        return self.transport.connected

    @property
    def url(self):
        return self.transport.url

    def start(self):
        """Connect in the background and keep connected; never blocks.  An
        unreachable broker is retried with backoff (logged)."""
        if self._started:
            raise RuntimeError("central link already started")
        self._started = True
        self._stopping = threading.Event()        # this run's: an old watcher keeps its own
        self._outbox = OutboxSender(transport=self.transport, topic=self.topics.events,
                                    locker_id=self.locker_id, window=self.event_window,
                                    delete_batch=self.delete_batch,
                                    now=self.clock.monotonic)
        self.store.on_commit.append(self.wake)
        self.commands.start()
        for name, target, args in (
                ("bibbox-mqtt-send", self._sender_main, ()),
                ("bibbox-mqtt-state", watch_board,
                 (self.controller.board, self._wake_event.set, self._stopping))):
            t = threading.Thread(target=target, args=args, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("central link starting: broker %s, topic root %s", self.url,
                 self.topics.root)
        self.transport.start(keepalive_s=self.keepalive_s,
                             reconnect_min_s=self.reconnect_min_s,
                             reconnect_max_s=self.reconnect_max_s)

    def stop(self, timeout=3.0):
        """Publish ``offline`` (reason ``stopped``), disconnect, stop threads.
        Unacknowledged events stay in the outbox for the next start."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        self.transport.stopping()
        self.wake()
        try:
            self.store.on_commit.remove(self.wake)
        except ValueError:
            pass
        self.commands.stop(timeout)
        if self._threads:
            self._threads[0].join(timeout)         # the sender: drains, then deletes
        self.transport.stop(timeout)
        if self._verdicts is not None and self._verdicts[1] is not None:
            self._verdicts[1]()
        self._threads = []
        log.info("central link stopped")

    def health(self) -> dict:
        """``{"connected", "subscribed", "outbox_depth", "last_error",
        "inflight", "connected_since", "broker", ...}``; cheap, from any
        thread.  ``subscribed``: connected and the broker has acknowledged
        the command subscriptions (commands sent before that are not kept)."""
        outbox, transport = self._outbox, self.transport
        oldest = outbox.oldest_unacked_s() if outbox else None
        unhealthy = self._restart_reasons(oldest)
        problems = list(unhealthy)
        if self._started and not transport.connected:
            problems.append(f"not connected to {self.url}" + (
                f": {transport.last_error}" if transport.last_error else ""))
        return {"connected": transport.connected, "subscribed": transport.subscribed,
                "outbox_depth": outbox.last_depth if outbox else None,
                "last_error": transport.last_error,
                "inflight": outbox.inflight_count if outbox else 0,
                "connected_since": transport.connected_since, "broker": self.url,
                "loop_alive": transport.loop_alive, "oldest_unacked_s": oldest,
                "problems": problems, "unhealthy": unhealthy}

    @property
    def stall_limit_s(self) -> float:
        """How long an event may await its PUBACK on a live connection before
        the link counts as wedged: three keepalives (paho would have noticed
        a dead connection after one), at least ten minutes."""
        return max(600.0, 3.0 * self.keepalive_s)

    def _restart_reasons(self, oldest_unacked_s) -> list[str]:
        if not self._started:
            return []
        transport, reasons = self.transport, []
        if transport.started and not transport.loop_alive:
            reasons.append("the MQTT network loop has stopped" + (
                f" ({transport.loop_error})" if transport.loop_error else ""))
        for thread in self._threads + [self.commands.thread]:
            if thread is not None and not thread.is_alive():
                reasons.append(f"central link thread {thread.name} has stopped")
        outbox = self._outbox
        if (transport.connected and oldest_unacked_s is not None
                and oldest_unacked_s > self.stall_limit_s and not outbox.paused_until):
            reasons.append(f"events not acknowledged for {oldest_unacked_s:.0f} s "
                           "while connected")
        return reasons

    def wake(self, events=None):
        """Have the sender look at the outbox now.  Registered in
        ``store.on_commit`` by :meth:`start` (called after every commit on the
        controller thread with the commit's events; O(1)); a commit that
        wrote no event does not wake it."""
        if events is None or events:
            self._wake_event.set()

    def route_verdicts(self, handler, *, closed=None):
        """Hand ``<root>/patron/verdict`` messages to ``handler(payload,
        correlation, retained)`` (on paho's thread); ``closed()`` is called
        when the link stops."""
        self._verdicts = (handler, closed)

    def publish_patron_check(self, payload: bytes, request_id: str, expiry_s: int) -> bool:
        """Send a patron check (QoS 0, not retained); True if handed to the socket
        layer.  The payload holds a PIN: it is never logged."""
        if not self.transport.connected:
            return False
        return self.transport.publish(
            self.topics.patron_check, payload, qos=0, retain=False,
            response_topic=self.topics.patron_verdict,
            correlation=request_id.encode(), expiry_s=expiry_s).ok

    # -- paho's thread: keep these short ---------------------------------------
    def _on_connected(self):
        if self.cfg.mqtt.home_assistant:
            self.discovery.request()
        self.wake()

    def _on_ack(self, session, mid, failed):
        outbox = self._outbox
        if outbox is not None:
            outbox.acknowledged(session, mid, failed)
        state = self._state
        if state is not None:
            state.acknowledged(session, mid, failed)
        self._wake_event.set()

    def _on_command(self, msg):
        self.commands.submit(self.topics.command_name(msg.topic), msg.payload,
                             retained=msg.retained, response_topic=msg.response_topic,
                             correlation=msg.correlation)

    def _on_verdict(self, msg):
        if self._verdicts is not None:
            self._verdicts[0](msg.payload, msg.correlation, msg.retained)

    def _on_ha_status(self, msg):
        if self.discovery.on_status(msg.payload):
            self.wake()

    # ------------------------------------------------------------- sender
    def _sender_main(self):
        reader = None
        try:
            reader = self.store.outbox_reader()
            self._outbox.bind(reader)
            self._send_loop(self._outbox)
        except Exception:
            log.exception("central link sender crashed")
            self.transport.report_error("sender crashed")
        finally:
            if reader is not None:
                reader.close()

    def _wait(self, timeout):
        self._wake_event.wait(timeout)
        self._wake_event.clear()

    def _send_loop(self, outbox):
        transport, publish = self.transport, self.transport.publish
        state = StatePublisher(board=self.controller.board, topics=self.topics,
                               clock=self.clock, publish=publish)
        self._state = state
        heartbeat = Heartbeat(topic=self.topics.heartbeat,
                              interval_s=self.cfg.mqtt.heartbeat_s,
                              controller=self.controller, clock=self.clock,
                              boot_id=self.boot_id, state_dir=self.cfg.locker.state_dir,
                              outbox_depth=outbox.depth, inflight=lambda: outbox.inflight_count,
                              publish=publish, started_mono=self._started_mono)
        session = 0
        while True:
            # no tick: woken by commits, acks, the Board, connects and stop;
            # otherwise asleep until the next deadline (heartbeat, delete, pause)
            timeout = outbox.next_deadline_s()
            if transport.connected:
                beat = max(0.0, heartbeat.seconds_left())
                timeout = beat if timeout is None else min(timeout, beat)
            self._wait(timeout)
            outbox.take_acks()
            state.take_acks()
            if self._stopping.is_set():
                outbox.drain_before_stop(self._wait)
                return
            if transport.connected and transport.session != session:
                session = transport.session        # everything again, in order
                outbox.new_session(session)
                state.republish(session, broker_kept=transport.session_present)
                heartbeat.due_now()
            if transport.connected:
                state.publish_changes()
                outbox.publish_events()
                self.discovery.publish_if_due(lambda: self.controller.board.get("state"))
                heartbeat.publish_if_due()
            if outbox.delete_due():
                outbox.delete_acked()
