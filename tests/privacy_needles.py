"""How the privacy scans look for a PIN: one place for the pattern.

A PIN is a 4-digit token.  Written data is full of 4-digit runs that are
not PINs: the groups of an event's UUID (``2a38dbef-8443-4f8a-...``; the
third group of a UUID4 starts with 4, so "4321" turns up in one of about
4,096), and the parts of a decimal number (a timestamp ``1764491234.1234``).
:func:`pin_pattern` matches the PIN as a whole token, and :func:`pin_text`
masks UUIDs and decimals before a PIN is looked for (card numbers are
looked for in the data as written)."""

from __future__ import annotations

import re

UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DECIMAL = re.compile(rb"[0-9]+\.[0-9]+")


def pin_pattern(pin: str) -> re.Pattern:
    """``pin`` as a whole token (no letter or digit on either side)."""
    return re.compile(rb"(?<![0-9A-Za-z])" + pin.encode() + rb"(?![0-9A-Za-z])")


def pin_text(data: bytes) -> bytes:
    """``data`` with UUIDs and decimal numbers masked, to look for PINs in."""
    return DECIMAL.sub(b"#", UUID.sub(b"#", data))
