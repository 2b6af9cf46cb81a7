"""A real mosquitto for tests, a TCP proxy to cut links, and a subscriber.

- :class:`Broker` runs ``/usr/sbin/mosquitto -c <conf>`` on a free loopback
  port (persistence off, ``user root`` so it also runs as root), waits until
  it accepts connections, and can be killed with SIGKILL and restarted on the
  same port.
- :class:`TcpProxy` sits between a client and the broker: it counts bytes,
  can refuse new connections (``gate``) and cut every live one abruptly
  (``sever``: RST, no DISCONNECT, so the broker publishes the will).
- :class:`Subscriber` collects messages (MQTT 5) and hands each to a
  validator; waiting is on a condition with a timeout, never a sleep.
- ``broker_factory`` / ``broker`` are pytest fixtures; import them into a
  test module to use them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)   # polling a port that is not open yet
    return False


class Broker:
    """One mosquitto process.  ``extra`` is appended to the listener's
    configuration (TLS files, password_file, acl_file...)."""

    def __init__(self, workdir, *, port=None, extra="", anonymous=True):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port or free_port()
        self.conf = os.path.join(self.workdir, f"mosquitto-{self.port}.conf")
        self.log_path = os.path.join(self.workdir, f"mosquitto-{self.port}.log")
        with open(self.conf, "w") as fh:
            fh.write(f"user root\npersistence false\nper_listener_settings false\n"
                     f"max_queued_messages 0\nmax_inflight_messages 20\nset_tcp_nodelay true\n"
                     f"log_dest file {self.log_path}\nlog_type error\nlog_type warning\n"
                     f"log_type notice\nlog_type information\n"
                     f"listener {self.port} 127.0.0.1\n"
                     f"allow_anonymous {'true' if anonymous else 'false'}\n{extra}\n")
        self.proc = None

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout=5.0):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, timeout):
            self.stop()
            raise RuntimeError(f"mosquitto did not start; see {self.log_path}")
        return self

    def kill(self):
        """SIGKILL: no wills sent, nothing saved."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
            self.proc = None

    def restart(self, timeout=10.0):
        self.kill()
        return self.start(timeout)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def log(self):
        try:
            with open(self.log_path) as fh:
                return fh.read()
        except OSError:
            return ""


@pytest.fixture
def broker_factory(tmp_path):
    """``make(**kwargs)`` starts a :class:`Broker`; all stop at teardown."""
    made = []

    def make(**kwargs):
        b = Broker(tmp_path / f"broker{len(made)}", **kwargs).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


# --------------------------------------------------------------------- proxy
class TcpProxy:
    """Forward 127.0.0.1:<port> to the broker, counting bytes each way."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.bytes_up = self.bytes_down = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._pairs = []
        self._severed = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                _abort(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 2)
                upstream.settimeout(None)
            except OSError:
                _abort(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, src, dst, up):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        if src in self._severed or dst in self._severed:
            return              # sever() owns these sockets: RST, not FIN
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def sever(self):
        """Cut every live connection at once with a RST on both sides."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            for a, b in pairs:
                self._severed.update((a, b))
        for a, b in pairs:
            _abort(a)
            _abort(b)

    def close(self):
        self._closed = True
        self.open.clear()
        self.sever()
        self.listener.close()


def _abort(sock):
    """Close with a RST.  SHUT_RD first wakes a thread blocked in recv (sends
    nothing), so the close really happens now."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# ---------------------------------------------------------------- subscriber
class Received:
    __slots__ = ("topic", "payload", "retain", "properties", "t")

    def __init__(self, msg):
        self.topic, self.payload, self.retain = msg.topic, bytes(msg.payload), bool(msg.retain)
        self.properties = getattr(msg, "properties", None)
        self.t = time.monotonic()

    def json(self):
        import json
        return json.loads(self.payload)

    def __repr__(self):
        return f"<{self.topic} r={int(self.retain)} {self.payload[:80]!r}>"


class Subscriber:
    """A test client that records everything it receives on ``filters``.

    ``validate(topic, payload)`` (optional) is run on each message; what it
    raises is kept in :attr:`errors` (assert it is empty at the end)."""

    def __init__(self, port, filters=("#",), *, validate=None, qos=0, username=None,
                 password=None, tls=None, client_id=None):
        self.port, self.filters, self.qos = port, list(filters), qos
        self.validate = validate
        self.messages = []
        self.errors = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)

    def start(self, timeout=5.0):
        self.subscribed.clear()
        self.disconnected.clear()
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.subscribed.wait(timeout), "subscriber did not get its SUBACK"
        return self

    def resubscribed(self, timeout=10.0):
        """After a broker restart: wait until paho noticed, reconnected and
        subscribed again."""
        assert self.disconnected.wait(timeout), "subscriber never saw the broker go"
        assert self.subscribed.wait(timeout), "subscriber did not come back"
        self.disconnected.clear()

    def _on_disconnect(self, *args):
        self.subscribed.clear()
        self.disconnected.set()

    def _on_connect(self, client, userdata, flags, reason, props):
        if not reason.is_failure:
            self.subscribed.clear()
            client.subscribe([(f, SubscribeOptions(qos=self.qos, retainAsPublished=True))
                              for f in self.filters])

    def _on_message(self, client, userdata, msg):
        rec = Received(msg)
        if self.validate is not None:
            try:
                self.validate(rec.topic, rec.payload)
            except Exception as exc:   # kept for the test to assert on
                self.errors.append(f"{rec.topic}: {exc}")
        with self.cond:
            self.messages.append(rec)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10.0, what="a message"):
        """Wait until ``predicate(messages)`` is truthy; return its value."""
        with self.cond:
            result = self.cond.wait_for(lambda: predicate(self.messages), timeout)
        assert result, f"timed out waiting for {what}; got {self.messages[-10:]}"
        return result

    def on(self, topic):
        with self.cond:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic, timeout=10.0, where=lambda m: True):
        """The newest message on ``topic`` that satisfies ``where``."""
        def find(msgs):
            for m in reversed(msgs):
                if m.topic == topic and where(m):
                    return m
            return None
        return self.wait_for(find, timeout, what=f"a message on {topic}")

    def clear(self):
        with self.cond:
            self.messages.clear()

    def publish(self, topic, payload, **kw):
        return self.client.publish(topic, payload, **kw)

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def _proxy_main(argv):
    """``python -m tests.brokers proxy <target port>``: a TcpProxy in its own
    process (so it does not compete with the code under test for the GIL),
    closed until SIGUSR1 opens it.  Prints its port."""
    proxy = TcpProxy(int(argv[0]))
    proxy.open.clear()
    signal.signal(signal.SIGUSR1, lambda *a: proxy.open.set())
    print(proxy.port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["proxy"]:
        _proxy_main(sys.argv[2:])
