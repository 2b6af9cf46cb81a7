"""SIP2 2.00 replies: parsed from untrusted bytes into dataclasses.

:func:`parse` returns a dataclass or raises
:class:`~bibbox.library.sip2.ReplyError` (or a subclass) naming what is
wrong, never echoing the frame.  Unknown fields are kept in ``extra``;
repeated fields (AS, AU, AF ...) are tuples.  Fixed fields are checked (dates,
Y/N flags, digits); amounts are :class:`~decimal.Decimal`.  No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from bibbox.library.sip2 import (ENCODING, MAX_FRAME_BYTES, SUPPORTED_MESSAGES,
                                 ChecksumError, ReplyError, WrongReplyType, checksum)

_TRAILER_RE = re.compile(r"(?:AY(\d))?AZ([0-9A-Fa-f]{4})$")
_DATE_RE = re.compile(r"^\d{8}[ 0-9A-Z]{4}\d{6}$")
_FIELD_ID_RE = re.compile(r"^[A-Z0-9]{2}")
# -- reply types --------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Reply:
    """What every reply has: its command and the fields we do not model."""
    code: str
    extra: dict = field(default_factory=dict)        # id -> [values]
    screen_messages: tuple = ()                       # AF, unsanitised


@dataclass(frozen=True, kw_only=True)
class ResendRequest(Reply):
    """96: the library system asks for our last message again."""


@dataclass(frozen=True, kw_only=True)
class LoginReply(Reply):
    """94."""
    ok: bool


@dataclass(frozen=True, kw_only=True)
class AcsStatus(Reply):
    """98.  ``supported`` is the raw BX string; :meth:`supported_messages`
    names the ``Y`` positions."""
    online: bool
    checkin_ok: bool
    checkout_ok: bool
    renewal_policy: bool
    status_update_ok: bool
    offline_ok: bool
    timeout_period: str
    retries_allowed: str
    date: str
    protocol_version: str
    institution: str = ""
    library_name: str = ""
    supported: str = ""
    terminal_location: str = ""

    def supported_messages(self) -> list[str]:
        return [name for name, flag in zip(SUPPORTED_MESSAGES, self.supported)
                if flag.upper() == "Y"]


@dataclass(frozen=True, kw_only=True)
class PatronStatus(Reply):
    """24 (and the common part of 64).  ``flags`` is the 14-position patron
    status; ``patron`` (AA) and ``name`` (AE) are personal data."""
    flags: str
    language: str
    date: str
    institution: str = ""
    patron: str = field(default="", repr=False)
    name: str = field(default="", repr=False)
    valid_patron: bool | None = None
    valid_pin: bool | None = None
    currency: str = ""
    fee_amount: Decimal | None = None

    def flag(self, position: int) -> bool:
        return self.flags[position:position + 1] == "Y"

    @property
    def charge_denied(self):
        return self.flag(0)

    @property
    def card_lost(self):
        return self.flag(4)

    @property
    def excessive_fines(self):
        return self.flag(10)

    @property
    def excessive_fees(self):
        return self.flag(11)


@dataclass(frozen=True, kw_only=True)
class PatronInformation(PatronStatus):
    """64.  ``counts``: hold, overdue, charged, fine, recall, unavailable."""
    counts: tuple = ()
    fee_limit: Decimal | None = None
    hold_items: tuple = ()
    overdue_items: tuple = ()
    charged_items: tuple = ()
    fine_items: tuple = ()
    recall_items: tuple = ()
    unavailable_hold_items: tuple = ()


@dataclass(frozen=True, kw_only=True)
class CheckoutReply(Reply):
    """12."""
    ok: bool
    renewal_ok: bool
    magnetic_media: str
    desensitize: str
    date: str
    institution: str = ""
    patron: str = field(default="", repr=False)
    item: str = ""
    title: str = ""
    due_date: str = ""
    fee_amount: Decimal | None = None
    transaction_id: str = ""


@dataclass(frozen=True, kw_only=True)
class CheckinReply(Reply):
    """10.  ``hold_patron``/``hold_patron_name`` are the 3M extension
    fields CY/DA (not in SIP2 2.00 itself)."""
    ok: bool
    resensitize: bool
    magnetic_media: str
    alert: bool
    date: str
    institution: str = ""
    item: str = ""
    permanent_location: str = ""
    title: str = ""
    sort_bin: str = ""
    patron: str = field(default="", repr=False)
    hold_patron: str = field(default="", repr=False)
    hold_patron_name: str = field(default="", repr=False)


@dataclass(frozen=True, kw_only=True)
class ItemInformation(Reply):
    """18."""
    circulation_status: str
    security_marker: str
    fee_type: str
    date: str
    hold_queue_length: str = ""
    due_date: str = ""
    hold_pickup_date: str = ""
    item: str = ""
    title: str = ""
    owner: str = ""
    current_location: str = ""
    permanent_location: str = ""
    hold_patron: str = field(default="", repr=False)


def _bool01(v, name):
    if v not in ("0", "1"):
        raise ReplyError(f"{name} must be 0 or 1")
    return v == "1"


def _yn(v, name, unknown_ok=False):
    allowed = "YNU" if unknown_ok else "YN"
    if v not in allowed or len(v) != 1:
        raise ReplyError(f"{name} must be one of {'/'.join(allowed)}")
    return v


def _date(v, name="transaction date"):
    if not _DATE_RE.match(v):
        raise ReplyError(f"{name} is not YYYYMMDDZZZZHHMMSS")
    return v


def _digits(v, name):
    if not v.isdigit():
        raise ReplyError(f"{name} must be digits")
    return v


def _flags(v):
    if any(c not in "YN " for c in v):
        raise ReplyError("patron status must be 14 of Y, N or space")
    return v


def _money(values, name):
    if not values:
        return None
    text = values[-1].strip().replace(",", ".")
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ReplyError(f"{name} is not an amount") from None
    if not amount.is_finite() or abs(amount) >= 10 ** 9:
        raise ReplyError(f"{name} is out of range")
    return amount


def _tri(values, name):
    if not values or values[-1] == "":
        return None
    return _yn(values[-1][:1].upper(), name) == "Y"


#: code -> (fixed-field width, reply builder)
_FIXED = {"94": 1, "98": 34, "24": 35, "64": 59, "12": 22, "10": 22, "18": 24, "96": 0}


def _split_fields(text: str) -> dict:
    fields: dict[str, list[str]] = {}
    pieces = text.split("|")
    if pieces and pieces[-1] == "":
        pieces.pop()
    for piece in pieces:
        if not _FIELD_ID_RE.match(piece):
            raise ReplyError("a variable field has no two-letter identifier")
        fields.setdefault(piece[:2], []).append(piece[2:])
    return fields


def parse(data, *, expect: str | None = None, encoding: str = ENCODING,
          max_bytes: int = MAX_FRAME_BYTES) -> Reply:
    """The reply in ``data`` (bytes or str, with or without CR).  ``expect``
    is the reply code we asked for: a 96 is always returned (the caller
    resends), any other code raises :class:`WrongReplyType`.  Raises
    :class:`ChecksumError` when an AZ checksum does not match and
    :class:`ReplyError` for anything else that does not parse."""
    if isinstance(data, str):
        data = data.encode(encoding)
    if len(data) > max_bytes:
        raise ReplyError(f"frame longer than {max_bytes} bytes")
    data = bytes(data).rstrip(b"\r\n")
    if b"\r" in data or b"\x00" in data:
        raise ReplyError("control characters inside the frame")
    code = data[:2].decode("ascii", "replace")
    if len(data) < 2 or not code.isdigit():
        raise ReplyError("no message code")
    if code not in _FIXED:
        raise WrongReplyType(code, expect or "a reply") if expect else ReplyError(
            "unknown message code", code)
    if expect and code not in (expect, "96"):
        raise WrongReplyType(code, expect)
    trailer = _TRAILER_RE.search(data.decode("ascii", "replace"))
    if trailer:
        body, digits = data[:trailer.start()], trailer.group(2)
        if checksum(data[:-4]) != digits.upper():
            raise ChecksumError(code)
        data = body
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise ReplyError("not valid text", code) from None
    width = _FIXED[code]
    fixed, rest = text[2:2 + width], text[2 + width:]
    if len(fixed) != width:
        raise ReplyError("truncated fixed fields", code)
    try:
        fields = _split_fields(rest)
        return _BUILDERS[code](code, fixed, fields)
    except ReplyError as exc:
        if not exc.code:
            raise ReplyError(exc.reason, code) from None
        raise


def _take(fields, fid):
    values = fields.pop(fid, [])
    return values[-1] if values else ""


def _common(code, fields):
    return {"code": code, "screen_messages": tuple(fields.pop("AF", ())),
            "extra": fields}


def _build_96(code, fixed, fields):
    return ResendRequest(code=code, extra=fields)


def _build_94(code, fixed, fields):
    return LoginReply(ok=_bool01(fixed, "ok"), **_common(code, fields))


def _build_98(code, f, fields):
    yn_ = [_yn(f[i], "status flag") == "Y" for i in range(6)]
    return AcsStatus(online=yn_[0], checkin_ok=yn_[1], checkout_ok=yn_[2],
                     renewal_policy=yn_[3], status_update_ok=yn_[4], offline_ok=yn_[5],
                     timeout_period=f[6:9], retries_allowed=f[9:12],
                     date=_date(f[12:30], "date/time sync"), protocol_version=f[30:34],
                     institution=_take(fields, "AO"), library_name=_take(fields, "AM"),
                     supported=_take(fields, "BX"), terminal_location=_take(fields, "AN"),
                     **_common(code, fields))


def _patron_part(f, fields):
    return dict(flags=_flags(f[:14]), language=_digits(f[14:17], "language"),
                date=_date(f[17:35]), institution=_take(fields, "AO"),
                patron=_take(fields, "AA"), name=_take(fields, "AE"),
                valid_patron=_tri(fields.pop("BL", []), "valid patron"),
                valid_pin=_tri(fields.pop("CQ", []), "valid patron password"),
                currency=_take(fields, "BH"),
                fee_amount=_money(fields.pop("BV", []), "fee amount"))


def _build_24(code, f, fields):
    return PatronStatus(**_patron_part(f, fields), **_common(code, fields))


def _build_64(code, f, fields):
    part = _patron_part(f, fields)
    counts = tuple(int(_digits(f[35 + 4 * i:39 + 4 * i], "item count")) for i in range(6))
    lists = {name: tuple(fields.pop(fid, ())) for name, fid in (
        ("hold_items", "AS"), ("overdue_items", "AT"), ("charged_items", "AU"),
        ("fine_items", "AV"), ("recall_items", "BU"), ("unavailable_hold_items", "CD"))}
    return PatronInformation(**part, counts=counts,
                             fee_limit=_money(fields.pop("CC", []), "fee limit"),
                             **lists, **_common(code, fields))


def _build_12(code, f, fields):
    return CheckoutReply(ok=_bool01(f[0], "ok"), renewal_ok=_yn(f[1], "renewal ok") == "Y",
                         magnetic_media=_yn(f[2], "magnetic media", True),
                         desensitize=_yn(f[3], "desensitize", True), date=_date(f[4:22]),
                         institution=_take(fields, "AO"), patron=_take(fields, "AA"),
                         item=_take(fields, "AB"), title=_take(fields, "AJ"),
                         due_date=_take(fields, "AH"),
                         fee_amount=_money(fields.pop("BV", []), "fee amount"),
                         transaction_id=_take(fields, "BK"), **_common(code, fields))


def _build_10(code, f, fields):
    return CheckinReply(ok=_bool01(f[0], "ok"), resensitize=_yn(f[1], "resensitize") == "Y",
                        magnetic_media=_yn(f[2], "magnetic media", True),
                        alert=_yn(f[3], "alert") == "Y", date=_date(f[4:22]),
                        institution=_take(fields, "AO"), item=_take(fields, "AB"),
                        permanent_location=_take(fields, "AQ"), title=_take(fields, "AJ"),
                        sort_bin=_take(fields, "CL"), patron=_take(fields, "AA"),
                        hold_patron=_take(fields, "CY"),
                        hold_patron_name=_take(fields, "DA"), **_common(code, fields))


def _build_18(code, f, fields):
    return ItemInformation(circulation_status=_digits(f[0:2], "circulation status"),
                           security_marker=_digits(f[2:4], "security marker"),
                           fee_type=_digits(f[4:6], "fee type"), date=_date(f[6:24]),
                           hold_queue_length=_take(fields, "CF"), due_date=_take(fields, "AH"),
                           hold_pickup_date=_take(fields, "CM"), item=_take(fields, "AB"),
                           title=_take(fields, "AJ"), owner=_take(fields, "BG"),
                           current_location=_take(fields, "AP"),
                           permanent_location=_take(fields, "AQ"),
                           hold_patron=_take(fields, "CY"), **_common(code, fields))


_BUILDERS = {"94": _build_94, "98": _build_98, "24": _build_24, "64": _build_64,
             "12": _build_12, "10": _build_10, "18": _build_18, "96": _build_96}
