"""The two ways a SIP2 message reaches the library system.

:class:`SipTransport` speaks plain SIP2 over TCP or TLS: it logs in (93)
once per connection, numbers each frame (AY) and checks AZ when
``checksums`` is on, asks for a resend (97) when a reply's checksum is
wrong and resends when the library system asks (96).
:class:`bibbox.library.fbs.FbsTransport` wraps the same messages in FBS's
HTTPS dialect.  Both keep their connection between messages, time out every
message, retry a bounded number of times and then raise
:class:`~bibbox.library.sip2.LibraryUnavailable`.  TLS always verifies the
server (a configured CA file or the system's).  A transport without TLS is
refused unless the configuration marks the network as trusted: card numbers
and PINs travel in these messages.

``exchange(text, expect)`` is the whole contract; it is thread-safe (one
message at a time).  Frames are logged only through
:func:`~bibbox.library.sip2.redact`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time

from bibbox.library import replies, sip2
from bibbox.library.sip2 import LibraryError, LibraryUnavailable, ReplyError

log = logging.getLogger("bibbox.library")
MAX_RESENDS = 2


class InsecureTransport(LibraryError, ValueError):
    """Plain TCP or HTTP was configured for a network not marked trusted."""

    def __init__(self):
        super().__init__("card numbers and PINs go only inside TLS: set tls = true, "
                         "or trusted_network = true for a trusted local network")


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that always verifies the server's certificate and name."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def require_secure(tls: bool, trusted_network: bool) -> None:
    if not tls and not trusted_network:
        raise InsecureTransport()


class SipTransport:
    """Plain SIP2 over TCP/TLS; see the module docstring.  ``user`` and
    ``password`` (the 93 login; values, read from the secrets by the
    daemon) may be empty for an ACS that wants no login."""

    def __init__(self, host, port, *, tls=True, ca_file=None, trusted_network=False,
                 timeout_s=5.0, retries=2, user="", password="", location="",
                 checksums=True, encoding=sip2.ENCODING, max_bytes=sip2.MAX_FRAME_BYTES):
        require_secure(tls, trusted_network)
        self.host, self.port, self.tls = host, int(port), tls
        self.context = tls_context(ca_file) if tls else None
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self._login = (user, password, location)
        self.checksums, self.encoding, self.max_bytes = checksums, encoding, max_bytes
        self._sock = None
        self._buffer = b""
        self._seq = 0
        self._lock = threading.Lock()

    # -- the contract ---------------------------------------------------------------
    def exchange(self, text: str, expect: str) -> replies.Reply:
        """Send the request ``text`` and return its parsed reply of code
        ``expect``.  Raises LibraryUnavailable when every attempt failed to
        connect or timed out, ReplyError for a reply that does not parse."""
        with self._lock:
            last = None
            for attempt in range(self.retries + 1):
                try:
                    self._connect()
                    return self._round_trip(text, expect)
                except (OSError, LibraryUnavailable) as exc:
                    last = exc
                    log.warning("library system %s:%s attempt %d failed: %s", self.host,
                                self.port, attempt + 1, type(exc).__name__)
                    self.close_locked()
                except ReplyError:
                    self.close_locked()   # the stream may be out of step
                    raise
            raise LibraryUnavailable(f"no answer from {self.host}:{self.port} after "
                                     f"{self.retries + 1} attempts") from last

    def close(self):
        with self._lock:
            self.close_locked()

    # -- inside the lock ----------------------------------------------------------------
    def close_locked(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock, self._buffer = None, b""

    def _connect(self):
        if self._sock is not None:
            return
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.timeout_s)
        except BaseException:
            sock.close()
            raise
        self._sock, self._buffer = sock, b""
        user, password, location = self._login
        if user:
            reply = self._round_trip(sip2.login(user, password, location), "94")
            if not reply.ok:
                self.close_locked()
                raise LibraryError("the library system refused the login (93): check "
                                   "the SIP2 user and password")

    def _next_seq(self):
        self._seq = (self._seq + 1) % 10
        return self._seq

    def _round_trip(self, text, expect):
        out = sip2.frame(text, self._next_seq() if self.checksums else None, self.encoding)
        self._send(out)
        for _ in range(MAX_RESENDS + 1):
            data = self._receive()
            try:
                reply = replies.parse(data, expect=expect, encoding=self.encoding,
                                      max_bytes=self.max_bytes)
            except sip2.ChecksumError:
                log.info("checksum error in a %s reply; asking for a resend", expect)
                self._send(sip2.resend_frame())
                continue
            except ReplyError as exc:
                log.warning("unparsable reply (%s): %s", exc.reason, sip2.redact(data))
                raise
            if isinstance(reply, replies.ResendRequest):
                log.info("the library system asked for a resend")
                self._send(out)
                continue
            return reply
        raise ReplyError("too many resends", expect)

    def _send(self, data: bytes):
        self._sock.sendall(data)

    def _receive(self) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        while b"\r" not in self._buffer:
            if len(self._buffer) > self.max_bytes:
                data, self._buffer = self._buffer, b""
                log.warning("oversized reply: %s", sip2.redact(data[:200]))
                raise ReplyError(f"frame longer than {self.max_bytes} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                raise LibraryUnavailable("reply timed out")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(4096)
            except socket.timeout:
                raise LibraryUnavailable("reply timed out") from None
            if not chunk:
                raise LibraryUnavailable("connection closed by the library system")
            self._buffer += chunk
        cr = self._buffer.index(b"\r")
        data, self._buffer = self._buffer[:cr + 1], self._buffer[cr + 1:]
        return data
