"""The ``bibbox`` command.

    bibbox demo [--port 8080] [--state-dir DIR] [--mqtt mqtt://HOST:PORT] [--config FILE]
                [--ils sip2|fbs]
    bibbox run --config FILE
    bibbox check-config FILE
    bibbox patrons import FILE.csv --config FILE
    bibbox keygen FILE
    bibbox staff add|list|remove|passwd|unlock ...
    bibbox firmware config-txt --config FILE
    bibbox selftest --config FILE [--compartment N]
    bibbox safe-off --config FILE
    bibbox status [--config FILE | --url URL]

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading

from bibbox.locker import __version__
from bibbox.locker.domain import config as config_mod
from bibbox.daemon.cli_library import add_library_commands
from bibbox.daemon.cli_ops import add_ops_commands
from bibbox.daemon.config_file import load as load_config, load_or_exit
from bibbox.daemon.cli_staff import add_staff_commands
from bibbox.locker.domain.errors import BibboxError, ConfigError

log = logging.getLogger("bibbox")

# A thread that wants the interpreter gets it within this long (Python's
# default is 5 ms): the controller, a bus thread reading an unlock's reply
# or a board simulator are not held back by a web or MQTT thread building
# a big state view.  No cost while only one thread runs.
SWITCH_INTERVAL_S = 0.0005

def demo_config_path():
    """The demo configuration shipped as package data (``config/demo.toml``)."""
    from importlib.resources import files
    return str(files("bibbox.config").joinpath("demo.toml"))


DEMO_CONFIG = demo_config_path()

# Made-up demo patrons (shown only on the simulator page).
DEMO_PATRONS = [
    {"name": "Karen Demo", "card": "0101709999", "pin": "1234", "kind": "sundhedskort"},
    {"name": "Ole Prøve", "card": "BIB0004711", "pin": "4321", "kind": "lånerkort"},
    {"name": "Mette Spærret", "card": "0202809998", "pin": "1111", "kind": "sundhedskort",
     "block_reason": "fees"},
    {"name": "Ny Låner", "card": "BIB0000001", "pin": "2468", "kind": "lånerkort"},
]
DEMO_HOLDS = [
    ("D-1001", 0, 1, [("9788702173550", "Kaffe og kage"), ("9788711909959", "Havens fugle")]),
    ("D-1002", 0, 3, [("9788740062229", "Kort over Danmark")]),
    ("D-1003", 1, 2, [("9788763858007", "Mord i Gladsaxe")]),
    ("D-1004", 1, 5, [("5709498000011", "Brætspil: Fyrtøjet")]),
]


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (journald reads stdout), so a
    replaced or closed stream (tests, reloads) never breaks logging."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(level="INFO"):
    handler = _StdoutHandler()
    from bibbox.daemon.systemd import log_formatter   # blanks anything CPR-shaped; journald priorities
    handler.setFormatter(log_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("waitress").setLevel(logging.WARNING)


def _run_until_signal(daemon):
    """Run ``daemon`` until SIGTERM/SIGINT; stop it cleanly; return 0."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        daemon.start()
    except (BibboxError, OSError) as exc:
        # Whatever the start had begun (controller, reader, link, relays) is
        # stopped, and every relay driven off, before we exit.
        daemon.stop()
        print(f"bibbox: could not start: {exc}; stopped, every relay off", file=sys.stderr)
        return 1
    except BaseException:
        daemon.stop()
        raise
    # What start-up built lives as long as the process: keep it out of the
    # cyclic collector's scans, so a full collection (which holds every
    # thread, an unlock's too) walks only what was made since.  The price:
    # start-up objects that later become cyclic garbage are never freed.
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        from bibbox.daemon.systemd import notify_ready, watchdog_loop
        notify_ready()
        watchdog_loop(daemon, stop)
    except ImportError:
        stop.wait()
    finally:
        daemon.stop()
    return 0


def cmd_check_config(args):
    cfg = load_or_exit(args.file)
    from bibbox.daemon.secrets import site_key_source
    kind, where = site_key_source(cfg)
    problems = []
    if kind is None and not cfg.locker.simulated:
        problems.append("secrets.site_key_file: no site key configured")
    elif kind == "file" and not os.path.exists(where):
        problems.append(f"secrets.site_key_file: {where} does not exist")
    if problems:
        print(ConfigError(problems), file=sys.stderr)
        return 2
    if cfg.locker.simulated:
        pins = "simulated"
    else:
        from bibbox.hal.pins import choose_pin_factory
        try:
            names, source = choose_pin_factory(cfg.hardware.pin_factory)
        except BibboxError as exc:
            print(f"{args.file}: {exc}", file=sys.stderr)
            return 2
        if "mock" in names:
            print(f"{args.file}: pin factory 'mock' ({source}) on a locker that is not "
                  "simulated", file=sys.stderr)
            return 2
        pins = f"{' or '.join(names)}, {source}"
    print(f"{args.file}: ok ({len(cfg.compartments)} compartments, "
          f"reader {cfg.reader.framing}, pins {pins})")
    if cfg.verifier.pickup_number_with_pin:
        print(f"  pickup without the card: pickup number + PIN, checked by the "
              f"{cfg.verifier.kind} verifier")
    from bibbox.locker.domain.buses import bus_map
    for line in bus_map(cfg):
        print(f"  {line}")
    return 0


def cmd_run(args):
    cfg = load_or_exit(args.config)
    from bibbox.daemon.bootstrap import Daemon
    return _run_until_signal(Daemon(cfg))


def demo_daemon(state_dir, port=8080, mqtt_url=None, clock=None, config=None, ils=None):
    """Build the simulated locker (``config``, default the shipped demo),
    seeding demo patrons and holds on first run.  ``ils`` (``"sip2"`` or
    ``"fbs"``): against the embedded test library system instead (its
    patrons and holds; nothing seeded locally; see
    :mod:`bibbox.daemon.demo_ils`)."""
    from bibbox.daemon.secrets import create_site_key, read_secret_file, _decode
    from bibbox.daemon.bootstrap import Daemon
    cfg = load_config(config or DEMO_CONFIG)
    if not cfg.locker.simulated:
        raise ConfigError([f"{cfg.source}: locker.simulated: the demo runs simulated "
                           "lockers only"])
    cfg = config_mod.replace(cfg, locker={"state_dir": os.path.abspath(state_dir)})
    key_path = os.path.join(cfg.locker.state_dir, "site-key")
    if not os.path.exists(key_path):
        create_site_key(key_path)
    key = _decode(read_secret_file(key_path, "site key"), key_path)
    if ils is not None:
        from bibbox.daemon.demo_ils import library_demo_daemon
        return library_demo_daemon(cfg, ils, site_key=key, mqtt_url=mqtt_url,
                                   kiosk_port=port, clock=clock)
    daemon = Daemon(cfg, site_key=key, mqtt_url=mqtt_url, kiosk_port=port, clock=clock)
    daemon.simulator.patrons = [{k: v for k, v in p.items()} for p in DEMO_PATRONS]
    _seed_demo(daemon)
    for hold in daemon.store.active_holds():    # item sensors see what the demo put in
        if hold.compartment is not None and hold.state.in_locker:
            daemon.simulator.set_item(hold.compartment, True)
    return daemon


def _seed_demo(daemon):
    from bibbox.locker.domain.identity import CardNumber
    from bibbox.locker.domain.model import Hold, HoldState, Item
    from bibbox.locker.domain.patrons import import_patrons
    store = daemon.store
    if store.meta("demo_seeded"):
        return
    rows = "\n".join(f"{p['card']},{p['pin']},{p.get('block_reason', '')}"
                     for p in DEMO_PATRONS)
    import_patrons(store, daemon.hasher, "card,pin,block_reason\n" + rows + "\n")
    wall = daemon.clock.wall()
    holds = []
    for hold_id, patron, compartment, items in DEMO_HOLDS:
        holds.append(Hold(
            id=hold_id, patron_hash=daemon.hasher.patron(CardNumber.parse(
                DEMO_PATRONS[patron]["card"])),
            items=tuple(Item(b, t) for b, t in items),
            pickup_number=hold_id[-3:], deadline=wall + 7 * 86400,
            state=HoldState.READY, compartment=compartment))
    daemon.locker.start(daemon.doors.read_all())
    for hold in holds:
        daemon.locker.place_hold(hold, actor="demo")
    with store.unit() as unit:
        unit.set_meta("demo_seeded", "1")


def cmd_demo(args):
    try:
        daemon = demo_daemon(args.state_dir, port=args.port, mqtt_url=args.mqtt,
                             config=args.config, ils=args.ils)
    except BibboxError as exc:
        print(f"bibbox demo: {exc}", file=sys.stderr)
        return 1
    sim = daemon.simulator
    print(f"Bibbox {__version__}: simulated locker")
    print(f"  kiosk:       http://127.0.0.1:{args.port}/")
    print(f"  simulator:   http://127.0.0.1:{args.port}/sim")
    print(f"  card reader: {sim.reader_path}")
    for name, bus in sim.buses.items():
        print(f"  lock bus {name!r}: {bus.path} (boards {sorted(bus.boards)})")
    if args.ils:
        print(f"  library system (test, {args.ils}): {daemon.test_library.address}")
        print(f"  its patrons (made up), cards, PINs and items: "
              f"http://127.0.0.1:{args.port}/sim")
    else:
        print(f"  demo patrons (made up) and their cards: http://127.0.0.1:{args.port}/sim")
    print(f"  staff:       http://127.0.0.1:{args.port}/staff/  (first: bibbox staff add "
          f"NAME --admin --state-dir {args.state_dir})")
    sys.stdout.flush()
    return _run_until_signal(daemon)


def cmd_patrons_import(args):
    cfg = load_or_exit(args.config)
    from bibbox.locker.domain.clock import SystemClock
    from bibbox.locker.domain.identity import KeyedHasher
    from bibbox.locker.domain.patrons import import_patrons
    from bibbox.daemon.secrets import load_site_key
    from bibbox.locker.store import Store
    from bibbox.daemon.bootstrap import database_path
    store = Store(database_path(cfg), clock=SystemClock())
    try:
        with open(args.file, encoding="utf-8-sig") as fh:
            count = import_patrons(store, KeyedHasher(load_site_key(cfg)), fh.read())
    finally:
        store.close()
    print(f"imported {count} patrons (stored as keyed hashes only)")
    return 0


def cmd_patrons_hash(args):
    """The patron hash of each card number read from standard input, exactly
    as the locker computes it (see PatronHash in docs/asyncapi.yaml).  A line
    that is not a card number is reported by its line number only."""
    cfg = load_or_exit(args.config)
    from bibbox.daemon.secrets import load_site_key
    from bibbox.locker.domain.errors import CardFormatError
    from bibbox.locker.domain.identity import CardNumber, KeyedHasher
    hasher = KeyedHasher(load_site_key(cfg))
    bad = 0
    for line_number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            print(hasher.patron(CardNumber.parse(line)))
        except CardFormatError as exc:
            bad += 1
            print(f"line {line_number}: {exc}", file=sys.stderr)
    return 1 if bad else 0


def cmd_keygen(args):
    from bibbox.daemon.secrets import create_site_key
    create_site_key(args.file)
    print(f"wrote a new site key to {args.file} (mode 0600)")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="bibbox", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"bibbox {__version__}")
    p.add_argument("--log-level", default=os.environ.get("BIBBOX_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("demo", help="run a complete simulated locker")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--state-dir", default="./state")
    s.add_argument("--mqtt", metavar="URL", help="connect to a broker, e.g. mqtt://127.0.0.1:1883")
    s.add_argument("--config", metavar="FILE",
                   help="a simulated locker's configuration, e.g. config/demo-48-rs485.toml")
    s.add_argument("--ils", choices=("sip2", "fbs"), help="against an embedded test library "
                   "system (plain SIP2, or FBS's HTTPS dialect); needs bibbox[ils-demo]")
    s.set_defaults(func=cmd_demo)
    s = sub.add_parser("run", help="run the locker daemon")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("check-config", help="validate a configuration file")
    s.add_argument("file")
    s.set_defaults(func=cmd_check_config)
    s = sub.add_parser("patrons", help="manage the local patron list")
    psub = s.add_subparsers(dest="patrons_command", required=True)
    s = psub.add_parser("import", help="import card,pin[,block_reason] rows from CSV")
    s.add_argument("file")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_patrons_import)
    s = psub.add_parser("hash", help="card numbers on standard input, one a line; their "
                        "patron hashes on standard output (for the central system)")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_patrons_hash)
    s = sub.add_parser("keygen", help="create a site key file (mode 0600)")
    s.add_argument("file")
    s.set_defaults(func=cmd_keygen)
    add_ops_commands(sub)
    add_library_commands(sub)
    add_staff_commands(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level.upper())
    try:
        return args.func(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except BibboxError as exc:
        print(f"bibbox: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
