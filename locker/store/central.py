"""``central.db``: the answer book of the central link's commands.

Contract:
- One table, ``answered (request_id, command, answered_at, response)``: the
  first answer given to each command request id, so a replay is answered
  byte for byte and runs nothing again.
- The schema is versioned (``PRAGMA user_version``) and migrated through
  :mod:`bibbox.locker.store.sqlite`.  Version 1 is the shape the file had
  before it was versioned, so an existing ``central.db`` (user_version 0,
  the table already there) opens and is simply marked version 1.
- The file is opened lazily, on first use, from whichever thread uses it
  first (the command handler's); every database error is a StoreError.
"""

from __future__ import annotations

import os
import sqlite3

from bibbox.locker.domain.errors import StoreError
from bibbox.locker.store import sqlite

CENTRAL_DB = "bibbox.central.db"

MIGRATIONS = [
    # 1: the answer book (IF NOT EXISTS: a file from before versioning has it)
    """
    CREATE TABLE IF NOT EXISTS answered (
        request_id TEXT PRIMARY KEY,
        command TEXT NOT NULL,
        answered_at REAL NOT NULL,
        response TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS answered_at ON answered (answered_at);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class AnswerStore:
    """The ``answered`` table of one ``central.db`` file."""

    def __init__(self, path):
        self.path = str(path)
        self._conn = None

    def _db(self):
        if self._conn is None:
            try:
                if self.path != ":memory:":
                    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                conn = sqlite.connect(self.path)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            try:
                sqlite.migrate(conn, MIGRATIONS, name=self.path)
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"cannot migrate {self.path}: {exc}") from exc
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def lookup(self, request_id):
        """``(command, response_json)`` recorded for ``request_id``, or None."""
        try:
            row = self._db().execute("SELECT command, response FROM answered "
                                     "WHERE request_id=?", (request_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc
        return (row[0], row[1]) if row else None

    def add(self, rows, *, keep=None):
        """Record ``rows`` of ``(request_id, command, answered_at, response)``
        in one transaction (a request id already there keeps its first
        answer); with ``keep``, forget all but the newest ``keep`` answers."""
        with sqlite.transaction(self._db()) as conn:
            conn.executemany("INSERT OR IGNORE INTO answered VALUES (?,?,?,?)", rows)
            if keep is not None:
                conn.execute("DELETE FROM answered WHERE request_id IN (SELECT request_id "
                             "FROM answered ORDER BY answered_at DESC LIMIT -1 OFFSET ?)",
                             (keep,))

    def count(self):
        try:
            return self._db().execute("SELECT count(*) FROM answered").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
