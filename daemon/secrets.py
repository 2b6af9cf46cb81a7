"""Where secrets come from: files or the environment, never the TOML.

The site key (for the keyed hash of card numbers) is looked up in order:
``BIBBOX_SITE_KEY`` (hex), ``BIBBOX_SITE_KEY_FILE``, systemd's
``$CREDENTIALS_DIRECTORY/site-key``, then ``secrets.site_key_file`` from the
config.  A key file must not be readable by group or others (mode 0600).
The staff page's secret is made on first use in the state directory.
"""

from __future__ import annotations

import os
import secrets as _secrets
import stat

from bibbox.locker.domain.errors import SecretError
from bibbox.locker.domain.identity import MIN_SITE_KEY_BYTES


def _decode(raw: bytes, where: str) -> bytes:
    text = raw.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        key = text
    if len(key) < MIN_SITE_KEY_BYTES:
        raise SecretError(f"site key from {where} is shorter than "
                          f"{MIN_SITE_KEY_BYTES} bytes")
    return key


def read_secret_file(path: str, what: str) -> bytes:
    """Read a secret file, refusing one that others may read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SecretError(f"{what} file {path} does not exist") from None
    except PermissionError:
        raise SecretError(f"{what} file {path} is not readable by this user") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{what} file {path} is readable by others "
                          f"(mode {stat.S_IMODE(info.st_mode):o}); run: chmod 600 {path}")
    with open(path, "rb") as fh:
        return fh.read()


def site_key_source(cfg, env=os.environ):
    """Describe where the site key would come from (for check-config)."""
    if env.get("BIBBOX_SITE_KEY"):
        return ("env", "BIBBOX_SITE_KEY")
    for path in (env.get("BIBBOX_SITE_KEY_FILE"),
                 os.path.join(env["CREDENTIALS_DIRECTORY"], "site-key")
                 if env.get("CREDENTIALS_DIRECTORY") else None,
                 cfg.secrets.site_key_file or None):
        if path:
            return ("file", path)
    return (None, None)


def load_site_key(cfg, env=os.environ) -> bytes:
    kind, where = site_key_source(cfg, env)
    if kind == "env":
        return _decode(env["BIBBOX_SITE_KEY"].encode(), "BIBBOX_SITE_KEY")
    if kind == "file":
        return _decode(read_secret_file(where, "site key"), where)
    raise SecretError("no site key: set secrets.site_key_file in the config, or "
                      "BIBBOX_SITE_KEY_FILE, or create one with 'bibbox keygen FILE'")


def create_site_key(path: str) -> None:
    """Write a new random site key (mode 0600); never overwrite one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SecretError(f"{path} exists already; not overwriting a site key") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(_secrets.token_hex(32) + "\n")


STAFF_SECRET_FILE = "staff-secret"


def load_or_create_staff_secret(state_dir) -> bytes:
    """The staff page's secret (Flask's ``secret_key``, the key of its CSRF
    tokens and of the hashed names of failed logins): 32 random bytes in
    ``<state_dir>/staff-secret``, created 0600 on first use, refused when
    group or others may read it."""
    path = os.path.join(state_dir, STAFF_SECRET_FILE)
    _create_once(path)
    raw = read_secret_file(path, "staff secret").strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        key = raw
    if len(key) < 16:
        raise SecretError(f"staff secret {path} is shorter than 16 bytes")
    return key


def read_mqtt_credentials(path: str) -> tuple[str, str]:
    """``(username, password)`` from ``mqtt.credentials_file``, a file holding
    one line ``username:password``.  A file others may read is accepted with
    a warning (it holds a broker password, not the site key)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SecretError(f"mqtt.credentials_file {path}: {exc.strerror}") from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password or "\n" in text:
        raise SecretError(f"mqtt.credentials_file {path}: expected one line "
                          "'username:password'")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        import logging
        logging.getLogger("bibbox.mqtt").warning(
            "mqtt.credentials_file %s is readable by others; chmod 600 it", path)
    return user, password


LOAN_KEY_FILE = "loan-key"


def loan_key_path(cfg, env=os.environ) -> str:
    """Where the loan key is (ADR 9): ``BIBBOX_LOAN_KEY_FILE``, systemd's
    ``$CREDENTIALS_DIRECTORY/loan-key`` when present, ``library.loan_key_file``,
    else ``<state_dir>/loan-key``.  Never in the database."""
    credential = (os.path.join(env["CREDENTIALS_DIRECTORY"], LOAN_KEY_FILE)
                  if env.get("CREDENTIALS_DIRECTORY") else None)
    for path in (env.get("BIBBOX_LOAN_KEY_FILE"),
                 credential if credential and os.path.exists(credential) else None,
                 cfg.library.loan_key_file or None):
        if path:
            return path
    return os.path.join(cfg.locker.state_dir, LOAN_KEY_FILE)


def load_or_create_loan_key(cfg, env=os.environ) -> bytes:
    """The private key that opens queued loans' sealed identities: 32 random
    bytes (hex), created 0600 on first use like the site key, refused when
    group or others may read it."""
    path = loan_key_path(cfg, env)
    _create_once(path)
    return read_secret_file(path, "loan key")


def _create_once(path: str) -> None:
    """Write 32 random bytes as hex to ``path`` (mode 0600) unless it exists;
    never overwrite a key."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(_secrets.token_hex(32) + "\n")
