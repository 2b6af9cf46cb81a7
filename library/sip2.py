"""Our own SIP2 2.00 codec: requests built, replies parsed, frames redacted.

A frame is a two-digit command, its fixed fields, then ``XXvalue|`` variable
fields, then optionally ``AY<seq>AZ<4 hex>`` and a CR.  The checksum is the
two's complement of the 16-bit sum of every byte from the command up to and
including ``AZ``.  Dates are 18 characters, ``YYYYMMDD`` + 4 spaces (local
time; or a zone) + ``HHMMSS``.

Replies are parsed in :mod:`bibbox.library.replies`; the errors of both
live here.  :func:`redact` is the only form in which a frame may be logged.
This module does no I/O.
"""

from __future__ import annotations

import re
import time

from bibbox.locker.domain.errors import BibboxError

DANISH = "009"
PROTOCOL_VERSION = "2.00"
MAX_FRAME_BYTES = 8192
ENCODING = "utf-8"
#: Fields never logged: patron id, terminal password, PIN, name, the hold
#: patron and its name (3M extensions), login user and password, address,
#: e-mail and phone.
SECRET_FIELDS = ("AA", "AC", "AD", "AE", "CY", "DA", "CN", "CO", "BD", "BE", "BF")
_REDACT_RE = re.compile(r"(%s)[^|\r\n<]*" % "|".join(SECRET_FIELDS))
#: The 16 positions of ``BX`` (supported messages), in the 2.00 order.
SUPPORTED_MESSAGES = ("patron status", "checkout", "checkin", "block patron",
                      "sc/acs status", "request sc/acs resend", "login",
                      "patron information", "end patron session", "fee paid",
                      "item information", "item status update", "patron enable",
                      "hold", "renew", "renew all")


class LibraryError(BibboxError, RuntimeError):
    """Root of the library-system adapter's errors."""


class LibraryUnavailable(LibraryError, ConnectionError):
    """The library system could not be reached or did not answer in time."""


class ReplyError(LibraryError, ValueError):
    """A reply from the library system does not parse.  ``reason`` says why;
    the frame itself is never in the message."""

    def __init__(self, reason: str, code: str = ""):
        self.reason, self.code = reason, code
        super().__init__(f"bad SIP2 reply{' ' + code if code else ''}: {reason}")


class ChecksumError(ReplyError):
    """The reply's AZ checksum does not match its bytes."""

    def __init__(self, code: str = ""):
        super().__init__("checksum mismatch", code)


class WrongReplyType(ReplyError):
    """The reply is a well-formed frame of the wrong message type."""

    def __init__(self, code: str, expected: str):
        self.expected = expected
        super().__init__(f"expected {expected}, got {code}", code)


# -- building requests ------------------------------------------------------------------
def sip_date(wall: float | None = None) -> str:
    """``YYYYMMDD    HHMMSS`` (local time) for ``wall`` (default: now)."""
    t = time.localtime(time.time() if wall is None else wall)
    return time.strftime("%Y%m%d", t) + "    " + time.strftime("%H%M%S", t)


def checksum(prefix: bytes) -> str:
    """The 4 upper-case hex digits for ``prefix`` (command through ``AZ``)."""
    return f"{(-sum(prefix)) & 0xFFFF:04X}"


def _field(fid: str, value) -> str:
    text = "" if value is None else str.__str__(value) if isinstance(value, str) else str(value)
    if "|" in text or "\r" in text or "\n" in text:
        raise LibraryError(f"field {fid} holds a delimiter")
    return f"{fid}{text}|"


def message(code: str, fixed: str, *fields: tuple[str, object]) -> str:
    """A request's text without trailer or CR.  ``fields`` are ``(id, value)``;
    a value of None leaves the field out (optional fields)."""
    return code + fixed + "".join(_field(f, v) for f, v in fields if v is not None)


def frame(text: str, seq: int | None = None, encoding: str = ENCODING) -> bytes:
    """The bytes on the wire: ``text`` plus ``AY<seq>AZ<sum>`` when ``seq``
    is given (0-9), plus CR."""
    data = text.encode(encoding)
    if seq is not None:
        data += f"AY{seq % 10}AZ".encode("ascii")
        data += checksum(data).encode("ascii")
    return data + b"\r"


def resend_frame() -> bytes:
    """97 (request ACS resend): ``97AZFEF5`` + CR."""
    return b"97AZ" + checksum(b"97AZ").encode("ascii") + b"\r"


def yn(flag: bool) -> str:
    return "Y" if flag else "N"


def login(user: str, password: str, location: str = "") -> str:
    """93: login with plain-text user id and password (algorithms ``0``)."""
    return message("93", "00", ("CN", user), ("CO", password), ("CP", location or None))


def sc_status(status: str = "0", print_width: int = 40) -> str:
    """99: SC status (0 = OK), protocol 2.00."""
    return message("99", f"{status}{print_width:03d}{PROTOCOL_VERSION}")


def patron_status(institution, patron, pin, terminal_password="", *, date=None,
                  language=DANISH) -> str:
    """23: patron status."""
    return message("23", language + (date or sip_date()), ("AO", institution),
                   ("AA", patron), ("AC", terminal_password), ("AD", pin))


def patron_information(institution, patron, pin, terminal_password="", *,
                       summary=" " * 10, date=None, language=DANISH) -> str:
    """63: patron information; ``summary`` (10 positions, ``Y`` = list them:
    hold, overdue, charged, fine, recall, unavailable holds ...)."""
    if len(summary) != 10:
        summary = (summary + " " * 10)[:10]
    return message("63", language + (date or sip_date()) + summary, ("AO", institution),
                   ("AA", patron), ("AC", terminal_password), ("AD", pin))


def checkout(institution, patron, item, terminal_password="", *, pin=None,
             no_block=False, renewal_policy=False, date=None, nb_due_date=None,
             fee_acknowledged=None) -> str:
    """11: checkout.  ``no_block`` for a loan made offline (then ``date`` is
    the original transaction date).  ``nb_due_date`` is a required fixed
    field (18 characters); without one, the transaction date is sent (blanks
    are refused by strict servers)."""
    date = date or sip_date()
    return message("11", yn(renewal_policy) + yn(no_block) + date + (nb_due_date or date), ("AO", institution), ("AA", patron),
                   ("AB", item), ("AC", terminal_password), ("AD", pin),
                   ("BO", None if fee_acknowledged is None else yn(fee_acknowledged)))


def checkin(institution, item, location, terminal_password="", *, no_block=False,
            date=None, return_date=None) -> str:
    """09: checkin at ``location`` (AP, the current location)."""
    date = date or sip_date()
    return message("09", yn(no_block) + date + (return_date or date), ("AP", location),
                   ("AO", institution), ("AB", item), ("AC", terminal_password))


def item_information(institution, item, terminal_password="", *, date=None) -> str:
    """17: item information."""
    return message("17", date or sip_date(), ("AO", institution), ("AB", item),
                   ("AC", terminal_password))


# -- redaction --------------------------------------------------------------------------
def redact(frame_or_text) -> str:
    """``frame_or_text`` safe to log: every value of a field in
    :data:`SECRET_FIELDS` becomes ``***``, wherever the identifier appears
    (over-redacting a title is cheaper than a card number in a log), and
    control characters are shown escaped."""
    if isinstance(frame_or_text, (bytes, bytearray)):
        text = bytes(frame_or_text).decode(ENCODING, "replace")
    else:
        text = str.__str__(frame_or_text) if isinstance(frame_or_text, str) else repr(
            frame_or_text)
    text = _REDACT_RE.sub(lambda m: m.group(1) + "***", text)
    from bibbox.locker.domain.free_text import mask_cpr
    return mask_cpr(text).encode("unicode_escape").decode("ascii")

