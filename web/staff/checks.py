"""Checking what the staff page sends, before anything runs: item barcodes
(never a card number by mistake), numbers, reasons, keys, the JSON body.
Every refusal is a CommandError that never echoes a card number."""

from __future__ import annotations

import re

from bibbox.locker.domain import free_text
from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.patterns import HOLD_ID_RE, looks_like_cpr

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ITEM_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]{3,31}$")
ISBN_PREFIXES = ("977", "978", "979")


def ean_ok(digits):
    """The GS1 check digit of an EAN-8/UPC/EAN-13/GTIN-14."""
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        return False
    total = sum(int(d) * (3 if i % 2 == 0 else 1)
                for i, d in enumerate(reversed(digits[:-1])))
    return (10 - total % 10) % 10 == int(digits[-1])


def looks_like_isbn(text):
    """A 13-digit ISBN/ISSN barcode with a good check digit (an item, not a card)."""
    return text.isdigit() and len(text) == 13 and text.startswith(ISBN_PREFIXES) \
        and ean_ok(text)


def check_item(text, is_known_card):
    """A clean item barcode, or CommandError.  ``is_known_card(text)`` says
    whether the text is the card of a patron the locker knows."""
    if not isinstance(text, str):
        raise CommandError("not_item", "an item barcode is text")
    barcode = text.strip()
    if barcode.startswith("]") and len(barcode) > 3:     # an AIM id the scanner kept
        barcode = barcode[3:]
    if looks_like_cpr(barcode):
        raise CommandError("looks_like_card", "that looks like a CPR number, not an item")
    if not ITEM_RE.match(barcode):
        raise CommandError("not_item", "that is not an item barcode")
    if barcode.isdigit() and len(barcode) == 13 and not ean_ok(barcode):
        raise CommandError("not_item", "the barcode's check digit is wrong")
    if is_known_card(barcode):
        raise CommandError("looks_like_card", "that is a patron's card, not an item")
    return barcode


def check_key(value, name):
    """An idempotency key or draft id: 8-64 letters, digits, ``_`` or ``-``."""
    if not isinstance(value, str) or not KEY_RE.match(value):
        raise CommandError("bad_request", f"{name} must be a key of 8-64 letters or digits")
    return value


def check_hold_id(value):
    if not isinstance(value, str) or not HOLD_ID_RE.match(value):
        raise CommandError("bad_argument", "hold_id must be a hold id")
    return value


def whole_number(value, name):
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        raise CommandError("bad_argument", f"{name} must be a whole number")
    return value


def reason_of(data, required=True):
    """The cleaned ``reason`` (at most 200 characters; see
    :func:`bibbox.locker.domain.free_text.clean`); None if optional and absent.
    Refused (``cpr_in_text``) when it holds something CPR-shaped."""
    reason = data.get("reason")
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        if required:
            raise CommandError("reason_required", "a reason is required")
        return None
    return free_text.clean(reason, "reason", policy=free_text.REFUSE, max_len=200)
