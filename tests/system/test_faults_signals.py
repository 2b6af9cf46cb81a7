"""SIGTERM (systemctl stop): every relay off and the process gone, exit 0,
within 2 s -- also when a coil is energised at that moment.  And systemd's
notifications on the way: READY=1 once the locker serves, WATCHDOG=1 while
it is healthy, STOPPING=1 on the way out."""

import os
import signal
import socket
import sys
import threading
import time
import uuid

import pytest

from tests.fault_helpers import (DaemonProcess, child_env, free_port, get, place_hold,
                                 post, sim_daemon, wait_until, write_sim_config)

EXIT_BOUND_S = 2.0     # a behaviour requirement of the issue, not a benchmark


class NotifySocket:
    """An abstract unix datagram socket standing in for systemd's."""

    def __init__(self):
        self.name = f"bibbox-test-{uuid.uuid4().hex[:12]}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.messages = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue
            except OSError:
                return

    def seen(self, text):
        return any(text in m for m in list(self.messages))

    def close(self):
        self._stop = True
        self.thread.join(1)
        self.sock.close()


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def test_demo_sigterm_exits_0_within_2_s_with_every_relay_off(tmp_path, notify):
    """``bibbox demo``, a patron's door being unlocked, then SIGTERM."""
    port = free_port()
    daemon = DaemonProcess(None, port, tmp_path / "demo.log",
                           argv=[sys.executable, "-m", "bibbox.daemon.cli", "demo", "--port",
                                 str(port), "--state-dir", str(tmp_path / "state")],
                           env=child_env(NOTIFY_SOCKET="@" + notify.name,
                                         WATCHDOG_USEC="600000"))
    daemon.start()
    wait_until(lambda: notify.seen("READY=1"), 5, what="READY=1")
    wait_until(lambda: notify.seen("WATCHDOG=1"), 5, what="a watchdog ping")
    from bibbox.daemon.cli import DEMO_HOLDS, DEMO_PATRONS
    patron = DEMO_PATRONS[DEMO_HOLDS[0][1]]                # made up; has a ready hold
    post(port, "/sim/card", {"data": patron["card"] + "\r"})
    wait_until(lambda: get(port, "/api/kiosk")["screen"] == "pin", 5, what="the PIN screen")
    post(port, "/api/kiosk/pin", {"pin": patron["pin"]})
    wait_until(lambda: "on" in get(port, "/sim/state")["relays"].values(), 5,
               what="a coil to be energised")
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.wait(10)
    elapsed = time.monotonic() - started
    log = daemon.log_tail(20000)
    assert code == 0, log
    assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s"
    assert "stopped; all relays off" in log
    assert notify.seen("STOPPING=1")


def test_sigterm_cuts_a_long_pulse_short(tmp_path, notify):
    """``bibbox run`` on a simulated locker whose pulses last 3 s: the stop
    switches the coil off long before its pulse would have ended."""
    config, port, state_dir = write_sim_config(tmp_path, pulse_s=3.0)
    daemon = DaemonProcess(config, port, tmp_path / "run.log",
                           env=child_env(NOTIFY_SOCKET="@" + notify.name))
    daemon.start()
    assert notify.seen("READY=1")                # sent before the kiosk answered us
    status, body = post(port, "/sim/load", {"card": "LIB0000101",
                                            "items": [{"barcode": "B1", "title": "Bog"}]})
    assert status == 200, body
    number = body["compartment"]
    wait_until(lambda: get(port, "/sim/state")["relays"][str(number)] == "on", 5,
               what="the coil on")
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.wait(10)
    elapsed = time.monotonic() - started
    log = daemon.log_tail(20000)
    assert code == 0 and elapsed < EXIT_BOUND_S, (code, elapsed, log)
    stopping = log.index("INFO bibbox.daemon: stopping")
    assert log.index(f"relay of compartment {number} off") > stopping, log
    assert log.index("stopped; all relays off") > stopping


def test_sigterm_in_process_leaves_every_relay_pin_off(tmp_path):
    """The same through ``locker.cli._run_until_signal``, reading the pins."""
    from bibbox.daemon.cli import _run_until_signal
    daemon = sim_daemon(tmp_path / "state", pulse_s=3.0)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    result = {}

    def drive():
        wait_until(daemon.ready.is_set, 10, what="the daemon ready")
        place_hold(daemon, "H1", 0, 4)
        daemon.controller.call(lambda l: l.open_compartment(4, "staff", "test"))
        wait_until(lambda: daemon.simulator.relay_energised(4), 5, what="the coil on")
        result["sent"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
    driver = threading.Thread(target=drive)
    driver.start()
    try:
        code = _run_until_signal(daemon)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    elapsed = time.monotonic() - result["sent"]
    driver.join()
    assert code == 0 and elapsed < EXIT_BOUND_S
    sim = daemon.simulator
    assert not any(sim.relay_energised(n) for n in sim.relay_pins)
    for number, gpio in sim.relay_pins.items():      # active-low: off is high
        assert sim.factory.pin(gpio).state == (not sim.relay_active_high), number
