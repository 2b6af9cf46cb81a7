"""The staff page's accounts, sessions and login failures: ``staff.db``.

Persistence only.  The rules (password hashing, lockout, how long a session
lives) belong to the staff page (:mod:`bibbox.web.staff.accounts`), which
reads through :class:`AccountStore` and writes through one
:class:`AccountUnit` per transaction.

Contract:
- A SQLite file of its own, created mode 0600, apart from the locker's
  database, so the locker's schema never changes for the staff page.
- The schema is versioned (``PRAGMA user_version``) and migrated forward at
  open with :func:`bibbox.locker.store.sqlite.migrate`; a file from before
  the schema was versioned (version 0, the same tables) migrates to 1
  without a change to its rows.
- Sessions are kept by the SHA-256 of their id, failed logins by a keyed
  hash of the name typed: callers hand in those keys, never a clear id,
  name-as-typed or password.
- One connection per thread; instances are safe to share between threads.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from bibbox.locker.store import sqlite

DB_FILE = "staff.db"

MIGRATIONS = [
    # 1: accounts, sessions, failed logins, lockouts.  IF NOT EXISTS: a file
    # written before the schema had a version already holds these tables.
    """
    CREATE TABLE IF NOT EXISTS staff (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        pw_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        pw_changed_at REAL NOT NULL,
        last_login REAL
    );
    CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        address TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS sessions_name ON sessions (name);
    CREATE TABLE IF NOT EXISTS login_failures (
        ts REAL NOT NULL,
        who TEXT NOT NULL,
        address TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS login_failures_who ON login_failures (who, ts);
    CREATE INDEX IF NOT EXISTS login_failures_addr ON login_failures (address, ts);
    CREATE TABLE IF NOT EXISTS lockouts (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        until REAL NOT NULL,
        PRIMARY KEY (kind, key)
    );
    """,
    # 2: how many times a key was locked in a row, so each lock lasts longer.
    """
    ALTER TABLE lockouts ADD COLUMN strikes INTEGER NOT NULL DEFAULT 0;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# What a failed login is counted by: a lockout ``kind`` and its column.  A
# failure from a known device is kept with ``who`` = the device's key (callers
# make account and device keys that cannot clash) and an empty address.
_FAILURE_COLUMNS = {"account": "who", "device": "who", "address": "address"}


class AccountUnit:
    """The writes of one transaction (see :meth:`AccountStore.unit`)."""

    def __init__(self, conn):
        self.conn = conn

    # -- accounts --------------------------------------------------------------
    def account_exists(self, name) -> bool:
        return self.conn.execute("SELECT 1 FROM staff WHERE name=?",
                                 (name,)).fetchone() is not None

    def insert_account(self, name, role, pw_hash, now):
        self.conn.execute("INSERT INTO staff VALUES (?,?,?,?,?,NULL)",
                          (name, role, pw_hash, now, now))

    def delete_account(self, name) -> bool:
        """Delete the account and its sessions; False if there was none."""
        if self.conn.execute("DELETE FROM staff WHERE name=?", (name,)).rowcount == 0:
            return False
        self.delete_sessions_of(name)
        return True

    def set_password_hash(self, name, pw_hash, now) -> bool:
        """False if there is no such account."""
        return self.conn.execute("UPDATE staff SET pw_hash=?, pw_changed_at=? WHERE name=?",
                                 (pw_hash, now, name)).rowcount > 0

    def set_last_login(self, name, now):
        self.conn.execute("UPDATE staff SET last_login=? WHERE name=?", (now, name))

    # -- sessions --------------------------------------------------------------
    def insert_session(self, id_hash, name, now, address):
        self.conn.execute("INSERT INTO sessions VALUES (?,?,?,?,?)",
                          (id_hash, name, now, now, address))

    def touch_session(self, id_hash, now):
        self.conn.execute("UPDATE sessions SET last_seen=? WHERE id_hash=?", (now, id_hash))

    def delete_session(self, id_hash):
        self.conn.execute("DELETE FROM sessions WHERE id_hash=?", (id_hash,))

    def delete_sessions_of(self, name) -> int:
        return self.conn.execute("DELETE FROM sessions WHERE name=?", (name,)).rowcount

    def delete_sessions_older(self, *, seen_before, created_before):
        self.conn.execute("DELETE FROM sessions WHERE last_seen<? OR created_at<?",
                          (seen_before, created_before))

    # -- failed logins and lockouts ------------------------------------------------
    def add_failure(self, ts, who, address):
        self.conn.execute("INSERT INTO login_failures VALUES (?,?,?)", (ts, who, address))

    def delete_failures_before(self, ts):
        self.conn.execute("DELETE FROM login_failures WHERE ts<?", (ts,))

    def failure_count(self, kind, key, since) -> int:
        """Failures since ``since`` counted by ``kind`` (account or address)."""
        column = _FAILURE_COLUMNS[kind]
        return self.conn.execute(f"SELECT count(*) FROM login_failures WHERE {column}=? "
                                 "AND ts>=?", (key, since)).fetchone()[0]

    def clear_failures(self, kind, key):
        column = _FAILURE_COLUMNS[kind]
        self.conn.execute(f"DELETE FROM login_failures WHERE {column}=?", (key,))

    def set_lockout(self, kind, key, until, strikes=0):
        """Lock ``key`` until ``until``; ``strikes``: its locks in a row."""
        self.conn.execute("INSERT OR REPLACE INTO lockouts (kind, key, until, strikes) "
                          "VALUES (?,?,?,?)", (kind, key, until, strikes))

    def lockout(self, kind, key):
        """(until, strikes) of ``key``'s last lock, or None."""
        r = self.conn.execute("SELECT until, strikes FROM lockouts WHERE kind=? AND key=?",
                              (kind, key)).fetchone()
        return (r["until"], r["strikes"]) if r else None

    def delete_lockout(self, kind, key):
        self.conn.execute("DELETE FROM lockouts WHERE kind=? AND key=?", (kind, key))


class AccountStore:
    """``staff.db`` at ``path`` (``":memory:"`` allowed for one thread)."""

    def __init__(self, path):
        self.path = str(path)
        self._local = threading.local()
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        sqlite.migrate(self._conn(), MIGRATIONS, name="staff database")

    @classmethod
    def in_state_dir(cls, state_dir):
        return cls(os.path.join(state_dir, DB_FILE))

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite.connect(self.path)
            self._local.conn = conn
        return conn

    def close(self):
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def unit(self):
        """One write transaction (``BEGIN IMMEDIATE``); rolled back on error."""
        with sqlite.transaction(self._conn()) as conn:
            yield AccountUnit(conn)

    # -- reads -------------------------------------------------------------------
    def account(self, name) -> dict | None:
        """name, role, pw_hash, created_at, pw_changed_at, last_login."""
        r = self._conn().execute("SELECT * FROM staff WHERE name=?", (name,)).fetchone()
        return dict(r) if r else None

    def account_names(self) -> list[str]:
        return [r["name"] for r in
                self._conn().execute("SELECT name FROM staff ORDER BY name")]

    def account_count(self, role=None) -> int:
        if role:
            return self._conn().execute("SELECT count(*) FROM staff WHERE role=?",
                                        (role,)).fetchone()[0]
        return self._conn().execute("SELECT count(*) FROM staff").fetchone()[0]

    def password_hash(self, name) -> str | None:
        r = self._conn().execute("SELECT pw_hash FROM staff WHERE name=?", (name,)).fetchone()
        return r["pw_hash"] if r else None

    def session(self, id_hash) -> dict | None:
        """name, role, created_at, last_seen of a session whose account exists."""
        r = self._conn().execute(
            "SELECT s.created_at, s.last_seen, s.name, a.role FROM sessions s "
            "JOIN staff a ON a.name = s.name WHERE s.id_hash=?", (id_hash,)).fetchone()
        return dict(r) if r else None

    def session_count(self, name=None) -> int:
        if name:
            return self._conn().execute("SELECT count(*) FROM sessions WHERE name=?",
                                        (name,)).fetchone()[0]
        return self._conn().execute("SELECT count(*) FROM sessions").fetchone()[0]

    def lockout_until(self, kind, key) -> float | None:
        """When the lockout of ``key`` ends (maybe already past), or None."""
        r = self._conn().execute("SELECT until FROM lockouts WHERE kind=? AND key=?",
                                 (kind, key)).fetchone()
        return r["until"] if r else None
