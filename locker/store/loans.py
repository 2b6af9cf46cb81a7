"""The circulation queue as the loan worker sees it: queued loans and
check-ins, oldest first, on a connection of the worker's own.

Rows are written by the controller (in the unit of the collection or the
unloading, :meth:`bibbox.locker.store.store.Unit.queue_loan`) and deleted by
it when settled (:meth:`~bibbox.locker.store.store.Unit.settle_loan`); the
worker only reads them and counts its attempts.  Every database error is
raised as StoreError.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from bibbox.locker.domain.errors import StoreError
from bibbox.locker.store.sqlite import transaction


@dataclass(frozen=True)
class QueuedLoan:
    """One queued loan (``kind`` checkout) or check-in; ``sealed`` is the
    patron's card in a sealed box (None for a check-in)."""
    id: int
    kind: str
    hold_id: str
    item: str
    patron_hash: str | None
    sealed: bytes | None = field(repr=False)
    offline: bool
    created_at: float
    attempts: int


class LoanQueue:
    """The ``loans`` table on its own connection; for one thread."""

    def __init__(self, conn):
        self.conn = conn

    def pending(self, limit=100) -> list[QueuedLoan]:
        """Up to ``limit`` queued rows in the order they were queued."""
        try:
            rows = self.conn.execute("SELECT * FROM loans ORDER BY id LIMIT ?", (limit,))
            return [QueuedLoan(r["id"], r["kind"], r["hold_id"], r["item"], r["patron_hash"],
                               r["sealed"], bool(r["offline"]), r["created_at"],
                               r["attempts"]) for r in rows]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the loan queue: {exc}") from exc

    def count_attempt(self, loan_id) -> None:
        """A try of ``loan_id`` failed to reach the library system: it and
        every row queued now wait through an outage (sent with no-block)."""
        with transaction(self.conn) as conn:
            conn.execute("UPDATE loans SET attempts=attempts+1 WHERE id=?", (loan_id,))
            conn.execute("UPDATE loans SET offline=1")

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
