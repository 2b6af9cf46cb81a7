"""The outbox table as its drain sees it: the one place its rows are counted,
read in order and deleted.

:class:`OutboxReader` holds a connection of its own, for the one thread that
drains the outbox (the central link's sender) while the controller thread
keeps writing on the store's connection.  Every database error is raised as
StoreError.
"""

from __future__ import annotations

import sqlite3

from bibbox.locker.domain.errors import StoreError
from bibbox.locker.store.sqlite import transaction

DELETE_CHUNK = 500      # sequence numbers in one DELETE statement


def depth(conn) -> int:
    """How many events wait in the outbox (the one count)."""
    return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def batch(conn, after_seq=0, limit=100) -> list[dict]:
    """Up to ``limit`` rows with ``seq > after_seq``, oldest first."""
    rows = conn.execute("SELECT * FROM outbox WHERE seq>? ORDER BY seq LIMIT ?",
                        (after_seq, limit))
    return [dict(r) for r in rows]


class OutboxReader:
    """The outbox on its own connection; for one thread at a time."""

    def __init__(self, conn):
        self.conn = conn

    def depth(self) -> int:
        try:
            return depth(self.conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot count the outbox: {exc}") from exc

    def batch(self, after_seq=0, limit=100) -> list[dict]:
        try:
            return batch(self.conn, after_seq, limit)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the outbox: {exc}") from exc

    def delete(self, seqs) -> None:
        """Delete the rows ``seqs`` (sent and acknowledged) in one transaction;
        on error none is deleted."""
        seqs = list(seqs)
        with transaction(self.conn) as conn:
            for i in range(0, len(seqs), DELETE_CHUNK):
                chunk = seqs[i:i + DELETE_CHUNK]
                conn.execute("DELETE FROM outbox WHERE seq IN (%s)"
                             % ",".join("?" * len(chunk)), chunk)

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
