"""The one SQLite helper: how every database file of Bibbox is opened,
migrated and written (``bibbox.db``, ``staff.db``, ``central.db``).

Contract:
- :func:`connect` opens in autocommit mode (transactions are explicit), WAL
  journal, ``synchronous=FULL``, foreign keys on, rows as :class:`sqlite3.Row`.
- :func:`migrate` applies a list of SQL scripts forward from ``PRAGMA
  user_version``, each in its own transaction; a file from a newer version
  is refused with StoreError.
- :func:`transaction` is ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on
  any error; a database error becomes StoreError.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from urllib.parse import quote

from bibbox.locker.domain.errors import StoreError


def connect(path: str, *, wal: bool = True) -> sqlite3.Connection:
    """Open ``path`` (``":memory:"`` allowed) for use from any one thread."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=10000")
    if wal and path != ":memory:":
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            conn.close()
            raise StoreError(f"could not enable WAL on {path} (got {mode})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_immutable(path: str) -> sqlite3.Connection:
    """Open ``path`` read-only as immutable (a full or read-only disk)."""
    conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?immutable=1", uri=True,
                           isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def split_sql(script: str) -> list[str]:
    """The statements of a migration script (no ``;`` inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def migrate(conn: sqlite3.Connection, migrations: list[str], *, name: str = "database") -> None:
    """Bring ``conn`` to ``len(migrations)``; refuse a newer file."""
    target = len(migrations)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > target:
        raise StoreError(f"{name} schema {version} is newer than this software "
                         f"({target}); upgrade bibbox")
    for number in range(version, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in split_sql(migrations[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


@contextmanager
def transaction(conn: sqlite3.Connection):
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error.  A
    database error (full disk, read-only file) is raised as StoreError."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot write to the database: {exc}") from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise StoreError(f"cannot write to the database: {exc}") from exc
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn):
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
