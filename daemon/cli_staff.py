"""``bibbox staff``: manage the staff page's accounts.

    bibbox staff add NAME [--admin] [--password-stdin] (--config FILE | --state-dir DIR)
    bibbox staff list                                  (--config FILE | --state-dir DIR)
    bibbox staff remove NAME                           (--config FILE | --state-dir DIR)
    bibbox staff passwd NAME [--password-stdin]        (--config FILE | --state-dir DIR)
    bibbox staff unlock NAME                           (--config FILE | --state-dir DIR)

Accounts live in ``<state_dir>/staff.db``, opened as the daemon opens them
(:func:`bibbox.daemon.bootstrap.open_staff_accounts`; the rules are
:mod:`bibbox.web.staff.accounts`); a running daemon sees changes at once.
Passwords are asked twice with getpass, or read as one line from standard
input with ``--password-stdin`` (for scripts).  Each change is also written
to the locker's audit log with the actor ``cli:<os user>``.  Exit codes: 0
ok, 1 refused, 2 bad usage.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import sys


def add_staff_commands(subparsers):
    """Add the ``staff`` command to ``bibbox``'s subparsers."""
    p = subparsers.add_parser("staff", help="manage staff accounts for the staff page")
    sub = p.add_subparsers(dest="staff_command", required=True)

    def where(s):
        group = s.add_mutually_exclusive_group(required=True)
        group.add_argument("--config", help="the locker's configuration (its state_dir)")
        group.add_argument("--state-dir", help="a state directory (e.g. the demo's)")

    s = sub.add_parser("add", help="add an account (asks for the password twice)")
    s.add_argument("name")
    s.add_argument("--admin", action="store_true", help="may also manage staff accounts")
    s.add_argument("--password-stdin", action="store_true",
                   help="read the password as one line from standard input")
    where(s)
    s.set_defaults(func=cmd_add)
    s = sub.add_parser("list", help="list the accounts")
    where(s)
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("remove", help="remove an account and end its sessions")
    s.add_argument("name")
    where(s)
    s.set_defaults(func=cmd_remove)
    s = sub.add_parser("passwd", help="set a new password and end the account's sessions")
    s.add_argument("name")
    s.add_argument("--password-stdin", action="store_true")
    where(s)
    s.set_defaults(func=cmd_passwd)
    s = sub.add_parser("unlock", help="lift a login lockout of an account")
    s.add_argument("name")
    where(s)
    s.set_defaults(func=cmd_unlock)
    return p


def _state_dir(args):
    if args.state_dir:
        return os.path.abspath(args.state_dir)
    from bibbox.daemon.config_file import load as load_config
    from bibbox.locker.domain.errors import ConfigError
    try:
        return load_config(args.config).locker.state_dir
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _accounts(args):
    from bibbox.daemon.bootstrap import open_staff_accounts
    state_dir = _state_dir(args)
    return open_staff_accounts(state_dir), state_dir


def _audit(state_dir, action, detail):
    """Record an account change in the locker's audit log (best effort)."""
    from bibbox.daemon.bootstrap import DATABASE_FILE
    from bibbox.locker.domain.clock import SystemClock
    from bibbox.locker.store import Store
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    try:
        store = Store(os.path.join(state_dir, DATABASE_FILE), clock=SystemClock())
        try:
            with store.unit() as unit:
                unit.audit(f"cli:{user}"[:64], action, detail=detail)
        finally:
            store.close()
    except Exception as exc:   # the account change itself has been made
        print(f"bibbox staff: note: could not write the audit log: {exc}", file=sys.stderr)


def _read_password(args, confirm=True):
    from bibbox.web.staff.accounts import AccountError, check_password_text
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        password = getpass.getpass("New password: ")
        if confirm and getpass.getpass("Same password again: ") != password:
            raise AccountError("password_mismatch", "the two passwords differ")
    check_password_text(password)
    return password


def _run(fn):
    from bibbox.web.staff.accounts import AccountError
    try:
        return fn()
    except AccountError as exc:
        print(f"bibbox staff: {exc}", file=sys.stderr)
        return 1


def cmd_add(args):
    def run():
        from bibbox.web.staff.accounts import check_name
        name = check_name(args.name)
        accounts, state_dir = _accounts(args)
        if accounts.get(name) is not None:
            print(f"bibbox staff: staff account {name!r} exists already", file=sys.stderr)
            return 1
        role = "admin" if args.admin else "staff"
        accounts.add(name, _read_password(args), role)
        _audit(state_dir, "staff_added", f"{name} ({role})")
        print(f"added {role} account {name!r}")
        return 0
    return _run(run)


def cmd_list(args):
    accounts, _ = _accounts(args)
    rows = accounts.list()
    if not rows:
        print("no staff accounts (add one with: bibbox staff add NAME --admin ...)")
        return 0

    def when(ts):
        return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"
    print(f"{'name':<20} {'role':<6} {'last login':<16} {'sessions':>8}  locked until")
    for a in rows:
        print(f"{a.name:<20} {a.role:<6} {when(a.last_login):<16} "
              f"{accounts.session_count(a.name):>8}  {when(a.locked_until)}")
    return 0


def cmd_remove(args):
    def run():
        accounts, state_dir = _accounts(args)
        accounts.remove(args.name)
        _audit(state_dir, "staff_removed", args.name)
        if accounts.count("admin") == 0:
            print("note: no admin account is left", file=sys.stderr)
        print(f"removed {args.name!r}; its sessions have ended")
        return 0
    return _run(run)


def cmd_passwd(args):
    def run():
        accounts, state_dir = _accounts(args)
        accounts.require(args.name)
        accounts.set_password(args.name, _read_password(args))
        _audit(state_dir, "staff_password", args.name)
        print(f"new password set for {args.name!r}; its sessions have ended")
        return 0
    return _run(run)


def cmd_unlock(args):
    def run():
        accounts, state_dir = _accounts(args)
        accounts.require(args.name)
        accounts.unlock(name=args.name)
        _audit(state_dir, "staff_unlocked", args.name)
        print(f"unlocked {args.name!r}")
        return 0
    return _run(run)
