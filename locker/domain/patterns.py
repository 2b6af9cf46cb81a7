"""The shapes of things, each stated once: hold ids, keyed hashes, the
most items a hold may carry, and what a CPR number looks like.

The web page, the domain and central's message schema check against these
(central's copies still to be pointed here)."""

import re

# A hold id: 1-64 letters, digits or ``._:-`` (central's ids and ``S-<draft>``).
HOLD_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# A keyed hash (patron hash, pickup-code hash): HMAC-SHA256 as 64 lower-case hex.
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")

# The most items one hold may carry.
MAX_ITEMS = 50

# A Danish CPR number: DDMMYY-NNNN, the dash optional.  ``CPR_RE`` is a whole
# text of that shape (day and month as groups 1 and 2).  ``CPR_IN_TEXT_RE``
# finds anything CPR-shaped inside longer text (a log line, a reason): ten
# digits, or six, a dash or a space, and four, not glued to other digits;
# deliberately wider than a valid number (see free_text.py).
_CPR = r"(\d{2})(\d{2})\d{2}-?\d{4}"
CPR_RE = re.compile(rf"^{_CPR}$")
CPR_IN_TEXT_RE = re.compile(r"(?<![0-9])[0-9]{6}[- ]?[0-9]{4}(?![0-9])")


def looks_like_cpr(text: str) -> bool:
    """Is ``text`` a CPR number (a plausible day and month, dash optional)?"""
    match = CPR_RE.match(text)
    if not match:
        return False
    day, month = int(match.group(1)), int(match.group(2))
    return 1 <= day <= 31 and 1 <= month <= 12
