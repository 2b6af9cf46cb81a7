"""The one sanitiser for free text from anyone: staff forms and filters, MQTT
commands, the library system's screen messages.

A card number may be a CPR number, and people type them into reasons ("patron
010170-9999 on the phone").  Every free-text field passes :func:`clean` before
it is stored, published or shown:

- text a person types where they can be told why (the staff page) is
  *refused* when it holds something CPR-shaped (:class:`CprInText`);
- text that arrives from another system (MQTT, SIP2) is *masked*: every
  CPR-shaped run becomes :data:`MASK`, and the rest is kept.

CPR-shaped means ten digits in a row, or six digits, a dash or a space, and
four digits, not inside a longer run of digits.  It is deliberately wider
than a valid CPR number (no date check, no modulus 11): substitute numbers
and numbers since 2007 fail those checks, and a false alarm on a ten-digit
number in a reason costs less than a CPR number in a log.

Besides, :func:`clean` trims, turns control characters and line breaks into
spaces, collapses runs of spaces, normalises Unicode to NFC and enforces a
maximum length.  It does no I/O.
"""

from __future__ import annotations

import re
import unicodedata

from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.patterns import CPR_IN_TEXT_RE as CPR_SHAPED

MASK = "[cpr removed]"
REFUSE, MASK_IT = "refuse", "mask"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")


class CprInText(CommandError):
    """Free text held something shaped like a CPR number (code ``cpr_in_text``)."""

    def __init__(self, field: str):
        super().__init__("cpr_in_text",
                         f"{field} looks like it holds a CPR number; leave personal "
                         "numbers out of free text (the locker keeps only a keyed hash)")
        self.field = field


def contains_cpr(text: str) -> bool:
    """True if ``text`` holds something CPR-shaped."""
    return bool(CPR_SHAPED.search(text))


def mask_cpr(text: str) -> str:
    """``text`` with every CPR-shaped run replaced by :data:`MASK`."""
    return CPR_SHAPED.sub(MASK, text)


def clean(value, field: str, *, policy: str, max_len: int = 200,
          required: bool = True) -> str:
    """Sanitise one free-text field; see the module docstring.

    ``policy`` is :data:`REFUSE` (raise :class:`CprInText`) or :data:`MASK_IT`.
    Raises CommandError ``bad_argument`` (naming ``field``, never echoing the
    text) for a value that is not text, empty while ``required``, or longer
    than ``max_len`` after cleaning.  ``None`` is "" when not required."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise CommandError("bad_argument", f"{field} must be text")
    text = unicodedata.normalize("NFC", value)
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    if contains_cpr(text):
        if policy == REFUSE:
            raise CprInText(field)
        text = mask_cpr(text)
    if (required and not text) or len(text) > max_len:
        raise CommandError("bad_argument", f"{field} must be text of 1-{max_len} characters")
    return text
