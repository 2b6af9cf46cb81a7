"""FBS's HTTPS dialect of SIP2, all in this one module (FBS 2.0 replaces
FBS on 28 January 2027; when its dialect differs, this module changes).

What recorded exchanges of Danish self-service machines show, and this
module does: each SIP2 message is POSTed as
``<ns1:sip login=".." password=".." xmlns:ns1="http://axiell.com/Schema/sip.xsd">
<request>MSG</request></ns1:sip>`` to ``https://HOST/rest/sip2/DK-<agency>``;
the reply comes in ``<response>``, or ``<error>``, or as the text
``ERROR INPUT``.  There is no login 93 and no AY/AZ; the institution is
``DK-<agency>``; the patron comes back as ``LN:<number>`` in AA; 63 is sent
with the summary ``YYYYYYYYY``; hold and charged items (AS/AU) are
``%``-separated parts (item id, dates, title, ...); the fee limit comes in CC.

The XML is parsed with the standard library after refusing any DOCTYPE (so
no entity is ever defined or expanded) and above a size limit.
"""

from __future__ import annotations

import http.client
import logging
import threading
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from bibbox.library import replies, sip2
from bibbox.library.sip2 import LibraryError, LibraryUnavailable, ReplyError
from bibbox.library.transport import require_secure, tls_context

log = logging.getLogger("bibbox.library")
NAMESPACE = "http://axiell.com/Schema/sip.xsd"
PATRON_SUMMARY = "YYYYYYYYY "
MAX_REPLY_BYTES = 64 * 1024


class FbsErrorReply(ReplyError):
    """FBS answered ``<error>`` or ``ERROR INPUT`` instead of a SIP2 reply."""


def institution(agency: str) -> str:
    """AO for FBS: ``DK-<agency>`` (an agency given with its prefix is kept)."""
    agency = str(agency)
    return agency if agency.upper().startswith("DK-") else f"DK-{agency}"


def path(agency: str) -> str:
    return f"/rest/sip2/{institution(agency)}"


def envelope(message: str, login: str, password: str) -> bytes:
    """The POST body for one SIP2 message (no AY/AZ, no CR)."""
    return (f"<ns1:sip login={quoteattr(login)} password={quoteattr(password)} "
            f'xmlns:ns1="{NAMESPACE}"><request>{escape(message)}</request></ns1:sip>'
            ).encode("utf-8")


def unwrap(body: bytes) -> str:
    """The SIP2 reply text inside an FBS answer; FbsErrorReply for
    ``<error>`` or ``ERROR INPUT``, ReplyError for anything else."""
    if len(body) > MAX_REPLY_BYTES:
        raise ReplyError(f"FBS answer longer than {MAX_REPLY_BYTES} bytes")
    text = body.decode("utf-8", "replace").strip()
    if text.upper().startswith("ERROR INPUT"):
        raise FbsErrorReply("FBS answered ERROR INPUT")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise ReplyError("FBS answer declares a DOCTYPE or entity")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise ReplyError("FBS answer is not XML") from None
    found = {}
    for element in root.iter():
        local = element.tag.rsplit("}", 1)[-1]
        found.setdefault(local, element)
    if "error" in found:
        raise FbsErrorReply("FBS answered <error>")
    if "response" not in found:
        raise ReplyError("FBS answer has no <response>")
    return (found["response"].text or "").strip("\r\n")


def patron_number(value: str) -> str:
    """AA as FBS sends it (``LN:<number>``) without the prefix."""
    return value[3:] if value.upper().startswith("LN:") else value


def item_parts(value: str) -> list[str]:
    """The ``%``-separated parts of an FBS AS/AU value (item id first)."""
    return value.split("%")


class FbsTransport:
    """SIP2 over FBS's HTTPS dialect; the same ``exchange`` contract as
    :class:`~bibbox.library.transport.SipTransport`.  ``login`` and
    ``password`` are values read from the secrets by the daemon."""

    checksums = False

    def __init__(self, host, agency, *, port=443, tls=True, ca_file=None,
                 trusted_network=False, timeout_s=5.0, retries=2, login="", password=""):
        require_secure(tls, trusted_network)
        self.host, self.port, self.tls = host, int(port), tls
        self.agency, self.path = str(agency), path(agency)
        self.context = tls_context(ca_file) if tls else None
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self._credentials = (login, password)
        self._conn = None
        self._lock = threading.Lock()

    def exchange(self, text: str, expect: str) -> replies.Reply:
        with self._lock:
            last = None
            for attempt in range(self.retries + 1):
                try:
                    body = self._post(envelope(text, *self._credentials))
                    break
                except (OSError, http.client.HTTPException, LibraryUnavailable) as exc:
                    last = exc
                    log.warning("FBS %s attempt %d failed: %s", self.host, attempt + 1,
                                type(exc).__name__)
                    self._close_locked()
            else:
                raise LibraryUnavailable(f"no answer from FBS at {self.host} after "
                                         f"{self.retries + 1} attempts") from last
        try:
            return replies.parse(unwrap(body), expect=expect)
        except ReplyError as exc:
            log.warning("unparsable FBS answer (%s): %s", exc.reason,
                        sip2.redact(body[:2000]))
            raise

    def close(self):
        with self._lock:
            self._close_locked()

    def _close_locked(self):
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _post(self, payload: bytes) -> bytes:
        if self._conn is None:
            if self.context is not None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout_s, context=self.context)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout_s)
        self._conn.request("POST", self.path, body=payload, headers={
            "Content-Type": "application/xml; charset=utf-8", "Connection": "keep-alive"})
        response = self._conn.getresponse()
        body = response.read(MAX_REPLY_BYTES + 1)
        if len(body) > MAX_REPLY_BYTES:
            self._close_locked()        # the rest is still on the wire
        if response.status >= 500:
            raise LibraryUnavailable(f"FBS answered HTTP {response.status}")
        if response.status in (401, 403):
            raise LibraryError(f"FBS refused the login (HTTP {response.status}): check "
                               "the FBS credentials")
        if response.status != 200 and not body:
            raise LibraryUnavailable(f"FBS answered HTTP {response.status}")
        if response.will_close:
            self._close_locked()
        return body
