"""The library system from the daemon's side: its client built from the
configuration and the secrets, and ``bibbox library check``.

Credentials (``user:password``: the SIP2 93 login, or FBS's login) come from
``BIBBOX_LIBRARY_CREDENTIALS_FILE``, the systemd credential ``library``
(``LoadCredential=library:...``) or ``library.credentials_file``; the
terminal password (AC) from ``library.terminal_password_file``.  Never from
the TOML itself.
"""

from __future__ import annotations

import os
import sys
import time

from bibbox.daemon.secrets import read_secret_file
from bibbox.locker.domain.errors import SecretError


def _credentials(cfg, env):
    lib = cfg.library
    for path in (env.get("BIBBOX_LIBRARY_CREDENTIALS_FILE"),
                 os.path.join(env["CREDENTIALS_DIRECTORY"], "library")
                 if env.get("CREDENTIALS_DIRECTORY") else None,
                 lib.credentials_file or None):
        if path and (path != os.path.join(env.get("CREDENTIALS_DIRECTORY", ""), "library")
                     or os.path.exists(path)):
            text = read_secret_file(path, "library credentials").decode("utf-8").strip()
            user, sep, password = text.partition(":")
            if not sep or not user:
                raise SecretError(f"library credentials file {path} must hold "
                                  "'user:password'")
            return user, password
    return "", ""


def library_client(cfg, env=os.environ):
    """The :class:`~bibbox.library.client.LibraryClient` for ``cfg``
    (``verifier.kind`` ``sip2`` or ``fbs``)."""
    from bibbox.library.client import LibraryClient
    lib = cfg.library
    user, password = _credentials(cfg, env)
    terminal = ""
    if lib.terminal_password_file:
        terminal = read_secret_file(lib.terminal_password_file,
                                    "terminal password").decode("utf-8").strip()
    common = dict(tls=lib.tls, ca_file=lib.ca_file or None,
                  trusted_network=lib.trusted_network, timeout_s=lib.timeout_s,
                  retries=lib.retries)
    if cfg.verifier.kind == "fbs":
        from bibbox.library.fbs import FbsTransport
        transport = FbsTransport(lib.host, lib.institution, port=lib.port, login=user,
                                 password=password, **common)
    else:
        from bibbox.library.transport import SipTransport
        transport = SipTransport(lib.host, lib.port, user=user, password=password,
                                 location=lib.location, checksums=lib.checksums, **common)
    return LibraryClient(transport, institution=lib.institution, terminal_password=terminal,
                         location=lib.location, fbs=cfg.verifier.kind == "fbs")


def library_verifier(cfg, env=os.environ, reachability=None):
    from bibbox.library.verifier import LibraryVerifier
    return LibraryVerifier(library_client(cfg, env), fee_limit_default=cfg.library.fee_limit,
                           reachability=reachability)


def library_circulation(cfg, *, store, post, env=os.environ):
    """``(verifier, sealer, loan worker)`` for a library system: the verifier
    and the worker each on a connection of their own, telling one
    Reachability; the worker holds the loan key (from the secrets, never the
    database), the sealer only its public half.  The worker is not started."""
    from bibbox.daemon.secrets import load_or_create_loan_key
    from bibbox.library.loans import LoanWorker, Reachability
    from bibbox.library.sealing import CardUnsealer, private_key
    reachability = Reachability(post)
    verifier = library_verifier(cfg, env, reachability)
    unsealer = CardUnsealer(private_key(load_or_create_loan_key(cfg, env)))
    worker = LoanWorker(store.loan_queue(), library_client(cfg, env), unsealer, post,
                        max_wait_s=cfg.library.loan_max_wait_h * 3600,
                        reachability=reachability)
    return verifier, unsealer.sealer, worker


def add_library_commands(sub):
    s = sub.add_parser("library", help="the library system (SIP2 / FBS)")
    lsub = s.add_subparsers(dest="library_command", required=True)
    s = lsub.add_parser("check", help="log in, send SC status (99), print the supported "
                        "messages and the round-trip time; touches no patron")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_library_check)


def cmd_library_check(args, env=os.environ):
    from bibbox.daemon.config_file import load_or_exit
    from bibbox.library.sip2 import LibraryError
    from bibbox.library.verifier import screen_messages
    cfg = load_or_exit(args.config)
    if cfg.verifier.kind not in ("sip2", "fbs"):
        print(f"bibbox library check: {args.config}: verifier.kind is "
              f"{cfg.verifier.kind!r}, not 'sip2' or 'fbs'", file=sys.stderr)
        return 2
    try:
        client = library_client(cfg, env)
        started = time.perf_counter()
        status = client.status()
        elapsed_ms = (time.perf_counter() - started) * 1000
    except (LibraryError, SecretError) as exc:
        print(f"bibbox library check: {cfg.library.host}: {exc}", file=sys.stderr)
        return 1
    client.close()
    print(f"library system: {cfg.library.host}:{cfg.library.port} ({cfg.verifier.kind}"
          f"{', TLS' if cfg.library.tls else ', plain on a trusted network'})")
    print(f"online: {'yes' if status.online else 'NO'}   protocol: {status.protocol_version}"
          f"   institution: {status.institution}")
    print(f"round trip (login + status): {elapsed_ms:.1f} ms")
    print("supported messages: " + (", ".join(status.supported_messages()) or "none"))
    for line in screen_messages(status):
        print(f"message: {line}")
    return 0 if status.online else 1
