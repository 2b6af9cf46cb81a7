"""The MQTT transport of the central link: one paho client (paho-mqtt 2, MQTT 5).

Contract:
- **Availability**: the will (set on every connection) is the retained
  ``offline``/``connection_lost`` message of :class:`Availability`; every
  connect publishes the retained ``online`` message first; :meth:`Transport.stop`
  publishes ``offline``/``stopped`` and disconnects cleanly (no will).
- **Sessions**: every successful connect starts a new session (a number,
  :attr:`Transport.session`): paho's unacknowledged messages of the old one
  are dropped (their owners send them again), the subscriptions are made
  again, and the ``on_connected`` listeners are called.
- **Incoming** messages go to the first route whose match accepts the topic,
  as :class:`Incoming` values; **acknowledgements** (PUBACK) go to
  ``on_ack(session, mid, failed)``.
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
                 tls: TlsFiles = TlsFiles()):
        self.client_id, self.availability, self.clock = client_id, availability, clock
        self.scheme, self.host, self.port = parse_url(url)
        self.subscriptions = list(subscriptions)
        self.credentials, self.tls = credentials, tls
        self.on_connected: list[Callable[[], None]] = []
        self.on_ack: Callable[[int, int, bool], None] = lambda session, mid, failed: None
        self._routes: list[tuple[Callable[[str], bool], Callable[[Incoming], None]]] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._connected = False
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
        return self._connected

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
        self._client.connect_async(self.host, self.port, keepalive=keepalive_s,
                                   clean_start=True)
        self._client.loop_start()

    def stopping(self):
        """From now on a lost connection is expected (not an error)."""
        self._stopping = True

    def stop(self, timeout=3.0):
        """Publish ``offline``/``stopped``, disconnect cleanly, stop paho."""
        self._stopping = True
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
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
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
            self.connected_since = self.clock.wall()
        self._failures = 0
        self.last_error = None
        receive_max = getattr(properties, "ReceiveMaximum", 65535)
        if receive_max < self.paho_inflight:
            log.error("broker allows only %d unacknowledged messages (Receive Maximum); "
                      "set its max_inflight_messages to at least %d", receive_max,
                      self.paho_inflight)
        log.info("connected to %s; %d unacknowledged messages dropped, the outbox "
                 "resends them", self.url, len(dropped))
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

    def _on_publish(self, client, userdata, mid, reason, properties):
        self.on_ack(self._session, mid, reason.is_failure)

    def _on_message(self, client, userdata, msg):
        props = getattr(msg, "properties", None)
        incoming = Incoming(msg.topic, msg.payload, bool(msg.retain),
                            getattr(props, "ResponseTopic", None),
                            getattr(props, "CorrelationData", None))
        for match, handler in self._routes:
            if match(msg.topic):
                handler(incoming)
                return
