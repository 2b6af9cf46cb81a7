"""Operator commands for a locker in the field (hooked into ``bibbox``).

    bibbox firmware config-txt --config FILE [--i2c] [--spi] [--strict]
    bibbox safe-off --config FILE [--no-hold]
    bibbox selftest --config FILE [--compartment N]... [--ask | --no-ask]
    bibbox status [--config FILE | --url http://127.0.0.1:8080] [--json] [--all]

Exit codes as for every ``bibbox`` command: 0 ok, 1 a failure (a relay that
could not be driven off, a compartment that failed its test, no daemon
answering), 2 bad usage, a refused configuration or a refused run; ``status``
exits 3 when the daemon answers but reports alarms or an unhealthy part.
"""

from __future__ import annotations

import json
import sys

from bibbox.daemon.status_client import fetch_status


def add_ops_commands(sub):
    """Add the operator commands to ``bibbox``'s subparsers."""
    s = sub.add_parser("firmware", help="what goes onto the Pi itself")
    fsub = s.add_subparsers(dest="firmware_command", required=True)
    s = fsub.add_parser("config-txt", help="print the /boot/firmware/config.txt lines "
                        "that hold every relay off from power-on")
    s.add_argument("--config", required=True)
    s.add_argument("--i2c", action="store_true", help="I2C is enabled: refuse GPIO2/3")
    s.add_argument("--spi", action="store_true", help="SPI is enabled: refuse GPIO7-11")
    s.add_argument("--strict", action="store_true", help="exit 2 on warnings too")
    s.set_defaults(func=cmd_config_txt)

    s = fsub.add_parser("kiosk-display", help="set up Chromium in kiosk mode on the "
                        "locker's touch screen (labwc or wayfire)")
    s.add_argument("--config", required=True)
    s.add_argument("--root", default="/", help="write under this directory (tests)")
    s.add_argument("--uninstall", action="store_true")
    s.set_defaults(func=cmd_kiosk_display)

    s = sub.add_parser("safe-off", help="drive every relay off (systemd ExecStopPost)")
    s.add_argument("--config", required=True)
    s.add_argument("--no-hold", dest="hold", action="store_false",
                   help="do not hold the pins with pinctrl afterwards")
    s.set_defaults(func=cmd_safe_off)

    s = sub.add_parser("selftest", help="pulse every lock, watch every door, print a table")
    s.add_argument("--config", required=True)
    s.add_argument("--compartment", type=int, action="append", metavar="N",
                   help="test only this compartment (repeatable)")
    ask = s.add_mutually_exclusive_group()
    ask.add_argument("--ask", dest="interactive", action="store_true", default=None,
                     help="ask whether a door opened when its sensor saw nothing")
    ask.add_argument("--no-ask", dest="interactive", action="store_false")
    s.add_argument("--open-timeout", type=float, metavar="S",
                   help="wait this long for a door to open (default timing.door_open_timeout_s)")
    s.add_argument("--close-timeout", type=float, metavar="S",
                   help="wait this long for a door to be closed (default 60 s; sim 2 s)")
    s.set_defaults(func=cmd_selftest)

    s = sub.add_parser("status", help="the running daemon's live state")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--config", help="ask the daemon of this configuration")
    where.add_argument("--url", help="default http://127.0.0.1:8080")
    s.add_argument("--json", action="store_true", help="print the raw /api/status answer")
    s.add_argument("--all", dest="every", action="store_true",
                   help=f"list every compartment (above {FULL_TABLE_MAX} only those that "
                   "need a look are listed)")
    s.add_argument("--timeout", type=float, default=5.0)
    s.set_defaults(func=cmd_status)


# -- firmware kiosk-display --------------------------------------------------------------
def cmd_kiosk_display(args):
    """Print ``user USER HOME`` then one ``wrote PATH`` a file, for install.sh;
    exit 3 (and say why) when the system has no screen to set up."""
    from bibbox.daemon import kiosk_display
    from bibbox.daemon.config_file import load_or_exit
    cfg = load_or_exit(args.config)
    target = kiosk_display.find_target(cfg, args.root)
    if isinstance(target, str):
        print(f"no kiosk display: {target}", file=sys.stderr)
        return 3
    if args.uninstall:
        for path in kiosk_display.uninstall(root=args.root, home=target.home):
            print(f"removed {path}")
        return 0
    done = kiosk_display.install(cfg, root=args.root, home=target.home,
                                 compositor=target.compositor)
    print(f"user {target.user} {target.home} {target.compositor}")
    for path in done.files:
        print(f"wrote {path}")
    for note in done.notes:
        print(f"note {note}")
    return 0


# -- firmware config-txt ---------------------------------------------------------------
def cmd_config_txt(args):
    from bibbox.daemon.config_file import load_or_exit
    from bibbox.daemon.boot_config import boot_plan, render_config_txt
    cfg = load_or_exit(args.config)
    plan = boot_plan(cfg, i2c=args.i2c, spi=args.spi)
    if plan.errors:
        print(f"bibbox firmware config-txt: {args.config}: refused:", file=sys.stderr)
        for f in plan.errors:
            print(f"  - {f.text}", file=sys.stderr)
        return 2
    sys.stdout.write(render_config_txt(cfg, plan, source=args.config))
    if plan.warnings:
        print(f"bibbox firmware config-txt: {len(plan.warnings)} warning(s); read the "
              "'# WARNING' lines", file=sys.stderr)
        if args.strict:
            return 2
    return 0


# -- safe-off ---------------------------------------------------------------------------
def cmd_safe_off(args):
    from bibbox.daemon.config_file import load_or_exit
    from bibbox.daemon.boot_config import safe_off
    cfg = load_or_exit(args.config)
    for line in safe_off(cfg, hold=args.hold):   # HardwareError -> exit 1 via main()
        print(f"bibbox safe-off: {line}")
    return 0


# -- selftest ---------------------------------------------------------------------------
def cmd_selftest(args):
    from bibbox.daemon import selftest
    from bibbox.daemon.config_file import load_or_exit
    cfg = load_or_exit(args.config)
    return selftest.run(cfg, numbers=args.compartment, interactive=args.interactive,
                        open_timeout=args.open_timeout, close_timeout=args.close_timeout)


# -- status -----------------------------------------------------------------------------
# Up to this many compartments ``bibbox status`` lists every one; above it (a
# 200-door locker) it counts them and lists those that need a look.
FULL_TABLE_MAX = 24
USUAL_STATES = ("free", "ready")


def cmd_status(args):
    url = args.url
    if url is None:
        port = 8080
        if args.config:
            from bibbox.daemon.config_file import load_or_exit
            port = load_or_exit(args.config).web.kiosk_port
        url = f"http://127.0.0.1:{port}"
    try:
        data = fetch_status(url, timeout=args.timeout)
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(f"bibbox status: no daemon answers at {url} ({reason}); "
              "is it running? (systemctl status bibbox)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(render_status(data, url, every=args.every))
    return 3 if problems(data) else 0


def problems(data):
    """Alarms and unhealthy parts in a /api/status answer."""
    out = []
    state = data.get("state") or {}
    for a in state.get("alarms") or []:
        out.append(alarm_text(a))
    health = data.get("health") or {}
    if health.get("controller") is False:
        out.append("controller not turning")
    if health.get("reader") is False:
        out.append("card reader offline")
    link = health.get("link")
    if isinstance(link, dict) and not link.get("connected"):
        out.append("central link disconnected")
    if isinstance(link, dict):
        out.extend(link.get("unhealthy") or [])   # what fails the watchdog, too
    return out


def alarm_text(a):
    where = (f" (compartment {a['compartment']})" if a.get("compartment") else
             f" (board {a['board']})" if a.get("board") else "")
    return a.get("alarm", "?") + where


def needs_a_look(c):
    """A compartment with an alarm, a door not shut, a lock released or a
    state other than free or ready."""
    return bool(c.get("alarms")) or c.get("door") != "closed" or c.get("lock") != "locked" \
        or c.get("state") not in USUAL_STATES


def _tally(values):
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(f"{n} {str(v).replace('_', ' ')}"
                     for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def render_status(data, url, every=False):
    """The answer for a person: health, alarms, and the compartments (every
    one up to ``FULL_TABLE_MAX`` or with ``every``; else counts and those
    that need a look)."""
    state = data.get("state") or {}
    health = data.get("health") or {}
    link = health.get("link")
    reader = health.get("reader")
    lines = [f"bibbox at {url}: locker {state.get('locker_id', '?')}"]

    def row(name, value):
        lines.append(f"  {name:<11} {value}")

    row("controller", {True: "ok", False: "NOT TURNING", None: "?"}.get(
        health.get("controller"), "?"))
    row("reader", {True: "online", False: "OFFLINE", None: "not configured"}.get(reader, "?"))
    if isinstance(link, dict):
        text = "connected" if link.get("connected") else "DISCONNECTED"
        if link.get("broker"):
            text += f" ({link['broker']})"
        if link.get("last_error") and not link.get("connected"):
            text += f": {link['last_error']}"
        row("central", text)
    else:
        row("central", "not configured")
    depth = data.get("outbox_depth")
    row("outbox", f"{depth} event(s) waiting" if depth is not None else "?")
    boards = health.get("boards") or {}
    if boards:
        silent = sorted(name for name, online in boards.items() if not online)
        row("boards", f"{len(boards) - len(silent)} of {len(boards)} answering"
            + (f"; SILENT: {', '.join(silent)}" if silent else ""))
    alarms = [alarm_text(a) for a in state.get("alarms") or []]
    row("alarms", ", ".join(alarms) if alarms else "none")
    comps = state.get("compartments") or []
    if not comps:
        return "\n".join(lines)
    shown = comps
    if not every and len(comps) > FULL_TABLE_MAX:
        row("doors", f"{len(comps)}: " + _tally(c.get("door", "?") for c in comps))
        row("states", _tally(c.get("state", "?") for c in comps))
        shown = [c for c in comps if needs_a_look(c)]
        row("attention", f"{len(shown) or 'none'} of {len(comps)} compartments need a look"
            " (every one: bibbox status --all)")
    if shown:
        lines.append(f"  {'#':>4}  {'size':<4}  {'state':<14} {'door':<7} {'lock':<8} alarms")
        for c in shown:
            lines.append(f"  {c.get('number', '?'):>4}  {str(c.get('size', '')):<4}  "
                         f"{c.get('state', '?'):<14} {c.get('door', '?'):<7} "
                         f"{c.get('lock', '?'):<8} " + (", ".join(c.get("alarms") or []) or "-"))
    return "\n".join(lines)
