"""Staff accounts, sessions and login throttling: the rules.

Persistence is :class:`bibbox.locker.store.accounts.AccountStore`
(``<state_dir>/staff.db``); this module holds the policy:

- Passwords are stored as scrypt hashes (stdlib ``hashlib.scrypt``,
  n=2**14, r=8, p=1, 16-byte random salt, 32-byte key), encoded
  ``scrypt$16384$8$1$<salt b64>$<key b64>`` so the cost can be raised later
  and old hashes still verify.  Passwords are never stored or logged.
- A session is a random 256-bit id that only the browser's cookie holds; the
  store keeps its SHA-256, so a copy of the file cannot be replayed as a
  login.  Every login makes a new id (the old one, if sent, is deleted);
  logout, ``passwd`` and ``remove`` delete sessions server-side at once.
- Sessions end after ``idle_s`` without a request or ``max_s`` after login,
  whichever comes first (wall time of the injected clock).
- Logins are throttled so that a lockout cannot be turned against staff
  (OWASP ASVS 5.0 V6.3, NIST SP 800-63B 5.2.2; the README's "Staff
  logins and lockout"):

  * a *known device* is one that logged in to an account before: it holds
    a device cookie for that account (a random nonce and its HMAC with
    ``secret``, per account; :meth:`Accounts.device_token`).  Its failures
    count against that device only, and neither the account's lock nor its
    address's applies to it; ``limit`` failures lock the device itself;
  * any other attempt counts against the account and the source address:
    ``limit`` failures within ``window_s`` lock the account for unknown
    devices, and the address, for ``lock_s``;
  * a key locked again within a day of its last lock is locked twice as
    long as the last time (at most ``MAX_LOCK_S``); a good login clears
    the account's and the device's record;
  * while locked even the right password is refused, without checking it;
    the lock check, the password check and the failure count are one
    atomic step per key (a lock per account, device and address).

  Account names are kept only as a keyed hash (with ``secret``) in the
  failure table, so a password typed into the name field is never stored.
- Every method is one short transaction; instances are safe to share
  between threads.

Nothing here imports Flask: ``bibbox staff`` (the CLI) uses it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from bibbox.locker.domain import free_text
from bibbox.locker.domain.errors import BibboxError

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2 ** 14, 8, 1, 32
MIN_PASSWORD, MAX_PASSWORD = 10, 1024
NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
RESERVED_NAMES = {"system", "central", "demo", "cli", "anonymous", "admin-cli", "root"}
ROLES = ("staff", "admin")

FAIL_LIMIT = 5
FAIL_WINDOW_S = 15 * 60
LOCK_S = 15 * 60
MAX_LOCK_S = 24 * 3600
STRIKE_MEMORY_S = 24 * 3600        # a lock this long past is forgotten
DEVICE_COOKIE_PREFIX = "bibbox-device-"
IDLE_S = 30 * 60
MAX_S = 12 * 3600


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
    if isinstance(name, str) and free_text.contains_cpr(name):
        raise AccountError("cpr_in_text", "a staff name must not hold a CPR number")
    if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED_NAMES \
            or name.startswith("p-"):
        raise AccountError("bad_name",
                           "a name is 2-32 lower-case letters, digits, '.', '_' or '-', "
                           "starting with a letter (not system, central, demo, cli, ...)")
    return name


# -- the rules over the store ------------------------------------------------------
class _KeyLocks:
    """One in-process lock per key, held together (in a fixed order)."""

    def __init__(self):
        self._guard = threading.Lock()
        self._locks = {}            # key -> [lock, users]

    @contextmanager
    def holding(self, keys):
        keys = sorted(set(keys))
        with self._guard:
            entries = []
            for key in keys:
                entry = self._locks.setdefault(key, [threading.Lock(), 0])
                entry[1] += 1
                entries.append(entry)
        try:
            for entry in entries:
                entry[0].acquire()
            try:
                yield
            finally:
                for entry in reversed(entries):
                    entry[0].release()
        finally:
            with self._guard:
                for key, entry in zip(keys, entries):
                    entry[1] -= 1
                    if entry[1] == 0:
                        del self._locks[key]


class _WallClock:
    def wall(self):
        return time.time()


class Accounts:
    """Staff accounts and sessions kept in ``store`` (an
    :class:`~bibbox.locker.store.accounts.AccountStore`; see the module
    docstring).  ``clock`` needs ``wall()``; ``secret`` keys the hashed
    names of failed attempts."""

    def __init__(self, store, *, clock=None, secret=b"", idle_s=IDLE_S, max_s=MAX_S,
                 fail_limit=FAIL_LIMIT, fail_window_s=FAIL_WINDOW_S, lock_s=LOCK_S):
        self.store = store
        self.clock = clock or _WallClock()
        self.secret = secret or b"bibbox-staff"
        self.idle_s, self.max_s = idle_s, max_s
        self.fail_limit, self.fail_window_s, self.lock_s = fail_limit, fail_window_s, lock_s
        self._key_locks = _KeyLocks()

    @property
    def path(self):
        """The database file."""
        return self.store.path

    def close(self):
        self.store.close()

    def now(self):
        return self.clock.wall()

    # -- accounts ------------------------------------------------------------
    def add(self, name, password, role="staff"):
        check_name(name)
        if role not in ROLES:
            raise AccountError("bad_role", f"role must be one of {ROLES}")
        pw_hash = hash_password(password)
        now = self.now()
        with self.store.unit() as unit:
            if unit.account_exists(name):
                raise AccountError("exists", f"staff account {name!r} exists already")
            unit.insert_account(name, role, pw_hash, now)
        return self.get(name)

    def get(self, name) -> Account | None:
        r = self.store.account(name)
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
        return [self.get(name) for name in self.store.account_names()]

    def count(self, role=None):
        return self.store.account_count(role)

    def remove(self, name):
        with self.store.unit() as unit:
            if not unit.delete_account(name):
                raise AccountError("unknown_account", f"there is no staff account {name!r}")

    def set_password(self, name, password):
        """Change a password and end every session of that account."""
        pw_hash = hash_password(password)
        with self.store.unit() as unit:
            if not unit.set_password_hash(name, pw_hash, self.now()):
                raise AccountError("unknown_account", f"there is no staff account {name!r}")
            unit.delete_sessions_of(name)
            unit.delete_lockout("account", self._who(name))

    def unlock(self, name=None, address=None):
        """Lift a lockout of an account and/or an address."""
        with self.store.unit() as unit:
            if name is not None:
                who = self._who(name)
                unit.delete_lockout("account", who)
                unit.clear_failures("account", who)
            if address is not None:
                unit.delete_lockout("address", address)
                unit.clear_failures("address", address)

    # -- login -----------------------------------------------------------------
    def _who(self, name):
        text = name if isinstance(name, str) else ""
        return hmac.new(self.secret, b"staff-name\x00" + text.strip().lower().encode(
            "utf-8", "replace"), hashlib.sha256).hexdigest()[:32]

    def _locked_until(self, kind, key):
        until = self.store.lockout_until(kind, key)
        if until is None or until <= self.now():
            return None
        return until

    def lock_state(self, name, address):
        """Seconds until ``name`` or ``address`` may try again from an
        unknown device (0: now)."""
        return self._wait([("account", self._who(name)), ("address", address or "")])

    def _wait(self, keys):
        until = max((self._locked_until(kind, key) or 0) for kind, key in keys)
        return max(0, int(until - self.now() + 0.999)) if until else 0

    # -- known devices ----------------------------------------------------------
    def device_token(self, name):
        """A new device cookie value for account ``name``."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._device_mac(name, nonce)}"

    def device_known(self, name, token):
        """Is ``token`` a device cookie this locker made for account ``name``?"""
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 200:
            return False
        nonce, mac = token.split(".")
        return hmac.compare_digest(mac.encode("ascii", "replace"),
                                   self._device_mac(name, nonce).encode("ascii"))

    def _device_mac(self, name, nonce):
        return hmac.new(self.secret, b"staff-device\x00" + name.encode() + b"\x00"
                        + nonce.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:32]

    # -- login -----------------------------------------------------------------
    def login(self, name, password, address="", device=None) -> LoginResult:
        """Check a login (see the module docstring for the throttling).
        ``device`` is the device cookie sent for ``name``, if any.  A locked
        key is refused without looking at the password."""
        address = (address or "")[:64]
        who = self._who(name)
        name_ok = isinstance(name, str) and NAME_RE.match(name.strip().lower() or "-")
        row = self.store.account(name.strip().lower()) if name_ok else None
        if row is not None and self.device_known(row["name"], device):
            keys = [("device", "device:" + hashlib.sha256(device.encode()).hexdigest()[:32])]
        else:
            keys = [("account", who), ("address", address)]
        with self._key_locks.holding(keys):
            wait = self._wait(keys)
            if wait:
                return LoginResult(None, "locked", wait, row["name"] if row else None)
            good = verify_password(password if isinstance(password, str) else "",
                                   row["pw_hash"] if row else _dummy_hash())
            now = self.now()
            if row is None or not good:
                account = row["name"] if row else None
                locked_for = self._count_failure(now, keys)
                if locked_for:
                    return LoginResult(None, "locked", int(locked_for), account)
                return LoginResult(None, "bad_credentials", 0, account)
            session_id = secrets.token_urlsafe(32)
            with self.store.unit() as unit:
                for kind, key in keys:
                    if kind != "address":
                        unit.clear_failures(kind, key)
                        unit.delete_lockout(kind, key)
                unit.insert_session(_sid_hash(session_id), row["name"], now, address)
                unit.set_last_login(row["name"], now)
                unit.delete_sessions_older(seen_before=now - self.idle_s,
                                           created_before=now - self.max_s)
        return LoginResult(Session(session_id, row["name"], row["role"], now),
                           account=row["name"])

    def _count_failure(self, now, keys):
        """Record a failed login against ``keys``; the seconds of the lock it
        set (the longest), or 0."""
        since = now - self.fail_window_s
        kinds = dict(keys)
        who = kinds.get("account") or kinds.get("device")
        locked_for = 0
        with self.store.unit() as unit:
            unit.add_failure(now, who, kinds.get("address", ""))
            unit.delete_failures_before(since)
            # count every key first: clearing one key's failures clears rows
            # that also counted for the other
            over = [(kind, key) for kind, key in keys
                    if unit.failure_count(kind, key, since) >= self.fail_limit]
            for kind, key in over:
                last = unit.lockout(kind, key)
                strikes = 0
                if last is not None and last[0] >= now - STRIKE_MEMORY_S:
                    strikes = last[1] + 1
                seconds = min(self.lock_s * 2 ** min(strikes, 16), MAX_LOCK_S)
                unit.set_lockout(kind, key, now + seconds, strikes)
                unit.clear_failures(kind, key)
                locked_for = max(locked_for, seconds)
        return locked_for

    # -- sessions --------------------------------------------------------------
    def session(self, session_id, touch=True) -> Session | None:
        """The live session for a cookie value, or None (expired sessions
        are deleted).  ``touch`` moves its idle deadline."""
        if not isinstance(session_id, str) or not 20 <= len(session_id) <= 100:
            return None
        key = _sid_hash(session_id)
        r = self.store.session(key)
        if r is None:
            return None
        now = self.now()
        if r["last_seen"] < now - self.idle_s or r["created_at"] < now - self.max_s:
            with self.store.unit() as unit:
                unit.delete_session(key)
            return None
        if touch and now - r["last_seen"] >= 30:
            with self.store.unit() as unit:
                unit.touch_session(key, now)
        return Session(session_id, r["name"], r["role"], r["created_at"])

    def logout(self, session_id):
        if isinstance(session_id, str):
            with self.store.unit() as unit:
                unit.delete_session(_sid_hash(session_id))

    def end_sessions(self, name):
        with self.store.unit() as unit:
            return unit.delete_sessions_of(name)

    def session_count(self, name=None):
        return self.store.session_count(name)


def _sid_hash(session_id):
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()
