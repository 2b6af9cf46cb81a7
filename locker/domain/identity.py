"""Card numbers, PINs and the keyed hash that stands for a patron.

A card number may be a CPR number.  It lives only in memory, inside a
:class:`CardNumber` whose ``repr``/``str`` formatting hides it, and is turned
into a keyed hash (HMAC-SHA256 with the site key) as early as possible.  PINs
live in a :class:`Pin` that hides itself the same way.  Nothing in this module
writes anything anywhere.
"""

import hashlib
import hmac
import re

from bibbox.locker.domain.errors import CardFormatError, SecretError
from bibbox.locker.domain.patterns import CPR_RE

_CARD_RE = re.compile(r"^[0-9A-Za-z-]{4,32}$")
PIN_LENGTH = 4                       # digits; the kiosk page has its own copy
_PIN_RE = re.compile(rf"^[0-9]{{{PIN_LENGTH}}}$")
MIN_SITE_KEY_BYTES = 16


class _Hidden(str):
    """A str that will not show itself in logs, reprs or f-strings."""

    _label = "hidden"

    def __repr__(self):
        return f"<{self._label}>"

    def __str__(self):  # f"{x}", "%s" % x, logging
        return f"<{self._label}>"

    def __format__(self, spec):
        return f"<{self._label}>"

    @property
    def value(self):
        """The real characters, for hashing only."""
        return str.__str__(self)


class CardNumber(_Hidden):
    """A normalised card number (CPR or library card).  Never validated
    with modulus 11: CPR numbers since 2007 fail it."""

    _label = "card"

    @classmethod
    def parse(cls, text):
        """Normalise ``text`` (strip spaces and dashes inside a CPR, upper-case);
        raise :class:`CardFormatError` without echoing the input."""
        if not isinstance(text, str):
            raise CardFormatError("card number must be text")
        cleaned = text.strip().replace(" ", "").upper()
        if CPR_RE.match(cleaned):
            cleaned = cleaned.replace("-", "")
        if not _CARD_RE.match(cleaned):
            raise CardFormatError(
                "card number must be 4-32 letters or digits")
        return cls(cleaned)


class Pin(_Hidden):
    """A 4-digit PIN, held only as long as a verification takes."""

    _label = "pin"

    @classmethod
    def parse(cls, text):
        if not isinstance(text, str) or not _PIN_RE.match(text):
            raise CardFormatError("PIN must be exactly 4 digits")
        return cls(text)


class KeyedHasher:
    """HMAC-SHA256 with the site key.  The same key (shared with central)
    gives the same patron hash on every locker of a library."""

    def __init__(self, site_key: bytes):
        if not isinstance(site_key, bytes) or len(site_key) < MIN_SITE_KEY_BYTES:
            raise SecretError(
                f"site key must be at least {MIN_SITE_KEY_BYTES} bytes")
        self._key = site_key

    def _mac(self, label, text):
        return hmac.new(self._key, f"{label}\x00{text}".encode(),
                        hashlib.sha256).hexdigest()

    def patron(self, card: CardNumber) -> str:
        """The patron hash holds refer to (64 hex)."""
        return self._mac("card", card.value)

    def pin(self, patron_hash: str, pin: Pin) -> str:
        """The stored form of a patron's PIN (local verifier only)."""
        return self._mac("pin", f"{patron_hash}\x00{pin.value}")

    def pickup_code(self, hold_id: str, code: str) -> str:
        """The keyed hash of a hold's pickup code (offline policy)."""
        return self._mac("pickup-code", f"{hold_id}\x00{code}")


def pseudonym(patron_hash: str) -> str:
    """Short, stable pseudonym for audit lines and staff pages."""
    return "P-" + patron_hash[:8]


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
