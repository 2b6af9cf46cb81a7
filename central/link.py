"""The link to the central system over MQTT (paho-mqtt 2, MQTT 5).

Contract (topics in :mod:`central.topics`, payloads in ``docs/asyncapi.yaml``):

- **Availability**: ``<root>/availability`` is retained.  The will (set on
  every connection) is ``{"state":"offline","reason":"connection_lost",...}``;
  every connect publishes ``{"state":"online","version","boot_id",...}`` first;
  :meth:`CentralLink.stop` publishes ``{"state":"offline","reason":"stopped"}``
  and disconnects cleanly (so the will is not sent).
- **Events**: every row of the store's ``outbox`` table goes, in ``seq``
  order, at QoS 1 to ``<root>/events``.  A row is deleted only after the
  broker's PUBACK for it.  On every (re)connect paho's in-memory session is
  dropped (:meth:`paho.mqtt.client.Client.drop_out_messages`) and everything
  not yet acknowledged is sent again from the outbox, oldest first; so central
  sees each event at least once, in order after removing duplicates by
  ``id``.  At most :attr:`CentralLink.event_window` events are unacknowledged.
- **State**: retained ``<root>/state`` (the locker summary) and
  ``<root>/compartments/<n>`` (one per compartment), from the controller's
  Board.  Only snapshots whose content changed are published; all of them
  again after every reconnect.  QoS 0 is enough for these: a message lost
  with a connection is replaced by the full republish on the next one.
- **Heartbeat**: ``<root>/heartbeat`` every ``mqtt.heartbeat_s`` (QoS 0, not
  retained) and right after each connect.
- **Commands** and **patron checks**: :mod:`central.commands`,
  :mod:`central.verifier`.
- **Security**: ``mqtts://`` uses TLS with ``mqtt.ca_file`` (the system CAs if
  empty) and the optional client ``cert_file``/``key_file``; a
  ``credentials_file`` holds ``username:password``.

Threads: paho's network thread (callbacks: they only set flags and queue
work), ``bibbox-mqtt-send`` (the only one that reads and deletes outbox rows
and publishes state and heartbeats, on its own SQLite connection),
``bibbox-mqtt-state`` (waits on the Board and wakes the sender) and
``bibbox-mqtt-cmd`` (runs commands through ``controller.call``).
"""

from __future__ import annotations

import collections
import logging
import os
import random
import socket
import ssl
import sqlite3
import stat
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from bibbox.locker.domain.errors import ConfigError, SecretError

from bibbox.central import homeassistant, sysinfo, wire
from bibbox.central.commands import CommandHandler
from bibbox.central.topics import HA_STATUS, Topics

log = logging.getLogger("bibbox.mqtt")
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
CENTRAL_DB = "bibbox.central.db"


def parse_url(url):
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` -> (scheme, host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigError([f"mqtt.url: {url!r} must look like mqtt://host:port "
                           "or mqtts://host:port"])
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ConfigError([f"mqtt.url: {url!r} has an invalid port"]) from None
    return parts.scheme, parts.hostname, port


def read_credentials(path):
    """``(username, password)`` from a file holding ``username:password``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SecretError(f"mqtt.credentials_file {path}: {exc.strerror}") from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password or "\n" in text:
        raise SecretError(f"mqtt.credentials_file {path}: expected one line "
                          "'username:password'")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("mqtt.credentials_file %s is readable by others; chmod 600 it", path)
    return user, password


def _no_delay(client, userdata, sock):
    """Disable Nagle: a door edge is one small packet that must not wait
    ~40 ms for the broker's delayed ACK of the previous one (paho leaves
    Nagle on)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class CentralLink:
    """The MQTT link of one locker.  See the module docstring for the contract.

    ``url`` overrides ``cfg.mqtt.url``.  Construction validates the URL and
    reads the credentials (raising ConfigError/SecretError); it does no
    network I/O."""

    keepalive_s = 60          # PINGREQ when idle; a dead link is noticed in 1.5x this
    reconnect_min_s = 1.0     # paho backs off from here, doubling ...
    reconnect_max_s = 60.0    # ... up to here; the start is jittered per locker
    paho_inflight = 20        # QoS>0 messages on the wire at once (mosquitto's
                              # default Receive Maximum is 20)
    event_window = 100        # events handed to paho and not yet acknowledged
    max_queued = 1000         # paho's own queue (responses, discovery, events)
    delete_batch = 64         # acknowledged rows deleted in one transaction

    def __init__(self, cfg, *, controller, store, clock, version, boot_id, url=None):
        self.cfg, self.controller, self.store, self.clock = cfg, controller, store, clock
        self.keepalive_s = cfg.mqtt.keepalive_s
        self.version, self.boot_id = str(version), str(boot_id)
        self.locker_id = cfg.locker.id
        self.topics = Topics(cfg.topic_root)
        self.scheme, self.host, self.port = parse_url(url or cfg.mqtt.url)
        self._credentials = (read_credentials(cfg.mqtt.credentials_file)
                             if cfg.mqtt.credentials_file else None)
        self.commands = CommandHandler(
            locker_id=self.locker_id,
            compartments=[c.number for c in cfg.compartments],
            controller=controller, clock=clock,
            db_path=os.path.join(cfg.locker.state_dir, CENTRAL_DB),
            respond=self._respond, response_topic_ok=self.topics.is_response_topic)
        self._verifier = None
        self._client = self._make_client()
        self._started = False
        self._wake_event = threading.Event()
        self._stopping = threading.Event()
        self._conn_lock = threading.Lock()
        self._connected = False
        self._connected_since = None
        self._gen = 0                    # bumped on every successful connect
        self._acks = collections.deque()  # (gen, mid, failed) from paho's thread
        self._ha_due = False
        self._last_error = None
        self._depth = None
        self._inflight_count = 0
        self._started_mono = time.monotonic()
        self._threads = []
        self._connect_failures = 0

    # ------------------------------------------------------------ public API
    @property
    def connected(self):
        return self._connected

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self):
        """Connect in the background and keep connected; never blocks.  An
        unreachable broker is retried with backoff (logged)."""
        if self._started:
            raise RuntimeError("central link already started")
        self._started = True
        self._stopping.clear()
        if self._client is None:
            self._client = self._make_client()
        # jittered so that a fleet does not reconnect in step after an outage
        self._client.reconnect_delay_set(self.reconnect_min_s * random.uniform(1.0, 1.5),
                                         self.reconnect_max_s)
        self.store.on_commit.append(self.wake)
        self.commands.start()
        for name, target in (("bibbox-mqtt-send", self._sender_main),
                             ("bibbox-mqtt-state", self._state_watch_main)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("central link starting: broker %s, topic root %s", self.url,
                 self.topics.root)
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s,
                                   clean_start=True)
        self._client.loop_start()

    def stop(self, timeout=3.0):
        """Publish ``offline`` (reason ``stopped``), disconnect, stop threads.
        Unacknowledged events stay in the outbox for the next start."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        self.wake()
        try:
            self.store.on_commit.remove(self.wake)
        except ValueError:
            pass
        self.commands.stop(timeout)
        sender = self._threads[0] if self._threads else None
        if sender is not None:
            sender.join(timeout)
        if self._connected:
            info = self._client.publish(
                self.topics.availability,
                wire.availability("offline", version=self.version, boot_id=self.boot_id,
                                  reason="stopped", ts=self.clock.wall()),
                qos=wire.QOS_AVAILABILITY, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        if self._verifier is not None:
            self._verifier.close()
        self._threads = []
        self._client = None
        self._connected = False
        log.info("central link stopped")

    def health(self) -> dict:
        """``{"connected", "outbox_depth", "last_error", "inflight",
        "connected_since", "broker"}``; cheap, from any thread."""
        return {"connected": self._connected, "outbox_depth": self._depth,
                "last_error": self._last_error, "inflight": self._inflight_count,
                "connected_since": self._connected_since, "broker": self.url}

    def wake(self, events=None):
        """Have the sender look at the outbox now.  Registered in
        ``store.on_commit`` by :meth:`start` (called after every commit on the
        controller thread with the commit's events; O(1)); a commit that
        wrote no event does not wake it."""
        if events is None or events:
            self._wake_event.set()

    def attach_verifier(self, verifier):
        """Route ``<root>/patron/verdict`` messages to ``verifier.on_verdict``."""
        self._verifier = verifier

    def publish_patron_check(self, payload: bytes, request_id: str, expiry_s: int) -> bool:
        """Send a patron check (QoS 0, not retained); True if handed to the socket
        layer.  The payload holds a PIN: it is never logged."""
        client = self._client
        if client is None or not self._connected:
            return False
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.topics.patron_verdict
        props.CorrelationData = request_id.encode()
        props.MessageExpiryInterval = int(expiry_s)
        info = client.publish(self.topics.patron_check, payload, qos=0, retain=False,
                              properties=props)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # --------------------------------------------------------------- client
    def _make_client(self):
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"bibbox-{self.locker_id}",
                             protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(self.paho_inflight)
        client.max_queued_messages_set(self.max_queued)
        client.will_set(self.topics.availability,
                        wire.availability("offline", version=self.version,
                                          boot_id=self.boot_id, reason="connection_lost"),
                        qos=wire.QOS_AVAILABILITY, retain=True)
        if self._credentials:
            client.username_pw_set(*self._credentials)
        m = self.cfg.mqtt
        if self.scheme == "mqtts":
            try:
                client.tls_set(ca_certs=m.ca_file or None, certfile=m.cert_file or None,
                               keyfile=m.key_file or None, cert_reqs=ssl.CERT_REQUIRED,
                               tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError([f"mqtt.ca_file/cert_file/key_file: cannot load: {exc}"]) \
                    from None
        elif m.ca_file or m.cert_file:
            log.warning("mqtt.ca_file/cert_file are set but mqtt.url is not mqtts://; "
                        "the connection is NOT encrypted")
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- paho's thread: keep these short -------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self._last_error = f"broker refused the connection: {reason}"
            log.error("broker %s refused the connection: %s", self.url, reason)
            return
        with self._conn_lock:
            dropped = client.drop_out_messages()
            self._gen += 1
            self._connected = True
            self._connected_since = self.clock.wall()
        self._connect_failures = 0
        self._last_error = None
        receive_max = getattr(properties, "ReceiveMaximum", 65535)
        if receive_max < self.paho_inflight:
            log.error("broker allows only %d unacknowledged messages (Receive Maximum); "
                      "set its max_inflight_messages to at least %d", receive_max,
                      self.paho_inflight)
        log.info("connected to %s; %d unacknowledged messages dropped, the outbox "
                 "resends them", self.url, len(dropped))
        client.publish(self.topics.availability,
                       wire.availability("online", version=self.version,
                                         boot_id=self.boot_id, ts=self.clock.wall()),
                       qos=wire.QOS_AVAILABILITY, retain=True)
        subs = [(self.topics.commands_filter, SubscribeOptions(qos=1, retainAsPublished=True)),
                (self.topics.patron_verdict, SubscribeOptions(qos=1, retainAsPublished=True))]
        if self.cfg.mqtt.home_assistant:
            subs.append((HA_STATUS, SubscribeOptions(qos=1)))
            self._ha_due = True
        client.subscribe(subs)
        self.wake()

    def _on_connect_fail(self, client, userdata):
        self._connect_failures += 1
        self._last_error = f"cannot connect to {self.url}"
        n = self._connect_failures
        if n <= 3 or n % 10 == 0:
            log.warning("cannot connect to broker %s (attempt %d; unreachable, refused "
                        "or TLS failed); retrying with backoff up to %g s",
                        self.url, n, self.reconnect_max_s)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        with self._conn_lock:
            was = self._connected
            self._connected = False
        if self._stopping.is_set():
            return
        if was:
            self._last_error = f"connection lost: {reason}"
            log.warning("connection to %s lost (%s); reconnecting with backoff",
                        self.url, reason)

    def _on_publish(self, client, userdata, mid, reason, properties):
        self._acks.append((self._gen, mid, reason.is_failure))
        self._wake_event.set()

    def _on_message(self, client, userdata, msg):
        topic = msg.topic
        name = self.topics.command_name(topic)
        props = getattr(msg, "properties", None)
        if name is not None:
            self.commands.submit(
                name, msg.payload, retained=bool(msg.retain),
                response_topic=getattr(props, "ResponseTopic", None),
                correlation=getattr(props, "CorrelationData", None))
        elif topic == self.topics.patron_verdict:
            if self._verifier is not None:
                self._verifier.on_verdict(msg.payload,
                                          getattr(props, "CorrelationData", None),
                                          bool(msg.retain))
        elif topic == HA_STATUS:
            if msg.payload.strip() == b"online":
                log.info("Home Assistant is online; discovery published again")
                self._ha_due = True
                self.wake()

    # -- responses (handler thread or paho's) ---------------------------------
    def _respond(self, response, req):
        body = response if isinstance(response, bytes) else wire.dumps(response)
        topic = self.topics.responses
        props = None
        if req is not None:
            if req.response_topic and self.topics.is_response_topic(req.response_topic):
                topic = req.response_topic
            if req.correlation is not None:
                props = Properties(PacketTypes.PUBLISH)
                props.CorrelationData = req.correlation
        client = self._client
        if client is None:
            return
        info = client.publish(topic, body, qos=wire.QOS_RESPONSES, retain=False,
                              properties=props)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            log.warning("outgoing queue full; a command response was dropped")

    # ------------------------------------------------------------- sender
    def _state_watch_main(self):
        version = None
        board = self.controller.board
        while not self._stopping.is_set():
            snap = board.wait_newer("state", version, timeout=1.0)
            new = snap.get("version") if snap else None
            if new != version:
                version = new
                self._wake_event.set()

    def _sender_main(self):
        conn = self.store.reader()
        sender = _Sender(self, conn)
        try:
            sender.run()
        except Exception:
            log.exception("central link sender crashed")
            self._last_error = "sender crashed"
        finally:
            conn.close()


class _Sender:
    """State of the sender thread; see CentralLink's module docstring."""

    def __init__(self, link: CentralLink, conn):
        self.link, self.conn = link, conn
        self.gen = 0
        self.inflight = collections.OrderedDict()   # mid -> (gen, seq)
        self.cursor = 0                 # highest seq handed to paho this connection
        self.to_delete = []
        self.last_delete = time.monotonic()
        self.paused_until = 0.0         # after the broker refused an event
        self.state_version = object()
        self.locker_last = None         # (content, since)
        self.comp_last = {}             # number -> (content, since)
        self.next_heartbeat = 0.0

    def run(self):
        link = self.link
        link._depth = self.depth()
        while True:
            now = time.monotonic()
            timeout = 5.0
            if self.to_delete:
                timeout = 0.2
            if link._connected:
                timeout = max(0.0, min(timeout, self.next_heartbeat - now))
            link._wake_event.wait(timeout)
            link._wake_event.clear()
            self.take_acks()
            if link._stopping.is_set():
                self.drain_before_stop()
                return
            if link._connected and link._gen != self.gen:
                self.new_connection()
            if link._connected:
                self.publish_state()
                self.publish_events()
                if link._ha_due:
                    link._ha_due = False
                    self.publish_discovery()
                if time.monotonic() >= self.next_heartbeat:
                    self.publish_heartbeat()
            if self.to_delete and (len(self.to_delete) >= link.delete_batch
                                   or not self.inflight
                                   or time.monotonic() - self.last_delete > 0.5):
                self.delete_acked()

    # -- events -----------------------------------------------------------------
    def take_acks(self):
        acks = self.link._acks
        while acks:
            gen, mid, failed = acks.popleft()
            entry = self.inflight.get(mid)
            if entry is None or entry[0] != gen:
                continue            # not an event, or from an older connection
            del self.inflight[mid]
            if failed:
                self.link._last_error = f"broker refused event seq {entry[1]}"
                log.error("broker refused event seq %d (check the ACL for %s); "
                          "pausing events for 30 s", entry[1], self.link.topics.events)
                self.paused_until = time.monotonic() + 30.0
                continue
            self.to_delete.append(entry[1])
        self.link._inflight_count = len(self.inflight)

    def new_connection(self):
        """Everything unacknowledged goes again, from the oldest row."""
        self.delete_acked()
        self.gen = self.link._gen
        self.inflight.clear()
        self.cursor = 0
        self.paused_until = 0.0
        self.state_version = object()
        self.publish_state(force=True)
        self.next_heartbeat = 0.0

    def publish_events(self):
        link = self.link
        if self.paused_until:
            if time.monotonic() < self.paused_until or self.inflight:
                return
            self.delete_acked()
            self.paused_until, self.cursor = 0.0, 0      # rewind: resend from the oldest
        room = link.event_window - len(self.inflight)
        if room <= 0 or (self.inflight and room < link.event_window // 4):
            return      # refill in batches: fewer queries, fewer wake-ups
        try:
            rows = link.store.outbox_batch(after_seq=self.cursor, limit=room, conn=self.conn)
        except sqlite3.Error as exc:
            link._last_error = f"cannot read the outbox: {exc}"
            log.error("cannot read the outbox: %s", exc)
            return
        if not rows:
            return
        topic, client = link.topics.events, link._client
        with link._conn_lock:
            if not link._connected or link._gen != self.gen:
                return          # a reconnect slipped in; the next turn starts over
            for row in rows:
                info = client.publish(topic, wire.event(row, link.locker_id),
                                      qos=wire.QOS_EVENTS)
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    break       # paho's queue is full; acknowledgements wake us
                self.inflight[info.mid] = (self.gen, row["seq"])
                self.cursor = row["seq"]
        link._inflight_count = len(self.inflight)

    def delete_acked(self):
        if not self.to_delete:
            return
        seqs = self.to_delete
        try:
            for i in range(0, len(seqs), 500):
                chunk = seqs[i:i + 500]
                self.conn.execute("DELETE FROM outbox WHERE seq IN (%s)"
                                  % ",".join("?" * len(chunk)), chunk)
        except sqlite3.Error as exc:
            self.link._last_error = f"cannot delete sent events: {exc}"
            log.error("cannot delete acknowledged events from the outbox: %s", exc)
            return      # kept; tried again next turn (a resend would be a duplicate)
        self.to_delete = []
        self.last_delete = time.monotonic()
        self.link._depth = self.depth()

    def depth(self):
        try:
            return self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        except sqlite3.Error:
            return None

    def drain_before_stop(self, limit_s=1.0):
        """Give in-flight events a moment to be acknowledged, then delete."""
        deadline = time.monotonic() + limit_s
        while self.inflight and self.link._connected and time.monotonic() < deadline:
            self.link._wake_event.wait(0.05)
            self.link._wake_event.clear()
            self.take_acks()
        self.delete_acked()

    # -- state, heartbeat, discovery ------------------------------------------
    def publish_state(self, force=False):
        link = self.link
        snap = link.controller.board.get("state")
        if snap is None or (not force and snap.get("version") == self.state_version):
            return
        self.state_version = snap.get("version")
        now = link.clock.wall()
        client = link._client
        summary = wire.locker_snapshot(snap)
        self.locker_last = self._publish_if(client, link.topics.state, summary,
                                            self.locker_last, now, force)
        for view in snap.get("compartments", []):
            n = view["number"]
            self.comp_last[n] = self._publish_if(client, link.topics.compartment(n),
                                                 wire.compartment_snapshot(view),
                                                 self.comp_last.get(n), now, force)

    @staticmethod
    def _publish_if(client, topic, content, last, now, force):
        if last is not None and last[0] == content:
            if not force:
                return last
            since = last[1]
        else:
            since = now
        client.publish(topic, wire.with_since(content, since), qos=wire.QOS_STATE,
                       retain=True)
        return content, since

    def publish_heartbeat(self):
        link = self.link
        self.next_heartbeat = time.monotonic() + link.cfg.mqtt.heartbeat_s
        snap = link.controller.board.get("state") or {}
        faults = sorted(c["number"] for c in snap.get("compartments", [])
                        if c.get("door") == "unknown" or "sensor_flapping" in c.get("alarms", ()))
        healthy_at = getattr(link.controller, "healthy_at", None)
        depth = self.depth()
        link._depth = depth
        body = {"ts": round(link.clock.wall(), 3),
                "uptime_s": int(time.monotonic() - link._started_mono),
                "boot_id": link.boot_id,
                "outbox_depth": depth,
                "inflight": len(self.inflight),
                "reader_online": snap.get("reader_online"),
                "sensor_faults": faults,
                "controller_idle_s": (None if healthy_at is None
                                      else round(time.monotonic() - healthy_at, 1)),
                "disk_free_bytes": sysinfo.disk_free_bytes(link.cfg.locker.state_dir),
                "cpu_temp_c": sysinfo.cpu_temp_c()}
        link._client.publish(link.topics.heartbeat, wire.dumps(body),
                             qos=wire.QOS_HEARTBEAT, retain=False)

    def publish_discovery(self):
        link = self.link
        snap = link.controller.board.get("state") or {}
        numbers = [c["number"] for c in snap.get("compartments", [])] or \
            [c.number for c in link.cfg.compartments]
        for topic, payload in homeassistant.discovery_messages(
                locker_id=link.locker_id, name=link.cfg.locker.name,
                version=link.version, topics=link.topics, compartments=numbers):
            link._client.publish(topic, payload, qos=wire.QOS_HA_DISCOVERY, retain=True)
