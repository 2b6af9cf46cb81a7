"""bibbox.daemon.systemd: sd_notify without a dependency, the watchdog loop that
pings only while the controller, the store and the reader thread are
healthy, and the log formatter (journald priorities, redacted tracebacks)."""

import io
import logging
import os
import socket
import threading
import time

import pytest

from bibbox.daemon import systemd
from bibbox.locker.domain.clock import FakeClock
from tests.domain_helpers import Rig


class Listener:
    def __init__(self, tmp_path, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"bibbox-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.env = {"NOTIFY_SOCKET": "@" + name}
        else:
            path = str(tmp_path / "notify")
            self.sock.bind(path)
            self.env = {"NOTIFY_SOCKET": path}
        self.sock.settimeout(0.05)
        self.messages = []

    def drain(self):
        """The messages that arrived since the last drain (all are kept in
        ``messages``)."""
        new = []
        while True:
            try:
                new.append(self.sock.recv(4096).decode())
            except socket.timeout:
                self.messages += new
                return new

    def close(self):
        self.sock.close()


@pytest.fixture(params=[False, True], ids=["path", "abstract"])
def listener(request, tmp_path):
    lst = Listener(tmp_path, request.param)
    yield lst
    lst.close()


def test_notify_speaks_to_path_and_abstract_sockets(listener):
    assert systemd.notify("READY=1", "STATUS=up", env=listener.env)
    assert listener.drain() == ["READY=1\nSTATUS=up"]


def test_notify_without_systemd_does_nothing(caplog):
    assert systemd.notify("READY=1", env={}) is False
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1"}) is False
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": "/nonexistent/socket"}) is False
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": "/nonexistent/socket"}) is False
    assert sum("sd_notify failed" in r.getMessage() for r in caplog.records) <= 1


def test_watchdog_interval_is_only_for_this_process():
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000",
                                       "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval({}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "x"}) is None


class FakeReader:
    def __init__(self):
        self.thread = threading.Thread(target=threading.Event().wait, args=(60,), daemon=True)
        self.online = True

    @property
    def alive(self):
        return self.thread.is_alive()


class FakeDaemon:
    """What the watchdog looks at: a real controller thread around a real
    locker and store, and a reader."""

    def __init__(self, tmp_path):
        self.rig = Rig(tmp_path, clock=FakeClock())
        self.rig.start()
        self.controller = self.rig.controller
        self.controller.start()
        self.reader = FakeReader()
        self.reader.thread.start()
        self.link = None

    def stop(self):
        self.controller.stop()


@pytest.fixture
def daemon(tmp_path):
    d = FakeDaemon(tmp_path)
    yield d
    d.stop()


def run_loop(daemon, env, stop):
    thread = threading.Thread(target=systemd.watchdog_loop, args=(daemon, stop, env))
    thread.start()
    return thread


def watchdog_pings(listener):
    return sum(m.count("WATCHDOG=1") for m in listener.drain())


def test_watchdog_pings_only_while_healthy(daemon, listener):
    env = dict(listener.env, WATCHDOG_USEC="300000")          # 0.3 s: checks every 0.1 s
    stop = threading.Event()
    thread = run_loop(daemon, env, stop)
    try:
        pings = []
        deadline = time.monotonic() + 5
        while sum(pings) < 3 and time.monotonic() < deadline:
            pings.append(watchdog_pings(listener))
        assert sum(pings) >= 3
        assert any("STATUS=" in m and "compartments" in m for m in listener.messages)
        # The controller thread hangs (a handler that never returns) ...
        release = threading.Event()
        stuck = threading.Thread(target=lambda: daemon.controller.call(
            lambda locker: release.wait(10), timeout=10))
        stuck.start()
        time.sleep(0.2)
        listener.drain()
        time.sleep(0.6)
        assert watchdog_pings(listener) == 0                  # ... so systemd will restart us
        assert any("UNHEALTHY" in m and "controller" in m for m in listener.messages)
        release.set()
        stuck.join()
        deadline = time.monotonic() + 5
        while not watchdog_pings(listener) and time.monotonic() < deadline:
            pass
        assert time.monotonic() < deadline, "no ping once the controller answered again"
    finally:
        stop.set()
        started = time.monotonic()
        thread.join(2)
    assert time.monotonic() - started < 0.5                    # returns at once on stop
    assert any("STOPPING=1" in m for m in listener.drain())


def test_a_dead_reader_thread_stops_the_pings(daemon, listener):
    env = dict(listener.env, WATCHDOG_USEC="300000")
    assert systemd.check_health(daemon) == []
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    daemon.reader.thread = dead
    assert systemd.check_health(daemon) == ["card reader thread has stopped"]
    stop = threading.Event()
    thread = run_loop(daemon, env, stop)
    time.sleep(0.4)
    stop.set()
    thread.join(2)
    assert watchdog_pings(listener) == 0


def test_an_offline_reader_is_no_reason_to_restart(daemon):
    daemon.reader.online = False          # unplugged: its thread keeps reopening it
    assert systemd.check_health(daemon) == []
    assert "reader OFFLINE" in systemd.status_line(daemon)


def test_a_broker_that_is_down_is_reported_but_no_reason_to_restart(daemon):
    from bibbox.daemon.bootstrap import build_central_link
    from bibbox.daemon.cli_ops import problems
    from tests.brokers import free_port
    link = build_central_link(daemon.rig.cfg, controller=daemon.controller,
                              store=daemon.rig.store, clock=daemon.rig.clock, version="1",
                              boot_id="b", url=f"mqtt://127.0.0.1:{free_port()}")
    link.reconnect_min_s, link.reconnect_max_s = 0.1, 0.2
    daemon.link = link
    link.start()
    try:
        deadline = time.monotonic() + 5
        while link.health()["last_error"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
        health = link.health()
        assert health["loop_alive"] and not health["connected"]
        assert health["unhealthy"] == [] and health["problems"][0].startswith("not connected")
        assert systemd.check_health(daemon) == []                  # paho keeps retrying
        assert "central disconnected" in systemd.status_line(daemon)
        assert problems({"health": {"link": health}}) == ["central link disconnected"]
    finally:
        link.stop()


def test_an_unhealthy_link_fails_the_watchdog_and_shows_in_bibbox_status(daemon):
    from bibbox.daemon.cli_ops import problems

    class DeadLink:
        def health(self):
            return {"connected": False, "unhealthy": ["the MQTT network loop has stopped"],
                    "problems": ["the MQTT network loop has stopped"]}

    daemon.link = DeadLink()
    assert systemd.check_health(daemon) == ["the MQTT network loop has stopped"]
    assert problems({"health": {"link": DeadLink().health()}}) == [
        "central link disconnected", "the MQTT network loop has stopped"]


def test_a_store_that_does_not_answer_is_unhealthy(daemon):
    daemon.reader = None
    daemon.rig.store.conn.close()
    problems = systemd.check_health(daemon)
    assert problems and problems[0].startswith("store does not answer")


def test_without_a_watchdog_the_loop_only_waits_for_stop(daemon, listener):
    stop = threading.Event()
    thread = run_loop(daemon, dict(listener.env), stop)
    time.sleep(0.2)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert watchdog_pings(listener) == 0


# -- logging --------------------------------------------------------------------------------
def format_with(formatter, exc_text):
    logger = logging.getLogger("bibbox.test.format")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(exc_text)
        except ValueError:
            logger.exception("reading a card failed")
        logger.warning("plain line")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_tracebacks_are_redacted_too():
    out = format_with(systemd.BibboxFormatter(), "bad card 0101901234 and 010190-1234")
    assert "0101901234" not in out and "010190-1234" not in out
    assert "<redacted>" in out and "Traceback" in out


def test_journald_gets_priorities_and_one_line_per_record():
    out = format_with(systemd.BibboxFormatter(journal=True), "boom 0101901234")
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("<3>ERROR bibbox.test.format: reading a card failed | Traceback")
    assert "0101901234" not in lines[0]
    assert lines[1] == "<4>WARNING bibbox.test.format: plain line"


def test_the_journal_is_recognised_by_its_stream(tmp_path):
    path = tmp_path / "out"
    with open(path, "w") as fh:
        info = os.fstat(fh.fileno())
        assert systemd.stdout_is_journal(fh, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
        assert not systemd.stdout_is_journal(fh, {"JOURNAL_STREAM": "1:2"})
        assert not systemd.stdout_is_journal(fh, {})


def test_the_cli_logs_through_the_redacting_formatter(capsys):
    from bibbox.daemon.cli import setup_logging
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        try:
            raise RuntimeError("card 0101901234 failed")
        except RuntimeError:
            logging.getLogger("bibbox.test").exception("oops")
        out = capsys.readouterr().out
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    assert "RuntimeError" in out and "0101901234" not in out
