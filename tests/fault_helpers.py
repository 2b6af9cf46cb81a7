"""Helpers for the fault tests: a simulated locker run as a real process
(``python -m locker.cli run``), HTTP helpers, and database inspection.

The process is the production entry point (``bibbox run``) on a simulated
configuration, so kill -9, SIGTERM and sd_notify are exercised exactly as
under systemd; the site key comes from ``BIBBOX_SITE_KEY``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


from bibbox.locker.domain.messages import KioskAction, PinEntered
from tests.domain_helpers import wait_until  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parent.parent
SITE_KEY_HEX = "5c" * 32
# Made-up patrons: card, PIN.  Card numbers are library-card shaped.
PATRONS = [("LIB0000101", "1357"), ("LIB0000102", "2468"), ("LIB0000103", "1122"),
           ("LIB0000104", "9090")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sim_config_text(state_dir, port, *, compartments=6, pulse_s=0.1, extra=""):
    comps = "\n".join(
        f"[[compartments]]\nnumber = {n}\nsize = \"{'SML'[(n - 1) % 3]}\"\n"
        f"relay_pin = {4 + n}\ndoor_pin = {16 + n}\n" for n in range(1, compartments + 1))
    return f"""
[locker]
id = "fault-1"
name = "Fault locker"
state_dir = "{state_dir}"
simulated = true

[hardware]
pin_factory = "mock"

[reader]
port = "sim"
framing = "barcode"
suffix = "\\r"
repeat_window_s = 0.0

[web]
kiosk_port = {port}

[timing]
pulse_s = {pulse_s}
max_coils = 1
door_open_timeout_s = 3
pin_timeout_s = 30
{extra}

{comps}
"""


def write_sim_config(tmp_path, *, port=None, **kwargs):
    port = port or free_port()
    state = tmp_path / "state"
    path = tmp_path / "sim.toml"
    path.write_text(sim_config_text(state, port, **kwargs))
    return path, port, state


def child_env(**extra):
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env["BIBBOX_SITE_KEY"] = SITE_KEY_HEX
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def import_patrons(config, tmp_path, patrons=PATRONS):
    csv = tmp_path / "patrons.csv"
    csv.write_text("card,pin,block_reason\n" + "".join(f"{c},{p},\n" for c, p in patrons))
    subprocess.run([sys.executable, "-m", "bibbox.daemon.cli", "patrons", "import", str(csv),
                    "--config", str(config)], check=True, env=child_env(), cwd=ROOT,
                   stdout=subprocess.DEVNULL, timeout=60)
    csv.unlink()


# -- HTTP ---------------------------------------------------------------------------
class Down(Exception):
    """The daemon does not answer (killed, or not up yet)."""


def request(port, method, path, body=None, timeout=3.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, http.client.HTTPException, ValueError, OSError) as exc:
        raise Down(f"{type(exc).__name__}: {exc}") from None


def get(port, path, **kw):
    return request(port, "GET", path, **kw)[1]


def post(port, path, body, **kw):
    return request(port, "POST", path, body, **kw)


# -- the daemon process -----------------------------------------------------------------
class DaemonProcess:
    """``bibbox run --config CONFIG`` (or any argv) as a child process."""

    def __init__(self, config, port, log_path, argv=None, env=None):
        self.config, self.port, self.log_path = config, port, log_path
        self.argv = argv or [sys.executable, "-m", "bibbox.daemon.cli", "run", "--config", str(config)]
        self.env = env or child_env()
        self.proc = None
        self.starts = 0
        self.killed = False        # SIGKILL sent to the current process


    def start(self, timeout=30.0):
        self._log = open(self.log_path, "ab")
        self.killed = False
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n"
                                     + self.log_tail())
            try:
                status = get(self.port, "/api/status", timeout=1.0)
                if status and status.get("state"):
                    return status
            except Down:
                pass
            time.sleep(0.05)
        raise AssertionError("daemon did not come up:\n" + self.log_tail())

    def kill(self):
        if self.proc and self.proc.returncode is None:
            self.killed = True
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.wait()

    def terminate(self, timeout=10.0):
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout=10.0):
        if self.proc is None:
            return None
        rc = self.proc.wait(timeout)
        self._log.close()
        return rc

    def alive(self):
        """Running and not being killed (poll() is unreliable while another
        thread waits for the process)."""
        return self.proc is not None and not self.killed and self.proc.poll() is None

    def log_tail(self, n=4000):
        try:
            return Path(self.log_path).read_text(errors="replace")[-n:]
        except OSError:
            return ""


# -- the database -------------------------------------------------------------------------
def read_db(state_dir):
    """Everything the invariants need, read while no daemon runs."""
    conn = sqlite3.connect(Path(state_dir) / "bibbox.db")
    conn.row_factory = sqlite3.Row
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        holds = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM holds")}
        outbox = [dict(r) for r in conn.execute("SELECT * FROM outbox ORDER BY seq")]
        openings = [dict(r) for r in conn.execute("SELECT * FROM openings")]
        alarms = [dict(r) for r in conn.execute("SELECT * FROM alarms")]
    finally:
        conn.close()
    return {"integrity": integrity, "holds": holds, "outbox": outbox, "openings": openings,
            "alarms": alarms}


# -- an in-process simulated daemon ---------------------------------------------------------
def sim_config(state_dir, **kwargs):
    import tomllib

    from bibbox.locker.domain import config as config_mod
    text = sim_config_text(state_dir, 8080, **kwargs)   # the port is overridden
    return config_mod.parse(tomllib.loads(text), source="sim")


def sim_daemon(state_dir, *, patrons=PATRONS, serve_web=True, clock=None, mqtt_url=None,
               **kwargs):
    """A simulated locker in this process (kiosk on a free loopback port),
    with ``patrons`` imported; not started."""
    from bibbox.locker.domain.patrons import import_patrons as import_rows
    from bibbox.daemon.bootstrap import Daemon
    cfg = sim_config(state_dir, **kwargs)
    daemon = Daemon(cfg, site_key=bytes.fromhex(SITE_KEY_HEX), kiosk_port=0,
                    serve_web=serve_web, clock=clock, mqtt_url=mqtt_url)
    if patrons and daemon.store.patron_count() == 0:
        import_rows(daemon.store, daemon.hasher,
                    "card,pin,block_reason\n" + "".join(f"{c},{p},\n" for c, p in patrons))
    return daemon


def place_hold(daemon, hold_id, patron, compartment, days=7):
    """Put a ready hold into ``compartment`` for ``PATRONS[patron]``."""
    from bibbox.locker.domain.identity import CardNumber
    from bibbox.locker.domain.model import Hold, HoldState, Item

    def place(locker):
        hold = Hold(id=hold_id, patron_hash=locker.hasher.patron(
            CardNumber.parse(PATRONS[patron][0])), items=(Item(f"{hold_id}-0", "Bog"),),
            pickup_number="1234", deadline=locker.clock.wall() + days * 86400,
            state=HoldState.READY, compartment=compartment)
        return locker.place_hold(hold, actor="test")
    return daemon.controller.call(place)


def kiosk(daemon):
    return daemon.controller.board.get("kiosk") or {}


def state(daemon):
    return daemon.controller.board.get("state") or {}


def alarms(daemon):
    return {(a["alarm"], a["compartment"]) for a in state(daemon).get("alarms", [])}


def present_card(daemon, patron):
    wait_until(lambda: kiosk(daemon).get("screen") == "idle", 5, what="an idle kiosk")
    daemon.simulator.write_card(PATRONS[patron][0].encode() + b"\r")
    wait_until(lambda: kiosk(daemon).get("screen") in ("pin", "denied"), 5,
               what="the card to be read")
    return kiosk(daemon)


def enter_pin(daemon, patron, pin=None):
    before = kiosk(daemon)["version"]
    daemon.controller.post(PinEntered(pin or PATRONS[patron][1]))
    return wait_until(lambda: (lambda v: v if v["version"] > before and
                               v["screen"] != "verifying" else None)(kiosk(daemon)), 5,
                      what="the PIN verdict")


def mount_tmpfs(path, size="4m"):
    """Mount a tmpfs at ``path``; False if this process may not (not root,
    no mount privilege in this container)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                             str(path)], capture_output=True)
    return result.returncode == 0


def umount(path):
    subprocess.run(["umount", str(path)], capture_output=True)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(directory):
    """Write a filler file until the file system is full; returns its path."""
    filler = Path(directory) / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (65536, 4096, 512, 1):
            try:
                while fh.write(b"\0" * chunk):
                    pass
            except OSError:
                pass
    return filler


def pickup(daemon, patron):
    """A whole pickup on the simulated locker: card, PIN, every door opened
    by its lock and closed again by the patron.  Returns the compartments."""
    present_card(daemon, patron)
    view = enter_pin(daemon, patron)
    assert view["screen"] == "opening", view
    numbers = [c["number"] for c in view["compartments"] if c["status"] != "unavailable"]
    for number in numbers:
        wait_until(lambda: daemon.simulator.door_is_open(number), 5,
                   what=f"door {number} to spring open")
        daemon.simulator.set_door(number, False)
    wait_until(lambda: kiosk(daemon).get("screen") == "receipt", 5, what="the receipt")
    daemon.controller.post(KioskAction("cancel"))
    wait_until(lambda: kiosk(daemon).get("screen") == "idle", 5, what="an idle kiosk")
    return numbers
