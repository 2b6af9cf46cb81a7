"""Staff accounts, sessions and login throttling, in ``<state_dir>/staff.db``.

A SQLite file of its own (mode 0600), apart from the locker's database, so
the locker schema never changes for the staff page.  Contract:

- Passwords are stored as scrypt hashes (stdlib ``hashlib.scrypt``,
  n=2**14, r=8, p=1, 16-byte random salt, 32-byte key), encoded
  ``scrypt$16384$8$1$<salt b64>$<key b64>`` so the cost can be raised later
  and old hashes still verify.  Passwords are never stored or logged.
- A session is a random 256-bit id that only the browser's cookie holds; the
  table keeps its SHA-256, so a copy of this file cannot be replayed as a
  login.  Every login makes a new id (the old one, if sent, is deleted);
  logout, ``passwd`` and ``remove`` delete sessions server-side at once.
- Sessions end after ``idle_s`` without a request or ``max_s`` after login,
  whichever comes first (wall time of the injected clock).
- Failed logins are counted per account and per source address: ``limit``
  failures within ``window_s`` lock that account *and* that address for
  ``lock_s``.  While locked even the right password is refused.  Account
  names are kept only as a keyed hash in the failure table, so a password
  typed into the name field is never stored.
- Every method opens and closes its own short transaction; instances are
  safe to share between threads (one connection per thread).

Nothing here imports Flask: the CLI uses it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass

from bibbox.locker.domain.errors import BibboxError, SecretError

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2 ** 14, 8, 1, 32
MIN_PASSWORD, MAX_PASSWORD = 10, 1024
NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
RESERVED_NAMES = {"system", "central", "demo", "cli", "anonymous", "admin-cli", "root"}
ROLES = ("staff", "admin")

FAIL_LIMIT = 5
FAIL_WINDOW_S = 15 * 60
LOCK_S = 15 * 60
IDLE_S = 30 * 60
MAX_S = 12 * 3600

SECRET_FILE = "staff-secret"
DB_FILE = "staff.db"

SCHEMA = """
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
"""


class AccountError(BibboxError, ValueError):
    """An account operation was refused.  ``code`` is stable, the message is
    for people and never contains a password."""

    def __init__(self, code, message):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    created_at: float
    pw_changed_at: float
    last_login: float | None
    locked_until: float | None = None

    @property
    def is_admin(self):
        return self.role == "admin"


@dataclass(frozen=True)
class Session:
    id: str                 # the clear id (only in memory and in the cookie)
    name: str
    role: str
    created_at: float


@dataclass(frozen=True)
class LoginResult:
    """``session`` on success; otherwise ``code`` is ``bad_credentials`` or
    ``locked`` (with ``retry_after_s``)."""
    session: Session | None
    code: str = "ok"
    retry_after_s: int = 0
    account: str | None = None      # the existing account the attempt named


# -- passwords -------------------------------------------------------------------
def hash_password(password: str) -> str:
    check_password_text(password)
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                         p=SCRYPT_P, dklen=SCRYPT_DKLEN)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt, key = base64.b64decode(salt), base64.b64decode(key)
        n, r, p = int(n), int(r), int(p)
    except (ValueError, TypeError):
        return False
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                         dklen=len(key), maxmem=256 * r * n + (1 << 20))
    return hmac.compare_digest(got, key)


_DUMMY_HASH = None


def _dummy_hash():
    """A real hash to verify against for unknown names, so that a missing
    account costs the same time as a wrong password."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def check_password_text(password):
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError("weak_password",
                           f"the password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    if password.strip() != password or not password.isprintable():
        raise AccountError("weak_password",
                           "the password must not start or end with spaces or hold "
                           "control characters")


def check_name(name):
    if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED_NAMES \
            or name.startswith("p-"):
        raise AccountError("bad_name",
                           "a name is 2-32 lower-case letters, digits, '.', '_' or '-', "
                           "starting with a letter (not system, central, demo, cli, ...)")
    return name


# -- the secret key --------------------------------------------------------------
def load_or_create_secret(state_dir) -> bytes:
    """The staff page's secret (Flask's ``secret_key`` and the key for CSRF
    tokens): 32 random bytes in ``<state_dir>/staff-secret``, created 0600
    on first use, refused when group or others may read it."""
    from bibbox.daemon.secrets import read_secret_file
    path = os.path.join(state_dir, SECRET_FILE)
    os.makedirs(state_dir, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    raw = read_secret_file(path, "staff secret").strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        key = raw
    if len(key) < 16:
        raise SecretError(f"staff secret {path} is shorter than 16 bytes")
    return key


# -- the store -------------------------------------------------------------------
class _WallClock:
    def wall(self):
        return time.time()


class Accounts:
    """Staff accounts and sessions in ``path`` (see the module docstring).
    ``clock`` needs ``wall()``; ``secret`` keys the hashed names of failed
    attempts."""

    def __init__(self, path, *, clock=None, secret=b"", idle_s=IDLE_S, max_s=MAX_S,
                 fail_limit=FAIL_LIMIT, fail_window_s=FAIL_WINDOW_S, lock_s=LOCK_S):
        self.path = str(path)
        self.clock = clock or _WallClock()
        self.secret = secret or b"bibbox-staff"
        self.idle_s, self.max_s = idle_s, max_s
        self.fail_limit, self.fail_window_s, self.lock_s = fail_limit, fail_window_s, lock_s
        self._local = threading.local()
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._conn().executescript(SCHEMA)

    @classmethod
    def for_state_dir(cls, state_dir, **kwargs):
        return cls(os.path.join(state_dir, DB_FILE), **kwargs)

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=10000")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    class _Tx:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, kind, exc, tb):
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
            return False

    def _tx(self):
        return self._Tx(self._conn())

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def now(self):
        return self.clock.wall()

    # -- accounts ------------------------------------------------------------
    def add(self, name, password, role="staff"):
        check_name(name)
        if role not in ROLES:
            raise AccountError("bad_role", f"role must be one of {ROLES}")
        pw_hash = hash_password(password)
        now = self.now()
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM staff WHERE name=?", (name,)).fetchone():
                raise AccountError("exists", f"staff account {name!r} exists already")
            conn.execute("INSERT INTO staff VALUES (?,?,?,?,?,NULL)",
                         (name, role, pw_hash, now, now))
        return self.get(name)

    def get(self, name) -> Account | None:
        r = self._conn().execute("SELECT * FROM staff WHERE name=?", (name,)).fetchone()
        if r is None:
            return None
        return Account(r["name"], r["role"], r["created_at"], r["pw_changed_at"],
                       r["last_login"], self._locked_until("account", self._who(name)))

    def require(self, name) -> Account:
        """The account called ``name``, or AccountError ``unknown_account``."""
        account = self.get(name)
        if account is None:
            raise AccountError("unknown_account", f"there is no staff account {name!r}")
        return account

    def list(self):
        rows = self._conn().execute("SELECT name FROM staff ORDER BY name").fetchall()
        return [self.get(r["name"]) for r in rows]

    def count(self, role=None):
        if role:
            return self._conn().execute("SELECT count(*) FROM staff WHERE role=?",
                                        (role,)).fetchone()[0]
        return self._conn().execute("SELECT count(*) FROM staff").fetchone()[0]

    def remove(self, name):
        with self._tx() as conn:
            if conn.execute("DELETE FROM staff WHERE name=?", (name,)).rowcount == 0:
                raise AccountError("unknown_account", f"there is no staff account {name!r}")
            conn.execute("DELETE FROM sessions WHERE name=?", (name,))

    def set_password(self, name, password):
        """Change a password and end every session of that account."""
        pw_hash = hash_password(password)
        with self._tx() as conn:
            if conn.execute("UPDATE staff SET pw_hash=?, pw_changed_at=? WHERE name=?",
                            (pw_hash, self.now(), name)).rowcount == 0:
                raise AccountError("unknown_account", f"there is no staff account {name!r}")
            conn.execute("DELETE FROM sessions WHERE name=?", (name,))
            conn.execute("DELETE FROM lockouts WHERE kind='account' AND key=?",
                         (self._who(name),))

    def unlock(self, name=None, address=None):
        """Lift a lockout of an account and/or an address."""
        with self._tx() as conn:
            if name is not None:
                who = self._who(name)
                conn.execute("DELETE FROM lockouts WHERE kind='account' AND key=?", (who,))
                conn.execute("DELETE FROM login_failures WHERE who=?", (who,))
            if address is not None:
                conn.execute("DELETE FROM lockouts WHERE kind='address' AND key=?",
                             (address,))
                conn.execute("DELETE FROM login_failures WHERE address=?", (address,))

    # -- login -----------------------------------------------------------------
    def _who(self, name):
        text = name if isinstance(name, str) else ""
        return hmac.new(self.secret, b"staff-name\x00" + text.strip().lower().encode(
            "utf-8", "replace"), hashlib.sha256).hexdigest()[:32]

    def _locked_until(self, kind, key, conn=None):
        r = (conn or self._conn()).execute(
            "SELECT until FROM lockouts WHERE kind=? AND key=?", (kind, key)).fetchone()
        if r is None or r["until"] <= self.now():
            return None
        return r["until"]

    def lock_state(self, name, address):
        """Seconds until ``name`` or ``address`` may try again (0: now)."""
        until = max(self._locked_until("account", self._who(name)) or 0,
                    self._locked_until("address", address or "") or 0)
        return max(0, int(until - self.now() + 0.999)) if until else 0

    def login(self, name, password, address="") -> LoginResult:
        """Check a login.  A locked account or address is refused without
        looking at the password; a failure is counted and may lock both."""
        address = (address or "")[:64]
        who = self._who(name)
        name_ok = isinstance(name, str) and NAME_RE.match(name.strip().lower() or "-")
        clean = name.strip().lower() if name_ok else None
        row = self._conn().execute("SELECT * FROM staff WHERE name=?",
                                   (clean,)).fetchone() if clean else None
        wait = self.lock_state(name, address)
        if wait:
            return LoginResult(None, "locked", wait, row["name"] if row else None)
        good = verify_password(password if isinstance(password, str) else "",
                               row["pw_hash"] if row else _dummy_hash())
        now = self.now()
        if row is None or not good:
            with self._tx() as conn:
                conn.execute("INSERT INTO login_failures VALUES (?,?,?)", (now, who, address))
                conn.execute("DELETE FROM login_failures WHERE ts<?",
                             (now - self.fail_window_s,))
                since = now - self.fail_window_s
                locked = False
                for kind, column, key in (("account", "who", who),
                                          ("address", "address", address)):
                    n = conn.execute(f"SELECT count(*) FROM login_failures WHERE {column}=? "
                                     "AND ts>=?", (key, since)).fetchone()[0]
                    if n >= self.fail_limit:
                        locked = True
                        conn.execute("INSERT OR REPLACE INTO lockouts VALUES (?,?,?)",
                                     (kind, key, now + self.lock_s))
                        conn.execute(f"DELETE FROM login_failures WHERE {column}=?", (key,))
            account = row["name"] if row else None
            if locked:
                return LoginResult(None, "locked", int(self.lock_s), account)
            return LoginResult(None, "bad_credentials", 0, account)
        session_id = secrets.token_urlsafe(32)
        with self._tx() as conn:
            conn.execute("DELETE FROM login_failures WHERE who=?", (who,))
            conn.execute("INSERT INTO sessions VALUES (?,?,?,?,?)",
                         (_sid_hash(session_id), row["name"], now, now, address))
            conn.execute("UPDATE staff SET last_login=? WHERE name=?", (now, row["name"]))
            conn.execute("DELETE FROM sessions WHERE last_seen<? OR created_at<?",
                         (now - self.idle_s, now - self.max_s))
        return LoginResult(Session(session_id, row["name"], row["role"], now),
                           account=row["name"])

    # -- sessions --------------------------------------------------------------
    def session(self, session_id, touch=True) -> Session | None:
        """The live session for a cookie value, or None (expired sessions
        are deleted).  ``touch`` moves its idle deadline."""
        if not isinstance(session_id, str) or not 20 <= len(session_id) <= 100:
            return None
        key = _sid_hash(session_id)
        conn = self._conn()
        r = conn.execute("SELECT s.created_at, s.last_seen, s.name, a.role FROM sessions s "
                         "JOIN staff a ON a.name = s.name WHERE s.id_hash=?",
                         (key,)).fetchone()
        if r is None:
            return None
        now = self.now()
        if r["last_seen"] < now - self.idle_s or r["created_at"] < now - self.max_s:
            with self._tx() as c:
                c.execute("DELETE FROM sessions WHERE id_hash=?", (key,))
            return None
        if touch and now - r["last_seen"] >= 30:
            with self._tx() as c:
                c.execute("UPDATE sessions SET last_seen=? WHERE id_hash=?", (now, key))
        return Session(session_id, r["name"], r["role"], r["created_at"])

    def logout(self, session_id):
        if isinstance(session_id, str):
            with self._tx() as conn:
                conn.execute("DELETE FROM sessions WHERE id_hash=?", (_sid_hash(session_id),))

    def end_sessions(self, name):
        with self._tx() as conn:
            return conn.execute("DELETE FROM sessions WHERE name=?", (name,)).rowcount

    def session_count(self, name=None):
        if name:
            return self._conn().execute("SELECT count(*) FROM sessions WHERE name=?",
                                        (name,)).fetchone()[0]
        return self._conn().execute("SELECT count(*) FROM sessions").fetchone()[0]


def _sid_hash(session_id):
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()
