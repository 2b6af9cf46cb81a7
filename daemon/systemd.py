"""systemd integration without a dependency: readiness, the watchdog, journald.

- :func:`notify` speaks the ``sd_notify`` protocol: one datagram of
  ``KEY=VALUE`` lines to the unix socket named by ``$NOTIFY_SOCKET`` (a path,
  or ``@name`` for an abstract socket).  Without the variable it does nothing,
  so ``bibbox run`` behaves the same outside systemd.
- :func:`notify_ready` sends ``READY=1``.  ``locker.cli`` calls it after
  ``Daemon.start()`` returned: the doors have been read, the store is open and
  recovered, the threads run.
- :func:`watchdog_loop` runs on the main thread until the stop event is set.
  It sends ``WATCHDOG=1`` only while :func:`check_health` finds nothing wrong:
  the controller thread answers a probe (a no-op call, so a loop that only
  turns every ``timing.expiry_check_s`` still answers at once), the store
  answers ``SELECT 1`` on the controller's own connection, and the card
  reader thread (if there is a reader) is alive, and the central link (if
  there is one) reports nothing ``unhealthy``: its network loop and threads
  run and, while connected, no event has waited for its PUBACK beyond the
  stall limit (see ``central/link.py``).  A stuck controller or a
  dead reader thread therefore ends in systemd killing and restarting the
  daemon after ``WatchdogSec``; ``ExecStopPost`` then drives the relays off.
  What a restart cannot fix -- a full disk, a reader that is unplugged (its
  thread keeps reopening it), an unreachable broker, events the broker's ACL
  refuses -- is *not* a watchdog
  failure: the daemon keeps serving and reports it (alarms, ``STATUS=``),
  instead of crash-looping.
- :func:`log_formatter` gives one line per record; when stdout is the journal
  (``$JOURNAL_STREAM``) each line starts with the ``<N>`` syslog priority so
  ``journalctl -p warning`` works, and a traceback is folded onto the same
  line.  Anything CPR-shaped is blanked in the *whole* formatted record,
  traceback included (a filter alone only sees the message).
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.patterns import CPR_IN_TEXT_RE

log = logging.getLogger("bibbox.systemd")

PROBE_TIMEOUT_S = 5.0
STATUS_PERIOD_S = 30.0     # without a watchdog: how often health is checked
_warned = set()


def _socket_address(env):
    address = env.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        return "\0" + address[1:]          # abstract namespace
    if address.startswith("/"):
        return address
    return None                             # unset, or a kind we do not speak (vsock)


def notify(*fields: str, env=None) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``) to systemd; True if sent.

    Never raises: a failure is logged once and reported as False."""
    env = os.environ if env is None else env
    address = _socket_address(env)
    if address is None:
        return False
    message = "\n".join(fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message)
        return True
    except OSError as exc:
        if "notify" not in _warned:
            _warned.add("notify")
            log.warning("sd_notify failed (%s); systemd may not see readiness or "
                        "watchdog pings", exc)
        return False


def notify_ready(status="running") -> bool:
    """Tell systemd the daemon is up (``Type=notify``)."""
    return notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")


def watchdog_interval(env=None):
    """``WatchdogSec`` in seconds if systemd asked *this* process for pings."""
    env = os.environ if env is None else env
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    try:
        if not usec or int(usec) <= 0:
            return None
        if pid and int(pid) != os.getpid():
            return None
        return int(usec) / 1e6
    except ValueError:
        return None


def check_health(daemon, timeout=PROBE_TIMEOUT_S) -> list[str]:
    """What is wrong with ``daemon`` that a restart could fix; [] if nothing."""
    problems = []
    store_error = []

    def probe(locker):
        try:
            locker.store.ping()
        except Exception as exc:     # reported, not raised: the thread is fine
            store_error.append(f"{type(exc).__name__}: {exc}")
        return True

    try:
        daemon.controller.call(probe, timeout=timeout)
    except CommandError:
        problems.append(f"controller thread did not answer within {timeout:g} s")
    except Exception as exc:
        problems.append(f"controller probe failed: {type(exc).__name__}")
    if store_error:
        problems.append("store does not answer: " + store_error[0])
    link = daemon.link
    if link is not None:
        try:
            problems.extend(link.health().get("unhealthy") or [])
        except Exception as exc:
            problems.append(f"central link health failed: {type(exc).__name__}")
    reader = daemon.reader
    if reader is not None and not reader.alive:
        problems.append("card reader thread has stopped")
    return problems


def status_line(daemon) -> str:
    """A short human summary for ``systemctl status`` (``STATUS=``)."""
    state = daemon.controller.board.get("state") or {}
    alarms = state.get("alarms") or []
    parts = [f"{len(state.get('compartments') or [])} compartments"]
    parts.append("no alarms" if not alarms else "alarms: " + ", ".join(
        a["alarm"] + (f"@{a['compartment']}" if a.get("compartment") else "")
        for a in alarms[:5]) + (" ..." if len(alarms) > 5 else ""))
    reader = daemon.reader
    if reader is not None:
        parts.append("reader online" if reader.online else "reader OFFLINE")
    link = daemon.link
    if link is not None:
        try:
            parts.append("central connected" if link.health().get("connected")
                         else "central disconnected")
        except Exception:
            parts.append("central unknown")
    return "; ".join(parts)


def watchdog_loop(daemon, stop_event, env=None) -> None:
    """Ping systemd's watchdog while the daemon is healthy; return once
    ``stop_event`` is set (within a few milliseconds, unless a probe is
    under way: at most the probe timeout)."""
    interval = watchdog_interval(env)
    if interval:
        period = max(0.05, interval / 3)
        timeout = min(PROBE_TIMEOUT_S, period)
        log.info("systemd watchdog: %g s; health checked every %g s", interval, period)
    else:
        period, timeout = STATUS_PERIOD_S, PROBE_TIMEOUT_S
    last_problems, last_status = None, None
    while not stop_event.is_set():
        problems = check_health(daemon, timeout=timeout)
        if stop_event.is_set():
            break
        if problems != last_problems:
            if problems:
                log.error("unhealthy: %s%s", "; ".join(problems),
                          "; not pinging the watchdog (systemd will restart us)"
                          if interval else "")
            elif last_problems:
                log.warning("healthy again")
            last_problems = problems
        if not problems and interval:
            notify("WATCHDOG=1", env=env)
        try:
            status = ("UNHEALTHY: " + "; ".join(problems)) if problems else status_line(daemon)
        except Exception:
            status = "running"
        if status != last_status:
            notify(f"STATUS={status}", env=env)
            last_status = status
        stop_event.wait(period)
    notify("STOPPING=1", "STATUS=stopping; driving every relay off", env=env)


# -- logging ------------------------------------------------------------------------
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
             (logging.INFO, 6))


def stdout_is_journal(stream=None, env=None) -> bool:
    """True when ``stream`` (stdout) is connected to journald."""
    env = os.environ if env is None else env
    value = env.get("JOURNAL_STREAM", "")
    stream = sys.stdout if stream is None else stream
    try:
        device, inode = (int(x) for x in value.split(":"))
        info = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


# Anything CPR-shaped (DDMMYY-NNNN, dash optional) is blanked in a log line.
CPR_SHAPED = CPR_IN_TEXT_RE


class BibboxFormatter(logging.Formatter):
    """``LEVEL logger: message``, redacted as a whole; see the module docstring."""

    def __init__(self, journal=False):
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.journal = journal

    def format(self, record):
        text = CPR_SHAPED.sub("<redacted>", super().format(record))
        if self.journal:
            priority = next((p for level, p in _PRIORITY if record.levelno >= level), 7)
            text = f"<{priority}>" + text.replace("\n", " | ")
        return text


def log_formatter(stream=None, env=None):
    """The formatter ``bibbox`` logs with (journald priorities when under systemd)."""
    return BibboxFormatter(journal=stdout_is_journal(stream, env))
