"""What the privacy scans look for, in one place: card numbers in every
form (:func:`card_forms`), PINs, and their unkeyed digests (:class:`Needles`).

A PIN is a 4-digit token.  Written data is full of 4-digit runs that are
not PINs: the groups of an event's UUID (``2a38dbef-8443-4f8a-...``; the
third group of a UUID4 starts with 4, so "4321" turns up in one of about
4,096), and the parts of a decimal number (a timestamp ``1764491234.1234``).
:func:`pin_pattern` matches the PIN as a whole token, and :func:`pin_text`
masks UUIDs and decimals before a PIN is looked for (card numbers are
looked for in the data as written)."""

from __future__ import annotations

import hashlib
import logging
import re

UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DECIMAL = re.compile(rb"[0-9]+\.[0-9]+")


def pin_pattern(pin: str) -> re.Pattern:
    """``pin`` as a whole token (no letter or digit on either side)."""
    return re.compile(rb"(?<![0-9A-Za-z])" + pin.encode() + rb"(?![0-9A-Za-z])")


def pin_text(data: bytes) -> bytes:
    """``data`` with UUIDs and decimal numbers masked, to look for PINs in."""
    return DECIMAL.sub(b"#", UUID.sub(b"#", data))


def card_forms(card: str) -> set[str]:
    """The ways a card number may be written: as is, lower case, and a
    CPR-shaped one with a dash or a space after the date."""
    forms = {card, card.lower()}
    if card.isdigit() and len(card) == 10:
        forms |= {f"{card[:6]}-{card[6:]}", f"{card[:6]} {card[6:]}"}
    return forms


def card_pattern(card: str) -> re.Pattern:
    """Any of :func:`card_forms`."""
    return re.compile(b"|".join(re.escape(f.encode()) for f in sorted(card_forms(card))))


class Needles:
    """Everything that must not be found for these ``cards`` and ``pins``:
    each card in any form, each PIN as a token, and the unkeyed digests of
    both (a hash without the site key is as good as the number)."""

    ALGORITHMS = ("md5", "sha1", "sha256", "sha512")

    def __init__(self, cards, pins):
        self.patterns = [(f"card {card}", card_pattern(card)) for card in cards]
        self.pin_patterns = [(f"PIN {pin}", pin_pattern(pin)) for pin in pins]
        for secret in [*cards, *pins]:
            for algo in self.ALGORITHMS:
                digest = hashlib.new(algo, secret.encode()).hexdigest()
                self.patterns.append((f"{algo}({secret})", re.compile(digest.encode(), re.I)))

    def leaks(self, data: bytes | str) -> list[str]:
        """The labels of every needle found in ``data`` (PINs looked for in
        :func:`pin_text`)."""
        if isinstance(data, str):
            data = data.encode("utf-8", "backslashreplace")
        masked = pin_text(data)
        return sorted({label for label, p in self.patterns if p.search(data)} |
                      {label for label, p in self.pin_patterns if p.search(masked)})


LOG_FORMAT = logging.Formatter("%(name)s %(levelname)s %(message)s")


def log_text(record: logging.LogRecord) -> str:
    """All a log record holds: the formatted line, its arguments and its
    attributes (a handler may write any of them)."""
    return LOG_FORMAT.format(record) + repr(record.args) + repr(vars(record))


class Scan:
    """Collects what :class:`Needles` finds, by where it was found:
    ``scan(where, data)``; ``found`` is empty when nothing leaked."""

    def __init__(self, needles: Needles):
        self.needles, self.found = needles, {}

    def __call__(self, where: str, data: bytes | str) -> None:
        hits = self.needles.leaks(data)
        if hits:
            self.found.setdefault(where, []).extend(hits)
