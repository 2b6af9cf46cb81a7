"""The MQTT transport of the central link: one paho client (paho-mqtt 2, MQTT 5).

Contract:
- **Availability**: the will (set on every connection) is the retained
  ``offline``/``connection_lost`` message of :class:`Availability`; every
  connect publishes the retained ``online`` message first; :meth:`Transport.stop`
  publishes ``offline``/``stopped`` and disconnects cleanly (no will).
- **Connections**: every successful connect starts a new connection (a
  number, :attr:`Transport.session`): paho's unacknowledged messages of the
  old one are dropped (their owners send them again), the subscriptions are
  made again, and the ``on_connected`` listeners are called.
- **Broker session** (``session_expiry_s`` > 0): the locker connects with
  clean start off and that MQTT 5 session expiry interval, always under
  the same client id, so the broker keeps its subscriptions and queues the
  QoS 1 messages (commands) that arrive while it is away -- for that long
  after it went, within the broker's own queue limits -- and delivers them
  on the next connect.  0: clean start, nothing kept.
- **Incoming** messages go to the first route whose match accepts the topic,
  as :class:`Incoming` values; **acknowledgements** (PUBACK) go to
  ``on_ack(session, mid, failed)``.  No exception from a route escapes into
  paho (it would end paho's network thread for good): :meth:`Transport._on_message`
  is the one guard, it logs and drops the message.
- **Health**: :attr:`Transport.loop_alive` says whether paho's network loop
  still runs; a dead loop also counts as not connected.
- **Idle**: the network loop sleeps until data arrives, a publish wakes it
  (paho's socket pair) or the next keepalive deadline comes; never a 1 s
  tick (see :class:`_Client`).
- **Security**: ``mqtts://`` uses TLS with the given CA file (the system CAs
  if empty) and the optional client certificate and key (paths, read by
  paho); credentials are handed in as values, never read here.
- Reconnects are paho's, with jittered exponential backoff.

Callbacks run on paho's network thread: they only set flags, publish and
call listeners that must be as short.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from bibbox.locker.domain.errors import ConfigError

from bibbox.central import wire

log = logging.getLogger("bibbox.mqtt")
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


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


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the TLS files; an empty path means none."""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class Subscription:
    topic: str
    qos: int = 1
    retain_as_published: bool = True


@dataclass(frozen=True)
class Incoming:
    """A received message, without paho's types."""
    topic: str
    payload: bytes
    retained: bool
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class Sent:
    """What became of a publish: ``mid`` for acknowledgements, and whether
    it was handed on (``ok``) or paho's queue was full."""
    mid: int | None
    rc: int

    @property
    def ok(self):
        return self.rc == mqtt.MQTT_ERR_SUCCESS

    @property
    def queue_full(self):
        return self.rc == mqtt.MQTT_ERR_QUEUE_SIZE


NOT_SENT = Sent(None, mqtt.MQTT_ERR_NO_CONN)
IDLE_MAX_S = 3600.0       # the longest the network loop sleeps (no keepalive)


class _Client(mqtt.Client):
    """paho's client, with its network loop made to wait for work.

    paho's ``loop_forever`` calls ``_loop(1.0)``: a ``select`` that returns
    every second to look at the keepalive clock.  Incoming data and every
    publish (paho writes to its socket pair) end the ``select`` anyway, so
    the only deadline left is the keepalive's: a PINGREQ is due ``keepalive``
    seconds after the last packet out or the last bytes in (paho's
    ``_check_keepalive``), and a missing PINGRESP is noticed at the same
    moment one keepalive later.  ``_loop`` waits exactly until then (0.05 s
    at least, so a deadline paho does not act on cannot spin).

    It also records whether its loop runs (``loop_running``) and which
    exception ended it (``loop_error``), for :attr:`Transport.loop_alive`.
    Relies on paho 2's ``_keepalive``, ``_last_msg_out`` and
    ``_last_bytes_received`` (checked by the idle test)."""

    loop_running = False
    loop_error = None

    def loop_start(self):
        self.loop_running, self.loop_error = True, None
        return super().loop_start()

    def loop_forever(self, timeout=1.0, retry_first_connection=False):
        self.loop_running = True
        try:
            return super().loop_forever(timeout, retry_first_connection)
        except BaseException as exc:
            self.loop_error = type(exc).__name__
            raise
        finally:
            self.loop_running = False

    def next_deadline_s(self) -> float:
        keepalive = self._keepalive
        if not keepalive:
            return IDLE_MAX_S
        with self._msgtime_mutex:
            last = min(self._last_msg_out, self._last_bytes_received)
        return min(IDLE_MAX_S, max(0.05, last + keepalive - time.monotonic()))

    def _loop(self, timeout=1.0):
        return super()._loop(self.next_deadline_s())


class Availability:
    """The retained ``<root>/availability`` messages of one boot."""

    def __init__(self, topic, *, version, boot_id, clock):
        self.topic, self.version, self.boot_id, self.clock = topic, version, boot_id, clock

    def will(self) -> bytes:
        return wire.availability("offline", version=self.version, boot_id=self.boot_id,
                                 reason="connection_lost")

    def online(self) -> bytes:
        return wire.availability("online", version=self.version, boot_id=self.boot_id,
                                 ts=self.clock.wall())

    def stopped(self) -> bytes:
        return wire.availability("offline", version=self.version, boot_id=self.boot_id,
                                 reason="stopped", ts=self.clock.wall())


def _no_delay(client, userdata, sock):
    """Disable Nagle: a door edge is one small packet that must not wait
    ~40 ms for the broker's delayed ACK of the previous one (paho leaves
    Nagle on)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class Transport:
    """One paho client and its connection.  Construction validates the URL
    and loads the TLS files (raising ConfigError); it does no network I/O."""

    paho_inflight = 20        # QoS>0 messages on the wire at once (mosquitto's
                              # default Receive Maximum is 20)
    max_queued = 1000         # paho's own queue (responses, discovery, events)

    def __init__(self, *, client_id: str, url: str, availability: Availability,
                 subscriptions: list[Subscription], clock, credentials=None,
                 tls: TlsFiles = TlsFiles(), session_expiry_s: int = 0):
        self.client_id, self.availability, self.clock = client_id, availability, clock
        self.scheme, self.host, self.port = parse_url(url)
        self.subscriptions = list(subscriptions)
        self.credentials, self.tls = credentials, tls
        self.session_expiry_s = int(session_expiry_s)
        self.session_present = False      # the broker resumed our session last connect
        self.on_connected: list[Callable[[], None]] = []
        self.on_ack: Callable[[int, int, bool], None] = lambda session, mid, failed: None
        self._routes: list[tuple[Callable[[str], bool], Callable[[Incoming], None]]] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._started = False
        self._connected = False
        self._subscribed = False
        self._session = 0
        self._failures = 0
        self.connected_since = None
        self.last_error = None
        self.reconnect_max_s = None
        self._client = self._make_client()

    # -------------------------------------------------------------- state
    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """Connected, and paho's network loop still runs to serve it."""
        return self._connected and self.loop_alive

    @property
    def subscribed(self) -> bool:
        """Connected, and the broker acknowledged this connection's subscriptions."""
        return self.connected and self._subscribed

    @property
    def loop_alive(self) -> bool:
        """paho's network loop runs (False before start and after stop too)."""
        client = self._client
        return client is not None and client.loop_running

    @property
    def started(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""
        return self._started

    @property
    def loop_error(self) -> str | None:
        """The exception that ended the network loop, if one did."""
        client = self._client
        return client.loop_error if client is not None else None

    @property
    def session(self) -> int:
        """The number of the current (or last) connection; 0 before the first."""
        return self._session

    def report_error(self, text: str) -> None:
        """Record the latest problem of the link (cleared by the next connect)."""
        self.last_error = text

    @contextmanager
    def current_session(self):
        """Hold off a reconnect while the caller publishes; yields the session
        number, or None while disconnected."""
        with self._lock:
            yield self._session if self._connected else None

    def route(self, match: Callable[[str], bool], handler: Callable[[Incoming], None]):
        """Send incoming messages whose topic ``match`` accepts to ``handler``
        (on paho's thread; first matching route wins)."""
        self._routes.append((match, handler))

    # ------------------------------------------------------------ running
    def start(self, *, keepalive_s, reconnect_min_s, reconnect_max_s):
        """Connect in the background and keep connected; never blocks."""
        self._stopping = False
        if self._client is None:
            self._client = self._make_client()
        self.reconnect_max_s = reconnect_max_s
        # jittered so that a fleet does not reconnect in step after an outage
        self._client.reconnect_delay_set(reconnect_min_s * random.uniform(1.0, 1.5),
                                         reconnect_max_s)
        props = None
        if self.session_expiry_s > 0:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
        self._client.connect_async(self.host, self.port, keepalive=keepalive_s,
                                   clean_start=self.session_expiry_s <= 0,
                                   properties=props)
        self._client.loop_start()
        self._started = True

    def stopping(self):
        """From now on a lost connection is expected (not an error)."""
        self._stopping = True

    def stop(self, timeout=3.0):
        """Publish ``offline``/``stopped``, disconnect cleanly, stop paho."""
        self._stopping = True
        self._started = False
        client = self._client
        if client is None:
            return
        if self._connected:
            info = client.publish(self.availability.topic, self.availability.stopped(),
                                  qos=wire.QOS_AVAILABILITY, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()
        self._client = None
        self._connected = False

    def publish(self, topic, payload, *, qos, retain=False, response_topic=None,
                correlation=None, expiry_s=None) -> Sent:
        """Hand a message to paho; MQTT 5 properties only when given."""
        client = self._client
        if client is None:
            return NOT_SENT
        props = None
        if response_topic is not None or correlation is not None or expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
            if expiry_s is not None:
                props.MessageExpiryInterval = int(expiry_s)
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        return Sent(info.mid, info.rc)

    # ------------------------------------------------------------- client
    def _make_client(self):
        client = _Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(self.paho_inflight)
        client.max_queued_messages_set(self.max_queued)
        client.will_set(self.availability.topic, self.availability.will(),
                        qos=wire.QOS_AVAILABILITY, retain=True)
        if self.credentials:
            client.username_pw_set(*self.credentials)
        tls = self.tls
        if self.scheme == "mqtts":
            try:
                client.tls_set(ca_certs=tls.ca_file or None, certfile=tls.cert_file or None,
                               keyfile=tls.key_file or None, cert_reqs=ssl.CERT_REQUIRED,
                               tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError([f"mqtt.ca_file/cert_file/key_file: cannot load: {exc}"]) \
                    from None
        elif tls.ca_file or tls.cert_file:
            log.warning("mqtt.ca_file/cert_file are set but mqtt.url is not mqtts://; "
                        "the connection is NOT encrypted")
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- paho's thread: keep these short ---------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error("broker %s refused the connection: %s", self.url, reason)
            return
        with self._lock:
            dropped = client.drop_out_messages()
            self._session += 1
            self._connected = True
            self._subscribed = False
            self.connected_since = self.clock.wall()
            self.session_present = bool(getattr(flags, "session_present", False))
        self._failures = 0
        self.last_error = None
        receive_max = getattr(properties, "ReceiveMaximum", 65535)
        if receive_max < self.paho_inflight:
            log.error("broker allows only %d unacknowledged messages (Receive Maximum); "
                      "set its max_inflight_messages to at least %d", receive_max,
                      self.paho_inflight)
        log.info("connected to %s (%s); %d unacknowledged messages dropped, the outbox "
                 "resends them", self.url, "session resumed" if self.session_present
                 else "new session", len(dropped))
        client.publish(self.availability.topic, self.availability.online(),
                       qos=wire.QOS_AVAILABILITY, retain=True)
        client.subscribe([(s.topic, SubscribeOptions(
            qos=s.qos, retainAsPublished=s.retain_as_published)) for s in self.subscriptions])
        for listener in self.on_connected:
            listener()

    def _on_connect_fail(self, client, userdata):
        self._failures += 1
        self.last_error = f"cannot connect to {self.url}"
        n = self._failures
        if n <= 3 or n % 10 == 0:
            log.warning("cannot connect to broker %s (attempt %d; unreachable, refused "
                        "or TLS failed); retrying with backoff up to %g s",
                        self.url, n, self.reconnect_max_s)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        with self._lock:
            was = self._connected
            self._connected = False
        if self._stopping:
            return
        if was:
            self.last_error = f"connection lost: {reason}"
            log.warning("connection to %s lost (%s); reconnecting with backoff",
                        self.url, reason)

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        failed = [r for r in reasons if r.is_failure]
        if failed:
            self.last_error = f"broker refused a subscription: {failed[0]}"
            log.error("broker %s refused a subscription: %s", self.url, failed[0])
        self._subscribed = True

    def _on_publish(self, client, userdata, mid, reason, properties):
        self.on_ack(self._session, mid, reason.is_failure)

    def _on_message(self, client, userdata, msg):
        """The dispatch, and the one guard between payloads and paho: an
        exception escaping here would end paho's network thread for good
        (no reconnects, no PUBACKs read), so any is logged and the message
        dropped.  The routes parse with bounds and answer what they refuse."""
        try:
            topic = msg.topic
            props = getattr(msg, "properties", None)
            incoming = Incoming(topic, bytes(msg.payload), bool(msg.retain),
                                getattr(props, "ResponseTopic", None),
                                getattr(props, "CorrelationData", None))
            for match, handler in self._routes:
                if match(topic):
                    handler(incoming)
                    return
        except Exception:
            log.exception("an incoming message could not be handled; dropped")
