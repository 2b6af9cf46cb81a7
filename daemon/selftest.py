"""``bibbox selftest``: pulse every lock and watch every door.

For each compartment (or the one asked for) the test

1. reads the door.  A door that reads open is closed first: the simulator
   closes it; on a real locker the operator is asked to, and the test waits
   ``close_timeout`` seconds for the sensor to say so.  If it never does, the
   result is **sensor stuck open** (or a door that cannot shut) and the lock
   is not pulsed;
2. pulses the relay for ``timing.pulse_s`` and watches *every* door sensor
   for ``open_timeout`` seconds (default ``timing.door_open_timeout_s``):

   * its own door opens: the operator (or the simulator) closes it again and
     the result is **ok**, or **door not seen closing** if the sensor never
     reports it shut;
   * another door opens instead: **opened door M** -- the relay or the
     sensor of this compartment is wired to another compartment's pin;
   * nothing moves: **no door movement**.  The sensor cannot tell a lock that
     did not release from a sensor stuck "closed"; when the test is
     interactive it asks the operator whether the door opened, and reports
     **sensor stuck closed** (it did) or **lock did not release** (it did not);
3. checks that the relay is off again.

It prints a table and returns non-zero if any compartment failed.  It owns
the pins, so it refuses to run while the daemon runs: it takes the locker's
lock file (``<state_dir>/bibbox.lock``, held by the daemon) and also asks the
kiosk port's ``/api/status`` whether a daemon answers there.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass

from bibbox.locker.domain.errors import BibboxError, HardwareError

OK = "ok"
STUCK_OPEN = "sensor stuck open"
NOT_CLOSED = "door not seen closing"
NO_MOVEMENT = "no door movement"
STUCK_CLOSED = "sensor stuck closed"
LOCK_FAILED = "lock did not release"
WRONG_DOOR = "opened another door"
RELAY_ON = "relay stayed on"
UNREADABLE = "sensor unreadable"


@dataclass
class Result:
    number: int
    relay: str          # where the lock is: "GPIO5", "rs485/0 lock 3", "mb/1 coil 2"
    door: str           # where its sensor is
    outcome: str
    detail: str = ""

    @property
    def ok(self):
        return self.outcome == OK


class DoorWatch:
    """Door changes from the sensors' callback thread, in order."""

    def __init__(self):
        self.events = queue.Queue()

    def __call__(self, number, is_open):
        self.events.put((number, bool(is_open), time.monotonic()))

    def drain(self):
        while True:
            try:
                self.events.get_nowait()
            except queue.Empty:
                return

    def next(self, deadline):
        """The next change before monotonic ``deadline``, or None."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return self.events.get(timeout=remaining)
        except queue.Empty:
            return None


class SimOperator:
    """The simulated locker's hands: it closes doors; it cannot see them."""
    interactive = False

    def __init__(self, simulator):
        self.simulator = simulator

    def close_door(self, number):
        self.simulator.set_door(number, False)

    def ask_opened(self, number):
        return None

    def say(self, text):
        pass


class ConsoleOperator:
    """A person at the locker, told what to do on ``out``; asked only when
    ``interactive``."""

    def __init__(self, out=None, ask=input, interactive=True):
        self.out, self.ask, self.interactive = out or sys.stdout, ask, interactive

    def say(self, text):
        print(text, file=self.out, flush=True)

    def close_door(self, number):
        self.say(f"  -> close door {number} now")

    def ask_opened(self, number):
        if not self.interactive:
            return None
        while True:
            try:
                answer = self.ask(f"  did door {number} open? [y/n] ").strip().lower()
            except EOFError:
                return None
            if answer in ("y", "yes", "j", "ja"):
                return True
            if answer in ("n", "no", "nej"):
                return False


class Hardware:
    """Relays and door sensors for the test (the simulator's or the Pi's)."""

    def __init__(self, cfg):
        from bibbox.daemon.bootstrap import build_lock_hardware
        self.cfg = cfg
        self.watch = DoorWatch()
        self.parts = build_lock_hardware(cfg, on_door_change=self.watch)
        self.simulator = self.parts.simulator
        self.factory = None if self.simulator else self.parts.pin_factory
        self.relays, self.doors = self.parts.relays, self.parts.doors
        if self.simulator:
            self.watch.drain()

    def close(self):
        """Every relay off, then the pins released."""
        self.parts.close()


def channels(spec):
    """Where a compartment's lock and door sensor are, for the table."""
    if not spec.bus:
        return f"GPIO{spec.relay_pin}", f"GPIO{spec.door_pin}"
    if spec.board >= 0:
        where = f"{spec.bus}/{spec.board} lock {spec.lock}"
        return where, where
    door = f"{spec.bus}/{spec.unit} input {spec.input}" if spec.input >= 0 else "none"
    return f"{spec.bus}/{spec.unit} coil {spec.coil}", door


def _wait_for(watch, doors, number, want_open, timeout):
    """Wait for door ``number`` to read ``want_open``; True if it did."""
    deadline = time.monotonic() + timeout
    want = "open" if want_open else "closed"
    while True:
        if doors.read(number) == want:
            return True
        event = watch.next(min(deadline, time.monotonic() + 0.2))
        if event is None and time.monotonic() >= deadline:
            return doors.read(number) == want


def _wait_relay_off(relays, number, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not relays.states().get(number):
            return True
        time.sleep(0.02)
    return not relays.states().get(number)


def check_compartment(hw, operator, number, *, open_timeout, close_timeout):
    """Run the test on one compartment; return its :class:`Result`."""
    cfg, relays, doors, watch = hw.cfg, hw.relays, hw.doors, hw.watch
    spec = cfg.compartment(number)
    relay_at, door_at = channels(spec)
    result = Result(number, relay_at, door_at, OK)
    state = doors.read(number)
    if state == "unknown":
        result.outcome, result.detail = UNREADABLE, "the pin could not be read"
        return result
    if state == "open":
        operator.close_door(number)
        if not _wait_for(watch, doors, number, False, close_timeout):
            result.outcome = STUCK_OPEN
            result.detail = (f"reads open and did not read closed within {close_timeout:g} s; "
                             "not pulsed (check the door, the magnet and the sensor wire)")
            return result
    watch.drain()
    before = doors.read_all()
    started = time.monotonic()
    relays.pulse(number, cfg.timing.pulse_s)
    deadline = started + open_timeout
    opened_at, others = None, []
    while opened_at is None:
        event = watch.next(deadline)
        if event is None:
            break
        n, is_open, at = event
        if not is_open:
            continue
        if n == number:
            opened_at = at - started
        elif n not in others and before.get(n) != "open":
            others.append(n)
            # keep watching until the timeout: our own door may still open
    if not _wait_relay_off(relays, number, cfg.timing.pulse_s + 2.0):
        relays.all_off()
        result.outcome = RELAY_ON
        result.detail = "the relay still read energised after its pulse; forced off"
        return result
    for other in others:
        operator.close_door(other)
        _wait_for(watch, doors, other, False, close_timeout)
    if opened_at is None and others:
        result.outcome = WRONG_DOOR
        result.detail = (f"the pulse opened door {', '.join(map(str, others))} instead: "
                         "relay or door-sensor wires swapped with that compartment")
        return result
    if opened_at is None:
        seen = operator.ask_opened(number)
        if seen is True:
            result.outcome = STUCK_CLOSED
            result.detail = ("the door opened but its sensor kept reading closed "
                             f"(sensor on {door_at}: wire, magnet or pin)")
            operator.close_door(number)
        elif seen is False:
            result.outcome = LOCK_FAILED
            result.detail = (f"the door stayed shut (lock on {relay_at}, the "
                             "lock, its power supply or a jammed door)")
        else:
            result.outcome = NO_MOVEMENT
            result.detail = (f"the sensor saw nothing within {open_timeout:g} s: the lock "
                             "did not release, or the sensor is stuck closed")
        return result
    operator.close_door(number)
    if not _wait_for(watch, doors, number, False, close_timeout):
        result.outcome = NOT_CLOSED
        result.detail = (f"opened after {opened_at:.2f} s but did not read closed within "
                         f"{close_timeout:g} s (door left open, or sensor stuck open)")
        return result
    result.detail = f"opened {opened_at:.2f} s after the pulse, closed again"
    if others:
        result.outcome = WRONG_DOOR
        result.detail += f"; door {', '.join(map(str, others))} opened too"
    return result


def render_table(cfg, results, simulated) -> str:
    """One row a compartment, the columns as wide as their widest entry (a
    board's "rs485-1/2 lock 7" as well as "GPIO5"); the last line names the
    compartments that failed, so a long table need not be read to find them."""
    relay_w = max([len("relay")] + [len(r.relay) for r in results])
    door_w = max([len("door")] + [len(r.door) for r in results])
    lines = [f"Self-test of locker {cfg.locker.id!r}: {len(results)} compartment(s)"
             + (" (simulated)" if simulated else ""),
             f"{'#':>4}  {'relay':<{relay_w}}  {'door':<{door_w}}  result"]
    for r in results:
        lines.append(f"{r.number:>4}  {r.relay:<{relay_w}}  "
                     f"{r.door:<{door_w}}  {r.outcome.upper() if not r.ok else 'ok'}"
                     + (f": {r.detail}" if r.detail else ""))
    failed = [r for r in results if not r.ok]
    lines.append(f"{len(results) - len(failed)} ok, {len(failed)} failed")
    if failed:
        lines.append("failed: " + ", ".join(f"{r.number} ({r.outcome})" for r in failed))
    return "\n".join(lines)


def daemon_answering(cfg, timeout=1.0):
    """A message if a daemon answers on this locker's kiosk port, else None."""
    from bibbox.daemon.status_client import fetch_status
    url = f"http://127.0.0.1:{cfg.web.kiosk_port}"
    try:
        data = fetch_status(url, timeout=timeout)
    except OSError:
        return None
    if isinstance(data, dict) and ("state" in data or "health" in data):
        return f"a bibbox daemon answers at {url}"
    return None


def run(cfg, *, numbers=None, interactive=None, open_timeout=None, close_timeout=None,
        out=None, ask=input, hardware=None):
    """The whole ``bibbox selftest``; returns the exit code (0 ok, 1 failures,
    2 refused)."""
    out = out or sys.stdout
    from bibbox.daemon.bootstrap import state_lock
    known = [c.number for c in cfg.compartments]
    numbers = list(numbers or known)
    unknown = [n for n in numbers if n not in known]
    if unknown:
        print(f"bibbox selftest: no compartment {unknown[0]} in {cfg.source or 'the config'}",
              file=sys.stderr)
        return 2
    running = daemon_answering(cfg)
    if running:
        print(f"bibbox selftest: {running}; it owns the pins. Stop it first: "
              "sudo systemctl stop bibbox", file=sys.stderr)
        return 2
    try:
        lock = state_lock(cfg, "bibbox selftest")
    except HardwareError as exc:
        print(f"bibbox selftest: {exc}", file=sys.stderr)
        return 2
    hw = None
    try:
        hw = hardware or Hardware(cfg)
        simulated = hw.simulator is not None
        if simulated:
            operator = SimOperator(hw.simulator)
        else:
            if interactive is None:
                interactive = bool(getattr(sys.stdin, "isatty", lambda: False)())
            operator = ConsoleOperator(out, ask, interactive)
        open_timeout = open_timeout if open_timeout is not None \
            else cfg.timing.door_open_timeout_s
        if close_timeout is None:
            close_timeout = 2.0 if simulated else 60.0
        results = []
        for number in numbers:
            operator.say(f"compartment {number}: pulsing its lock ...")
            results.append(check_compartment(hw, operator, number, open_timeout=open_timeout,
                                            close_timeout=close_timeout))
        print(render_table(cfg, results, simulated), file=out, flush=True)
        return 0 if all(r.ok for r in results) else 1
    except BibboxError as exc:
        print(f"bibbox selftest: {exc}", file=sys.stderr)
        return 1
    finally:
        if hw is not None and hardware is None:
            hw.close()
        if lock is not None:
            os.close(lock)
