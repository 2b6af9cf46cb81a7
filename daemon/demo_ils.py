"""``bibbox demo --ils sip2|fbs``: the simulated locker against the embedded
test library system (:mod:`bibbox.library.testserver`), one command, no
network.

:class:`DemoLibrarySystem` starts the test library system on a free
loopback port -- plain SIP2 marked as a trusted local network for
``sip2``; FBS's HTTPS dialect for ``fbs``, with a throwaway certificate made
at start by ``openssl`` (refused with a clear message when there is none)
-- and gives the locker a ``[library]`` section for it, with the login in a
0600 credentials file in the state directory (as on a real site: never in
the TOML).  :class:`LibraryDemoDaemon` stops it with the locker.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from bibbox.daemon.bootstrap import Daemon
from bibbox.locker.domain import config as config_mod

ILS_KINDS = ("sip2", "fbs")
CREDENTIALS_FILE = "test-library-credentials"
LOOPBACK = "127.0.0.1"


class DemoLibrarySystem:
    """The test library system of the demo, started; :meth:`stop` ends it."""

    def __init__(self, kind):
        from bibbox.library import testserver
        if kind not in ILS_KINDS:
            raise ValueError(f"--ils must be one of {', '.join(ILS_KINDS)}")
        self.kind = kind
        self.library = testserver.Library(fbs=kind == "fbs", names_hold_patron=True)
        self.ca_file, self._tls_dir = "", None
        if kind == "fbs":
            self._tls_dir = tempfile.mkdtemp(prefix="bibbox-demo-tls-")
            try:
                ca, cert, key = testserver.make_ca(self._tls_dir)
                self.server = testserver.FbsServer(
                    self.library, tls_context=testserver.server_context(cert, key)).start()
            except BaseException:
                shutil.rmtree(self._tls_dir, ignore_errors=True)
                raise
            self.ca_file = str(ca)
        else:
            self.server = testserver.SipServer(self.library, login_required=True).start()
        self.port = self.server.port

    @property
    def address(self):
        institution = self.library.data["institution"]
        if self.kind == "fbs":
            return (f"https://{LOOPBACK}:{self.port}/rest/sip2/{institution} "
                    "(FBS dialect, throwaway certificate)")
        return f"sip2://{LOOPBACK}:{self.port} (plain SIP2 on loopback, a trusted network)"

    def configure(self, cfg):
        """``cfg`` with ``verifier.kind`` and ``[library]`` set for this server;
        the login written to ``<state_dir>/test-library-credentials`` (0600)."""
        data = self.library.data
        if self.kind == "fbs":
            login = data["fbs"]["login"], data["fbs"]["password"]
            institution = data["institution"].removeprefix("DK-")      # the agency
        else:
            login = data["login"]["user"], data["login"]["password"]
            institution = data["institution"]
        path = os.path.join(cfg.locker.state_dir, CREDENTIALS_FILE)
        os.makedirs(cfg.locker.state_dir, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{login[0]}:{login[1]}\n")
        return config_mod.replace(
            cfg, verifier={"kind": self.kind},
            library={"host": LOOPBACK, "port": self.port, "tls": self.kind == "fbs",
                     "ca_file": self.ca_file, "trusted_network": self.kind == "sip2",
                     "institution": institution, "location": data["login"]["location"],
                     "credentials_file": path, "timeout_s": 3.0, "retries": 1})

    def stop(self):
        self.server.stop()
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)


class LibraryDemoDaemon(Daemon):
    """A demo :class:`Daemon` that owns its test library system and stops
    it after itself."""

    def __init__(self, cfg, *, test_library, **options):
        self.test_library = test_library
        super().__init__(cfg, **options)

    def stop(self):
        try:
            super().stop()
        finally:
            self.test_library.stop()


def library_demo_daemon(cfg, kind, **options):
    """The demo daemon on ``cfg`` against a test library system of ``kind``
    (started here, stopped with the daemon or if building it fails)."""
    system = DemoLibrarySystem(kind)
    try:
        daemon = LibraryDemoDaemon(system.configure(cfg), test_library=system, **options)
    except BaseException:
        system.stop()
        raise
    if daemon.simulator is not None:
        daemon.simulator.patrons = []      # the local demo list is not this library's
        daemon.simulator.test_library = system.library.listing()
    return daemon
