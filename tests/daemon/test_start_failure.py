"""A start that fails ends in a clean stop: every relay off, every thread
the start had begun stopped, one line naming the cause, a non-zero exit."""

from __future__ import annotations

import socket
import threading

import pytest

from bibbox.daemon import bootstrap
from bibbox.daemon.cli import main


def test_demo_on_a_busy_port_stops_cleanly(tmp_path, monkeypatch, capsys):
    built = []
    real_start = bootstrap.Daemon.start

    def start(self):
        built.append(self)
        return real_start(self)

    monkeypatch.setattr(bootstrap.Daemon, "start", start)
    threads_before = {t.ident for t in threading.enumerate()}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["demo", "--port", str(port), "--state-dir", str(tmp_path / "state")])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err                      # one line, no traceback
    assert "could not start" in err[0] and str(port) in err[0], err[0]
    (daemon,) = built
    assert daemon.relays.closed                   # the stop that drives every relay off ran
    assert not any(daemon.relays.states().values())
    running = {t.name for t in threading.enumerate() if t.is_alive()}
    assert not running & {"controller", "bibbox-reader"}, running
    left = [t for t in threading.enumerate()
            if t.ident not in threads_before and t.is_alive() and not t.daemon]
    assert not left, left


def test_a_daemon_that_cannot_be_built_leaves_every_relay_off_and_the_lock_free(
        tmp_path, monkeypatch):
    from bibbox.daemon.cli import DEMO_CONFIG
    from bibbox.daemon.config_file import load
    from bibbox.locker.domain import config as config_mod
    from bibbox.locker.domain.errors import SecretError

    cfg = config_mod.replace(load(DEMO_CONFIG), locker={"state_dir": str(tmp_path)},
                             mqtt={"enabled": True, "credentials_file": str(tmp_path / "none")})
    built = []
    real = bootstrap.build_lock_hardware

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(bootstrap, "build_lock_hardware", spy)
    with pytest.raises(SecretError, match="credentials_file"):
        bootstrap.Daemon(cfg, site_key=b"k" * 32)
    (hardware,) = built
    assert hardware.relays.closed and not any(hardware.relays.states().values())
    ok = config_mod.replace(cfg, mqtt={"enabled": False})
    daemon = bootstrap.Daemon(ok, site_key=b"k" * 32)   # the lock file was released
    daemon.stop()
