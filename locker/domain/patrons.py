"""Patron verification: the verdict, its outcomes, and the patron list.

The verifier port is :class:`bibbox.locker.domain.ports.Verifier`::

    verifier.verify(patron_hash: str, pin: Pin, done: Callable[[Verdict], None],
                    *, card: CardNumber | None)

``done`` is called exactly once, from any thread, possibly before ``verify``
returns.  Adapters never log or store the PIN or the card (``card`` is for
the library-system verifiers, which name the patron by card number).  The locker owns the
wrong-PIN counter and the card block, whatever adapter answers.  The
``local`` adapter is ``bibbox.locker.app.local_verifier.LocalVerifier``;
:func:`import_patrons` fills the patron list it checks against.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from bibbox.locker.domain.errors import CardFormatError, CommandError
from bibbox.locker.domain.identity import CardNumber, Pin

ACCEPTED = "accepted"
WRONG_PIN = "wrong_pin"
BLOCKED = "blocked"
UNKNOWN = "unknown"
UNAVAILABLE = "unavailable"
OUTCOMES = (ACCEPTED, WRONG_PIN, BLOCKED, UNKNOWN, UNAVAILABLE)
BLOCK_REASONS = ("lost_card", "fees", "library")
# How an accepted patron proved it, when not card + PIN (``Verdict.reason``).
BY_PICKUP_CODE, BY_PICKUP_NUMBER = "pickup_code", "pickup_number"


@dataclass(frozen=True)
class Verdict:
    """The answer of a verifier.  ``due`` maps item barcodes to loan due dates
    (ISO); ``default_due`` applies to items the verifier did not name.
    ``holds`` is the item barcodes the verifier reports as this patron's
    holds ready for pickup (a library system's 64 reply lists them; empty
    when it lists none), or None when it does not report them; see
    ``Sessions.verdict_received``."""
    outcome: str
    reason: str = ""
    due: dict = field(default_factory=dict)
    default_due: str | None = None
    holds: frozenset | None = None


def import_patrons(store, hasher, text: str) -> int:
    """Import a patron list (CSV with header ``card,pin[,block_reason]``).

    All rows or none: any bad row raises :class:`CommandError` listing every
    bad line by number, never its card number.  Returns the rows imported."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "card" not in header or "pin" not in header:
        raise CommandError("bad_csv", "the header must name the columns card,pin"
                           "[,block_reason]")
    problems, rows, seen = [], [], set()
    for line_no, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            card = CardNumber.parse(row.get("card", ""))
        except CardFormatError as exc:
            problems.append(f"line {line_no}: {exc}")
            continue
        try:
            pin = Pin.parse(row.get("pin", ""))
        except CardFormatError as exc:
            problems.append(f"line {line_no}: {exc}")
            continue
        reason = row.get("block_reason", "")
        if reason and reason not in BLOCK_REASONS:
            problems.append(f"line {line_no}: block_reason must be empty or one of "
                            + ", ".join(BLOCK_REASONS))
            continue
        patron_hash = hasher.patron(card)
        if patron_hash in seen:
            problems.append(f"line {line_no}: the same card is listed twice")
            continue
        seen.add(patron_hash)
        rows.append((patron_hash, hasher.pin(patron_hash, pin), reason))
    if problems:
        raise CommandError("bad_csv", "patron list refused, nothing imported:\n"
                           + "\n".join(problems))
    with store.unit() as unit:
        for patron_hash, pin_hash, reason in rows:
            unit.put_patron(patron_hash, pin_hash, reason)
        unit.audit("cli", "patrons_imported", detail=f"{len(rows)} patrons")
    return len(rows)
