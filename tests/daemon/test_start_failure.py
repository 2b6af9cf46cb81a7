"""A start that fails ends in a clean stop: every relay off, every thread
the start had begun stopped, one line naming the cause, a non-zero exit."""

from __future__ import annotations

import socket
import threading

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
    assert daemon.relays._closed                   # the stop that drives every relay off ran
    assert not any(daemon.relays.states().values())
    running = {t.name for t in threading.enumerate() if t.is_alive()}
    assert not running & {"controller", "bibbox-reader"}, running
    left = [t for t in threading.enumerate()
            if t.ident not in threads_before and t.is_alive() and not t.daemon]
    assert not left, left
