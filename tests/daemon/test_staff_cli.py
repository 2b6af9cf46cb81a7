"""``bibbox staff add|list|remove|passwd|unlock``."""

import argparse
import io
import os
import stat

import pytest

from bibbox.daemon.cli_staff import add_staff_commands
from bibbox.daemon.bootstrap import open_staff_accounts
from bibbox.web.staff.accounts import verify_password


def run(argv, stdin="", monkeypatch=None):
    """Run ``bibbox staff ...`` through the real ``bibbox`` parser when the
    hook is in, else through a parser of our own."""
    from bibbox.daemon import cli
    parser = cli.build_parser()
    try:
        parser.parse_args(["staff", "list", "--state-dir", "."])
    except SystemExit:
        parser = argparse.ArgumentParser(prog="bibbox")
        add_staff_commands(parser.add_subparsers(dest="command", required=True))
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    args = parser.parse_args(argv)
    return args.func(args)


def accounts(state_dir):
    return open_staff_accounts(str(state_dir))


def test_add_list_passwd_remove(tmp_path, monkeypatch, capsys):
    d = str(tmp_path)
    assert run(["staff", "add", "anna", "--admin", "--password-stdin", "--state-dir", d],
               "correct horse battery\n", monkeypatch) == 0
    assert run(["staff", "add", "bob", "--password-stdin", "--state-dir", d],
               "another fine password\n", monkeypatch) == 0
    a = accounts(d)
    assert a.get("anna").role == "admin" and a.get("bob").role == "staff"
    assert stat.S_IMODE(os.stat(tmp_path / "staff.db").st_mode) == 0o600
    capsys.readouterr()
    assert run(["staff", "list", "--state-dir", d]) == 0
    out = capsys.readouterr().out
    assert "anna" in out and "admin" in out and "bob" in out
    assert "correct horse" not in out
    # passwd ends the account's sessions
    session = a.login("bob", "another fine password", "10.0.0.1").session
    assert a.session(session.id) is not None
    assert run(["staff", "passwd", "bob", "--password-stdin", "--state-dir", d],
               "a brand new password\n", monkeypatch) == 0
    assert a.session(session.id) is None
    assert a.login("bob", "a brand new password").session is not None
    assert run(["staff", "remove", "bob", "--state-dir", d]) == 0
    assert a.get("bob") is None
    # every change is in the locker's audit log, with who did it
    from bibbox.locker.domain.clock import SystemClock
    from bibbox.locker.store import Store
    store = Store(tmp_path / "bibbox.db", clock=SystemClock())
    actions = [(r["action"], r["detail"]) for r in store.audit_rows()]
    store.close()
    assert ("staff_added", "anna (admin)") in actions
    assert ("staff_password", "bob") in actions and ("staff_removed", "bob") in actions


def test_refusals(tmp_path, monkeypatch, capsys):
    d = str(tmp_path)
    assert run(["staff", "add", "anna", "--password-stdin", "--state-dir", d],
               "short\n", monkeypatch) == 1
    assert "10" in capsys.readouterr().err
    assert run(["staff", "add", "Bad Name!", "--password-stdin", "--state-dir", d],
               "long enough password\n", monkeypatch) == 1
    assert run(["staff", "add", "system", "--password-stdin", "--state-dir", d],
               "long enough password\n", monkeypatch) == 1
    assert run(["staff", "add", "anna", "--password-stdin", "--state-dir", d],
               "long enough password\n", monkeypatch) == 0
    assert run(["staff", "add", "anna", "--password-stdin", "--state-dir", d],
               "long enough password\n", monkeypatch) == 1
    assert run(["staff", "remove", "nobody", "--state-dir", d]) == 1
    assert run(["staff", "passwd", "nobody", "--password-stdin", "--state-dir", d],
               "long enough password\n", monkeypatch) == 1
    with pytest.raises(SystemExit):
        run(["staff", "list"])                     # --config or --state-dir is required


def test_getpass_asks_twice(tmp_path, monkeypatch, capsys):
    answers = iter(["first password!!", "second password!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert run(["staff", "add", "carl", "--state-dir", str(tmp_path)]) == 1
    assert "differ" in capsys.readouterr().err
    answers = iter(["same password!!", "same password!!"])
    assert run(["staff", "add", "carl", "--state-dir", str(tmp_path)]) == 0
    assert verify_password("same password!!", accounts(tmp_path).store.password_hash("carl"))


def test_unlock_and_config_file(tmp_path, monkeypatch):
    state = tmp_path / "state"
    conf = tmp_path / "locker.toml"
    conf.write_text(f'[locker]\nid = "t"\nstate_dir = "{state}"\n\n[[compartments]]\n'
                    'number = 1\nsize = "S"\nrelay_pin = 5\ndoor_pin = 17\n')
    assert run(["staff", "add", "anna", "--password-stdin", "--config", str(conf)],
               "correct horse battery\n", monkeypatch) == 0
    a = accounts(state)
    for _ in range(5):
        a.login("anna", "wrong wrong wrong", f"10.0.0.{_}")
    assert a.login("anna", "correct horse battery", "10.1.1.1").code == "locked"
    assert run(["staff", "unlock", "anna", "--config", str(conf)]) == 0
    assert a.login("anna", "correct horse battery", "10.1.1.1").session is not None


# staff.db as it was written before its schema had a version (user_version 0)
UNVERSIONED_SCHEMA = """
CREATE TABLE IF NOT EXISTS staff (name TEXT PRIMARY KEY, role TEXT NOT NULL,
    pw_hash TEXT NOT NULL, created_at REAL NOT NULL, pw_changed_at REAL NOT NULL,
    last_login REAL);
CREATE TABLE IF NOT EXISTS sessions (id_hash TEXT PRIMARY KEY, name TEXT NOT NULL,
    created_at REAL NOT NULL, last_seen REAL NOT NULL, address TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS sessions_name ON sessions (name);
CREATE TABLE IF NOT EXISTS login_failures (ts REAL NOT NULL, who TEXT NOT NULL,
    address TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_who ON login_failures (who, ts);
CREATE INDEX IF NOT EXISTS login_failures_addr ON login_failures (address, ts);
CREATE TABLE IF NOT EXISTS lockouts (kind TEXT NOT NULL, key TEXT NOT NULL,
    until REAL NOT NULL, PRIMARY KEY (kind, key));
"""


def test_a_staff_db_from_before_schema_versions_opens_and_migrates(tmp_path, capsys):
    import sqlite3

    from bibbox.locker.store.accounts import SCHEMA_VERSION
    from bibbox.web.staff.accounts import hash_password
    path = tmp_path / "staff.db"
    conn = sqlite3.connect(path)
    conn.executescript(UNVERSIONED_SCHEMA)
    conn.execute("INSERT INTO staff VALUES ('anna','admin',?,1.0,1.0,NULL)",
                 (hash_password("correct horse battery"),))
    conn.commit()
    conn.close()
    os.chmod(path, 0o600)
    assert run(["staff", "list", "--state-dir", str(tmp_path)]) == 0
    assert "anna" in capsys.readouterr().out
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    conn.close()
    a = accounts(tmp_path)
    assert a.get("anna").role == "admin"
    assert a.login("anna", "correct horse battery", "10.0.0.1").session is not None
