"""The durable store: SQLite in WAL mode with ``synchronous=FULL``.

Contract:
- Every state change and the event reporting it are written in one
  transaction (:meth:`Store.unit`), so a crash loses neither: the ``outbox``
  table is the transactional outbox the MQTT link drains.
- The schema is versioned with ``PRAGMA user_version`` and migrated forward
  at open; a database from a newer version is refused.
- Only keyed hashes are stored: no card number, no PIN, ever.
- One connection per thread.  The controller thread writes; the outbox
  sender and web pages may open their own connections to read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from contextlib import contextmanager

from bibbox.locker.domain.errors import StoreError
from bibbox.locker.store import outbox, sqlite
from bibbox.locker.domain.model import Compartment, Hold, HoldState, Item, Opening, OpenPurpose

MIGRATIONS = [
    # 1: the pickup foundation
    """
    CREATE TABLE compartments (
        number INTEGER PRIMARY KEY,
        size TEXT NOT NULL,
        out_of_service TEXT
    );
    CREATE TABLE holds (
        id TEXT PRIMARY KEY,
        patron_hash TEXT NOT NULL,
        items TEXT NOT NULL,
        pickup_number TEXT NOT NULL,
        deadline REAL NOT NULL,
        state TEXT NOT NULL,
        compartment INTEGER,
        size TEXT,
        pickup_code_hash TEXT,
        updated_at REAL NOT NULL
    );
    CREATE INDEX holds_patron ON holds (patron_hash, state);
    CREATE INDEX holds_compartment ON holds (compartment, state);
    CREATE INDEX holds_state ON holds (state, deadline);
    CREATE TABLE patrons (
        patron_hash TEXT PRIMARY KEY,
        pin_hash TEXT NOT NULL,
        block_reason TEXT
    );
    CREATE TABLE pin_failures (
        patron_hash TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        blocked_until REAL
    );
    CREATE TABLE openings (
        compartment INTEGER PRIMARY KEY,
        purpose TEXT NOT NULL,
        session TEXT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        fired INTEGER NOT NULL,
        seen_open INTEGER NOT NULL
    );
    CREATE TABLE alarms (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        compartment INTEGER,
        raised_at REAL NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        compartment INTEGER,
        patron TEXT,
        reason TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_ts ON audit (ts);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: the staff audit filters (by compartment, kind, who) stay fast at
    # hundreds of thousands of rows
    """
    CREATE INDEX audit_compartment ON audit (compartment, id);
    CREATE INDEX audit_action ON audit (action, id);
    CREATE INDEX audit_actor ON audit (actor, id);
    """,
    # 3: the library system's circulation queue: loans on collection and
    # check-ins on unloading, sent in order by the loan worker.  ``sealed``
    # is the patron's card in a sealed box (never the card in the clear),
    # deleted with its row when the library system has acknowledged.
    """
    CREATE TABLE loans (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        hold_id TEXT NOT NULL,
        item TEXT NOT NULL,
        patron_hash TEXT,
        sealed BLOB,
        offline INTEGER NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 4: a pickup's opening names the holds it grants, so a restart while
    # the door stands open still collects exactly those
    """
    ALTER TABLE openings ADD COLUMN holds TEXT NOT NULL DEFAULT '';
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _hold_from_row(r):
    return Hold(id=r["id"], patron_hash=r["patron_hash"],
                items=tuple(Item.from_dict(i) for i in json.loads(r["items"])),
                pickup_number=r["pickup_number"], deadline=r["deadline"],
                state=HoldState(r["state"]), compartment=r["compartment"],
                size=r["size"], pickup_code_hash=r["pickup_code_hash"],
                updated_at=r["updated_at"])


class Unit:
    """One open transaction.  Writes go through here; :meth:`Store.unit`
    commits them together or not at all."""

    def __init__(self, conn, wall_now):
        self.conn = conn
        self.now = wall_now
        self.events = []

    # -- state -----------------------------------------------------------
    def put_hold(self, hold: Hold):
        self.conn.execute(
            "INSERT OR REPLACE INTO holds VALUES (?,?,?,?,?,?,?,?,?,?)",
            (hold.id, hold.patron_hash,
             json.dumps([i.as_dict() for i in hold.items]),
             hold.pickup_number, hold.deadline, hold.state.value,
             hold.compartment, hold.size, hold.pickup_code_hash, self.now))

    def put_compartment(self, c: Compartment):
        self.conn.execute(
            "INSERT INTO compartments VALUES (?,?,?) ON CONFLICT(number) DO "
            "UPDATE SET size=excluded.size, out_of_service=excluded.out_of_service",
            (c.number, c.size, c.out_of_service))

    def put_opening(self, o: Opening):
        self.conn.execute(
            "INSERT OR REPLACE INTO openings VALUES (?,?,?,?,?,?,?,?)",
            (o.compartment, o.purpose.value, o.session, o.actor, o.reason,
             int(o.fired), int(o.seen_open), ",".join(o.holds)))

    def drop_opening(self, compartment):
        self.conn.execute("DELETE FROM openings WHERE compartment=?", (compartment,))

    def set_pin_failures(self, patron_hash, count, blocked_until):
        if count == 0 and blocked_until is None:
            self.conn.execute("DELETE FROM pin_failures WHERE patron_hash=?",
                              (patron_hash,))
        else:
            self.conn.execute("INSERT OR REPLACE INTO pin_failures VALUES (?,?,?)",
                              (patron_hash, count, blocked_until))

    def raise_alarm(self, key, kind, compartment):
        self.conn.execute("INSERT OR REPLACE INTO alarms VALUES (?,?,?,?)",
                          (key, kind, compartment, self.now))

    def clear_alarm(self, key):
        self.conn.execute("DELETE FROM alarms WHERE key=?", (key,))

    def put_patron(self, patron_hash, pin_hash, block_reason):
        self.conn.execute("INSERT OR REPLACE INTO patrons VALUES (?,?,?)",
                          (patron_hash, pin_hash, block_reason or None))

    def set_meta(self, key, value):
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, str(value)))

    # -- the circulation queue (read by bibbox.locker.store.loans) ----------
    def queue_loan(self, kind, hold_id, item, *, patron_hash=None, sealed=None,
                   offline=False):
        self.conn.execute(
            "INSERT INTO loans (kind, hold_id, item, patron_hash, sealed, offline, "
            "created_at) VALUES (?,?,?,?,?,?,?)",
            (kind, hold_id, item, patron_hash, sealed, int(bool(offline)), self.now))

    def settle_loan(self, loan_id):
        """The loan is done with (acknowledged, refused or dropped): the row
        and its sealed identity go."""
        self.conn.execute("DELETE FROM loans WHERE id=?", (loan_id,))

    # -- records -----------------------------------------------------------
    def event(self, type_, data):
        """Append an event to the outbox; returns its (seq, id)."""
        event_id = str(uuid.uuid4())
        cur = self.conn.execute(
            "INSERT INTO outbox (id, ts, type, payload) VALUES (?,?,?,?)",
            (event_id, self.now, type_, json.dumps(data, sort_keys=True)))
        self.events.append((cur.lastrowid, event_id, type_))
        return cur.lastrowid, event_id

    def audit(self, actor, action, *, compartment=None, patron=None,
              reason="", detail=""):
        self.conn.execute(
            "INSERT INTO audit (ts, actor, action, compartment, patron, reason, "
            "detail) VALUES (?,?,?,?,?,?,?)",
            (self.now, actor, action, compartment, patron, reason, detail))


class Store:
    """The locker's database.  ``path`` may be ``":memory:"`` for tests."""

    def __init__(self, path, *, clock):
        self.path = str(path)
        self.clock = clock
        self.read_only = False
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            self.conn = self._connect(self.path)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if not self._cannot_write_here():
                raise StoreError(f"database {self.path} is unusable: {exc}") from exc
            # A WAL database closed cleanly (no -wal left) on a file system that
            # is now read-only or full cannot be opened normally: SQLite must
            # create its -shm and -wal files first.  Open it as immutable: the
            # locker then serves what it has, every write fails with StoreError
            # and raises the storage alarm, instead of the daemon exiting and
            # systemd restarting it over and over.
            try:
                self.conn = self._connect_immutable(self.path)
                self._migrate()
            except sqlite3.DatabaseError:
                raise StoreError(f"database {self.path} is unusable: {exc}") from exc
            self.read_only = True
        self.on_commit = []   # callables(events) run after each commit

    def _cannot_write_here(self):
        """True if the database exists, has no unmerged WAL, and its directory
        is read-only or (nearly) full."""
        if self.path == ":memory:" or not os.path.exists(self.path):
            return False
        try:
            if os.path.getsize(self.path + "-wal") > 0:
                return False        # immutable would ignore committed changes
        except OSError:
            pass
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            info = os.statvfs(directory)
        except OSError:
            return False
        return bool(info.f_flag & os.ST_RDONLY) or not os.access(directory, os.W_OK) \
            or info.f_bfree * info.f_frsize < 1024 * 1024

    _connect_immutable = staticmethod(sqlite.connect_immutable)
    _connect = staticmethod(sqlite.connect)

    def reader(self):
        """A separate connection for another thread (outbox sender, pages)."""
        if self.read_only:
            return self._connect_immutable(self.path)
        return self._connect(self.path)

    def _migrate(self):
        sqlite.migrate(self.conn, MIGRATIONS, name="database")

    def ping(self):
        """A cheap read on this connection (the watchdog's store probe)."""
        self.conn.execute("SELECT 1").fetchone()

    @contextmanager
    def unit(self):
        """A write transaction; commits on success, rolls back on error.
        Raises StoreError if the disk refuses the write."""
        unit = Unit(self.conn, self.clock.wall())
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to the database: {exc}") from exc
        try:
            yield unit
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"cannot write to the database: {exc}") from exc
        except BaseException:
            self._rollback()
            raise
        for callback in self.on_commit:
            callback(unit.events)

    def _rollback(self):
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- reads ---------------------------------------------------------------
    def compartments(self):
        rows = self.conn.execute("SELECT * FROM compartments ORDER BY number")
        return [Compartment(r["number"], r["size"], r["out_of_service"]) for r in rows]

    def active_holds(self):
        """Every hold that is not final (collected, removed)."""
        rows = self.conn.execute(
            "SELECT * FROM holds WHERE state NOT IN ('collected','removed')")
        return [_hold_from_row(r) for r in rows]

    def hold(self, hold_id):
        r = self.conn.execute("SELECT * FROM holds WHERE id=?", (hold_id,)).fetchone()
        return _hold_from_row(r) if r else None

    def last_holds_out(self, compartment):
        """The holds that last left ``compartment`` (collected or removed,
        all with the newest ``updated_at``: one unit), or []."""
        rows = self.conn.execute(
            "SELECT * FROM holds WHERE compartment=? AND state IN ('collected','removed') "
            "AND updated_at=(SELECT MAX(updated_at) FROM holds WHERE compartment=? "
            "AND state IN ('collected','removed')) ORDER BY id", (compartment, compartment))
        return [_hold_from_row(r) for r in rows]

    def audited_since(self, action, compartment, since):
        """True if an audit line ``action`` about ``compartment`` is dated ``since`` or later."""
        return bool(self.audit_rows(since=since, compartment=compartment, action=action,
                                    limit=1))

    def openings(self):
        rows = self.conn.execute("SELECT * FROM openings")
        return [Opening(r["compartment"], OpenPurpose(r["purpose"]), r["session"],
                        r["actor"], r["reason"], bool(r["fired"]),
                        bool(r["seen_open"]), holds=tuple(filter(None, r["holds"].split(","))))
                for r in rows]

    def alarms(self):
        return [dict(r) for r in self.conn.execute("SELECT * FROM alarms")]

    def pin_failures(self, patron_hash):
        r = self.conn.execute("SELECT count, blocked_until FROM pin_failures "
                              "WHERE patron_hash=?", (patron_hash,)).fetchone()
        return (r["count"], r["blocked_until"]) if r else (0, None)

    def patron(self, patron_hash):
        r = self.conn.execute("SELECT * FROM patrons WHERE patron_hash=?",
                              (patron_hash,)).fetchone()
        return dict(r) if r else None

    def patron_count(self):
        return self.conn.execute("SELECT count(*) FROM patrons").fetchone()[0]

    def meta(self, key, default=None):
        r = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return r["value"] if r else default

    def audit_rows(self, *, since=None, until=None, compartment=None, action=None,
                   limit=1000, conn=None):
        filters = {key: value for key, value in (("since", since), ("until", until),
                                                 ("compartment", compartment))
                   if value is not None}
        if action is not None:
            filters["actions"] = (action,)
        return self.audit_page(filters, limit, conn=conn)

    # -- the outbox: counted, read and deleted only through locker.store.outbox --
    def outbox_depth(self):
        """How many events wait in the outbox (on this connection)."""
        return outbox.depth(self.conn)

    def outbox_batch(self, after_seq=0, limit=100, conn=None):
        """Up to ``limit`` outbox rows after ``after_seq``, oldest first."""
        return outbox.batch(conn or self.conn, after_seq, limit)

    def loans_waiting(self):
        """How many loans and check-ins wait for the library system."""
        return self.conn.execute("SELECT count(*) FROM loans").fetchone()[0]

    def loan_queue(self):
        """The circulation queue on a connection of its own, for the loan
        worker's thread (:class:`bibbox.locker.store.loans.LoanQueue`)."""
        from bibbox.locker.store.loans import LoanQueue
        return LoanQueue(self.reader())

    def outbox_reader(self) -> outbox.OutboxReader:
        """The outbox on a connection of its own, for the thread that drains
        it (the central link's sender)."""
        return outbox.OutboxReader(self.reader())

    def close(self):
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    # -- the staff page's reads (queries in bibbox.locker.store.audit) ------------
    def audit_page(self, filters, limit, *, conn=None):
        """At most ``limit`` audit rows matching ``filters``, newest first."""
        from bibbox.locker.store import audit
        return audit.audit_page(conn or self.conn, filters, limit)

    def audit_rows_for_csv(self, filters, *, conn=None):
        """Every audit row matching ``filters``, newest first (a generator)."""
        from bibbox.locker.store import audit
        return audit.audit_rows_all(conn or self.conn, filters)

    def patron_known(self, patron_hash, *, conn=None):
        """Is ``patron_hash`` a local patron or the patron of any hold?"""
        from bibbox.locker.store import audit
        return audit.patron_known(conn or self.conn, patron_hash)
