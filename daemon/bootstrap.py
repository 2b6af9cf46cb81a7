"""The one module that knows every adapter: it builds a running locker.

:class:`Daemon` turns a validated :class:`~locker.config.Config` into the
controller, the store, the hardware adapters (or the simulator), the card
reader, the web servers and, when configured, the central link.  Start and
stop are symmetric, and every relay is off after both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
import os
import threading
import uuid

from bibbox.locker import __version__
from bibbox.locker.domain.clock import SystemClock
from bibbox.locker.app.controller import Controller
from bibbox.locker.app.local_verifier import LocalVerifier
from bibbox.locker.domain import messages as msg
from bibbox.locker.domain.core import Locker
from bibbox.locker.domain.identity import KeyedHasher
from bibbox.daemon.printing import build_printer
from bibbox.daemon.secrets import load_site_key
from bibbox.locker.store import Store

log = logging.getLogger("bibbox.daemon")


def relay_specs(cfg):
    """The GPIO relays (compartments on a bus have none)."""
    from bibbox.hal.relays import RelaySpec
    return {c.number: RelaySpec(c.relay_pin, cfg.hardware.relay_active_high)
            for c in cfg.compartments if not c.bus}


def door_specs(cfg):
    from bibbox.hal.doors import DoorSpec
    return {c.number: DoorSpec(c.door_pin, cfg.hardware.door_closed_when_low)
            for c in cfg.compartments if not c.bus}


def item_specs(cfg):
    """Optional GPIO item sensors: pulled low ("closed") while an item is inside."""
    from bibbox.hal.doors import DoorSpec
    return {c.number: DoorSpec(c.item_pin, True)
            for c in cfg.compartments if not c.bus and c.item_pin >= 0}


DATABASE_FILE = "bibbox.db"


def database_path(cfg):
    return os.path.join(cfg.locker.state_dir, DATABASE_FILE)


def open_staff_accounts(state_dir, *, clock=None):
    """The staff page's accounts in ``<state_dir>/staff.db`` (migrated),
    keyed with the staff secret ``<state_dir>/staff-secret`` (made on first
    use; ``.secret`` of the result).  The daemon and ``bibbox staff`` open
    them the same way."""
    from bibbox.daemon.secrets import load_or_create_staff_secret
    from bibbox.locker.store.accounts import AccountStore
    from bibbox.web.staff.accounts import Accounts
    secret = load_or_create_staff_secret(state_dir)
    return Accounts(AccountStore.in_state_dir(state_dir), clock=clock, secret=secret)


LOCK_NAME = "bibbox.lock"


def lock_path(cfg):
    return os.path.join(cfg.locker.state_dir, LOCK_NAME)


def state_lock(cfg, what="bibbox"):
    """Take the locker's lock file (``<state_dir>/bibbox.lock``) or raise
    HardwareError naming who holds it.  One process owns the pins and the
    database: the daemon, or ``bibbox selftest``.  Returns the open fd; the
    lock goes with it (and with the process, however it ends).  A POSIX
    record lock, so a second Daemon *in the same process* (tests) is not
    refused."""
    import fcntl

    from bibbox.locker.domain.errors import HardwareError
    path = lock_path(cfg)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:   # a read-only or foreign state dir: the store will say more
        log.warning("cannot open the lock file %s (%s); running without it", path, exc)
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        raise HardwareError(f"{path} is held by another process ({holder or 'unknown'}); "
                            "stop it first (sudo systemctl stop bibbox)") from None
    try:
        if os.geteuid() == 0:   # root (selftest by sudo): keep it usable by the daemon user
            info = os.stat(directory)
            os.fchown(fd, info.st_uid, info.st_gid)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} pid {os.getpid()}\n".encode(), 0)
    except OSError:
        pass                     # a full disk: the lock itself still holds
    return fd


def build_central_link(cfg, *, controller, store, clock, version, boot_id, url=None):
    """The central link (built, not started), with its secrets and stores
    made here: the MQTT credentials read from ``mqtt.credentials_file``,
    the command answer book in ``<state_dir>/bibbox.central.db``, the
    outbox through ``store``.  Raises ConfigError/SecretError."""
    from bibbox.central.link import CentralLink
    from bibbox.daemon.secrets import read_mqtt_credentials
    from bibbox.locker.store.central import CENTRAL_DB, AnswerStore
    credentials = (read_mqtt_credentials(cfg.mqtt.credentials_file)
                   if cfg.mqtt.credentials_file else None)
    answers = AnswerStore(os.path.join(cfg.locker.state_dir, CENTRAL_DB))
    return CentralLink(cfg, controller=controller, store=store, answers=answers, clock=clock,
                       version=version, boot_id=boot_id, url=url, credentials=credentials)


def open_pin_factory(cfg):
    """``(pin factory, simulator or None)``: the simulator's mock pins on a
    simulated locker, else the Pi's factory in gpiozero's order (never mock)."""
    if cfg.locker.simulated:
        from bibbox.hal.simulator import SimulatedHardware
        simulator = SimulatedHardware(cfg)
        return simulator.factory, simulator
    from bibbox.hal.pins import open_real_pin_factory
    factory, _ = open_real_pin_factory(cfg.hardware.pin_factory)
    return factory, None


@dataclass
class LockHardware:
    """A locker's lock drivers (GPIO pins and buses of lock boards) as one
    :class:`~bibbox.hal.lockdrivers.LockDrivers`, ``locks``; ``relays`` and
    ``doors`` name the same object.  :meth:`close` switches every GPIO
    relay off before it releases anything, and sends nothing to a board."""
    pin_factory: object
    simulator: object | None
    locks: object | None = None
    parts: list = field(default_factory=list)

    @property
    def relays(self):
        return self.locks

    @property
    def doors(self):
        return self.locks

    def close(self):
        if self.locks is not None:
            self.locks.close()
        else:
            for part in self.parts:     # a build that failed half-way
                try:
                    part.close()
                except Exception:
                    log.exception("closing %s failed", type(part).__name__)
        if self.simulator is not None:
            self.simulator.close()
        elif self.pin_factory is not None:
            try:
                self.pin_factory.close()
            except Exception:
                log.exception("closing the pin factory failed")


def _quiet_callback(callback, default):
    return callback if callback is not None else default


def build_lock_hardware(cfg, *, on_fired=None, on_released=None, on_door_change=None,
                        on_item=None, on_board=None):
    """The lock drivers of ``cfg``: the one place they are built (the
    daemon, ``bibbox selftest``).  GPIO relays and sensors for compartments
    on pins, a :class:`~bibbox.hal.kerong.KerongBus` or
    :class:`~bibbox.hal.modbus.ModbusBus` per ``[[buses]]``.  Every relay
    starts off; if building fails, whatever was built is closed again
    (relays off first) before the error is raised."""
    from bibbox.hal.lockdrivers import LockDrivers
    on_fired = _quiet_callback(on_fired, lambda compartment, pulse_s: None)
    on_released = _quiet_callback(on_released, lambda compartment: None)
    on_door_change = _quiet_callback(on_door_change, lambda compartment, is_open: None)
    on_item = _quiet_callback(on_item, lambda compartment, present: None)
    on_board = _quiet_callback(on_board, lambda board, online, compartments: None)
    gpio = relay_specs(cfg)
    needs_pins = gpio or cfg.locker.simulated or cfg.keypad.kind == "matrix"
    factory, simulator = open_pin_factory(cfg) if needs_pins else (None, None)
    hardware = LockHardware(factory, simulator)
    try:
        if gpio:
            hardware.parts.append(_build_gpio(cfg, factory, on_fired, on_released,
                                              on_door_change, on_item, hardware.parts))
        kerong = []                         # their first rounds run side by side
        for bus in cfg.buses:
            port = simulator.bus_path(bus.name) if simulator is not None else bus.port
            hardware.parts.append(_build_bus(cfg, bus, port, on_fired=on_fired,
                                             on_released=on_released,
                                             on_door_change=on_door_change,
                                             on_item=on_item, on_board=on_board))
            if bus.kind == "kerong":
                kerong.append(hardware.parts[-1])
        for part in kerong:
            part.wait_first_round()
        hardware.locks = LockDrivers(hardware.parts)
    except BaseException:
        hardware.close()
        raise
    if simulator is not None:
        simulator.close_all_doors()
    return hardware


def _build_gpio(cfg, factory, on_fired, on_released, on_door_change, on_item, built):
    from bibbox.hal.doors import DoorSensors
    from bibbox.hal.lockdrivers import GpioLocks
    from bibbox.hal.relays import RelayBank
    parts = []
    try:
        parts.append(RelayBank(relay_specs(cfg), factory, max_pulse_s=cfg.timing.pulse_s,
                               max_coils=cfg.timing.max_coils, on_fired=on_fired,
                               on_released=on_released))
        parts.append(DoorSensors(door_specs(cfg), factory,
                                 bounce_s=cfg.hardware.door_bounce_s or None,
                                 on_change=on_door_change))
        items = item_specs(cfg)
        if items:
            parts.append(DoorSensors(items, factory, bounce_s=cfg.hardware.door_bounce_s or None,
                                     on_change=lambda c, empty: on_item(c, not empty)))
    except BaseException:
        built.extend(parts)      # closed by the caller, relays first
        raise
    return GpioLocks(*parts)


def _build_bus(cfg, bus, port, **callbacks):
    mine = [c for c in cfg.compartments if c.bus == bus.name]
    if bus.kind == "kerong":
        from bibbox.hal.kerong import KerongBus
        return KerongBus(bus.name, port, {c.number: (c.board, c.lock) for c in mine},
                         baudrate=bus.baudrate, poll_s=bus.poll_s,
                         idle_poll_s=bus.idle_poll_s, timeout_s=bus.timeout_s,
                         retries=bus.retries, hook_open_level=bus.hook_open_level,
                         item_present_level=bus.item_present_level,
                         item_sensors=bus.item_sensors, pulse_s=cfg.timing.pulse_s,
                         boards=bus.boards, wait=False, **callbacks)
    from bibbox.hal.modbus import ModbusBus
    return ModbusBus(bus.name, port,
                     {c.number: (c.unit, c.coil, c.input) for c in mine},
                     baudrate=bus.baudrate, poll_s=bus.poll_s, idle_poll_s=bus.idle_poll_s,
                     timeout_s=bus.timeout_s, retries=bus.retries,
                     input_open_level=bus.input_open_level,
                     max_pulse_s=cfg.timing.pulse_s, max_coils=cfg.timing.max_coils,
                     units=bus.boards, **callbacks)


class Daemon:
    """A whole locker.  ``site_key`` overrides the configured secret (the
    demo generates its own); ``mqtt_url`` enables the central link."""

    def __init__(self, cfg, *, clock=None, site_key=None, mqtt_url=None,
                 kiosk_port=None, serve_web=True):
        self.cfg = cfg
        self._lock_fd = state_lock(cfg, "bibbox daemon")
        self.clock = clock or SystemClock()
        self.boot_id = uuid.uuid4().hex[:12]
        self.hasher = KeyedHasher(site_key if site_key is not None else load_site_key(cfg))
        self.store = Store(database_path(cfg), clock=self.clock)
        self.controller = Controller(self.clock)
        self.simulator = None
        self.reader = None
        self.keypad = None      # the optional PIN pad: started with start(), stop()s
        self.link = None
        self.servers = []
        self.mqtt_url = mqtt_url
        self.kiosk_port = kiosk_port if kiosk_port is not None else cfg.web.kiosk_port
        self.serve_web = serve_web
        self.ready = threading.Event()   # set when start() has finished
        self.hardware = None
        self.sealer = self.loan_worker = None     # a library system's circulation
        self.library_loading = None               # ... and loading by item
        try:
            self._build_hardware()
            self.link = self._build_link()
            self.verifier = self._build_verifier()
            self.locker = Locker(cfg, clock=self.clock, store=self.store, hasher=self.hasher,
                                 verifier=self.verifier, relays=self.relays,
                                 post=self.controller.post,
                                 publish=self.controller.board.publish,
                                 sealer=self.sealer)
        except BaseException:
            self._abandon()   # a broken MQTT secret, say: every relay off again
            raise
        self.controller.attach(self.locker)
        self.printer = build_printer(cfg, store=self.store, clock=self.clock,
                                     post=self.controller.post)
        self._printing = False

    def _abandon(self):
        """Undo a construction that failed half-way (relays off first)."""
        if self.hardware is not None:
            self.hardware.close()
        self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- building ------------------------------------------------------------------
    # -- what the hardware reports, posted to the controller as messages ------------
    def _relay_fired(self, compartment, pulse_s):
        self.controller.post(msg.RelayFired(compartment, pulse_s))

    def _relay_released(self, compartment):
        self.controller.post(msg.RelayReleased(compartment))

    def _door_changed(self, compartment, is_open):
        self.controller.post(msg.DoorChanged(compartment, is_open))

    def _item_sensed(self, compartment, present):
        self.controller.post(msg.ItemSensed(compartment, present))

    def _board_online(self, board, online, compartments):
        self.controller.post(msg.BoardOnline(board, online, tuple(compartments)))

    def _card_read(self, card):
        self.controller.post(msg.CardRead(card))

    def _reader_online(self, online):
        self.controller.post(msg.ReaderOnline(online))

    def _reader_garbled(self, reason):
        self.controller.post(msg.ReaderGarbled(reason))

    def _build_hardware(self):
        hardware = build_lock_hardware(self.cfg, on_fired=self._relay_fired,
                                       on_released=self._relay_released,
                                       on_door_change=self._door_changed,
                                       on_item=self._item_sensed,
                                       on_board=self._board_online)
        self.hardware = hardware
        self.simulator, self.pin_factory = hardware.simulator, hardware.pin_factory
        self.relays, self.doors = hardware.relays, hardware.doors

    def _build_link(self):
        """The central link when MQTT is on, else None; started by :meth:`start`."""
        if not (self.mqtt_url or self.cfg.mqtt.enabled):
            return None
        return build_central_link(self.cfg, controller=self.controller, store=self.store,
                                  clock=self.clock, version=__version__,
                                  boot_id=self.boot_id, url=self.mqtt_url)

    def _build_verifier(self):
        kind = self.cfg.verifier.kind
        if kind == "central":
            from bibbox.central.verifier import CentralVerifier
            verifier = CentralVerifier(self.cfg, clock=self.clock, port=self.link)
            if self.link is not None:
                self.link.route_verdicts(verifier.on_verdict, closed=verifier.close)
            return verifier
        if kind in ("sip2", "fbs"):
            from bibbox.daemon.cli_library import library_circulation
            verifier, self.sealer, self.loan_worker = library_circulation(
                self.cfg, store=self.store, post=self.controller.post)
            self.store.on_commit.append(self.loan_worker.wake)
            from bibbox.daemon.cli_library import library_client
            from bibbox.library.catalogue import LibraryCatalogue
            from bibbox.locker.app.library_loading import LibraryLoading
            self.library_loading = LibraryLoading(
                self.controller, LibraryCatalogue(library_client(self.cfg)))
            return verifier
        return LocalVerifier(self.store, self.hasher, self.clock,
                             timezone=self.cfg.locker.timezone)

    def _build_reader(self):
        cfg = self.cfg.reader
        if not cfg.enabled:
            return None
        from bibbox.hal.cardreader import SerialCardReader, make_framing
        options = {"inter_char_timeout_s": cfg.inter_char_timeout_s}
        if cfg.framing == "barcode":
            options.update(suffix=cfg.suffix, prefix=cfg.prefix, strip_aim=cfg.strip_aim)
        port = self.simulator.reader_path if self.simulator else cfg.port
        return SerialCardReader(port, cfg.baudrate, make_framing(cfg.framing, **options),
                                on_card=self._card_read,
                                on_online=self._reader_online,
                                on_garbled=self._reader_garbled,
                                repeat_window_s=cfg.repeat_window_s)

    def _build_keypad(self):
        """The optional physical PIN pad; started, or None."""
        kind = self.cfg.keypad.kind
        if kind == "none":
            return None
        from bibbox.hal.keypad import MatrixKeypad, PinPad, serial_keypad
        pad = PinPad(self.controller.post)
        if kind == "serial":
            keypad = serial_keypad(self.cfg.keypad.port, self.cfg.keypad.baudrate, pad)
            keypad.start()
            return keypad
        return MatrixKeypad(self.cfg.keypad.row_pins, self.cfg.keypad.col_pins,
                            self.pin_factory, pad)

    # -- running -------------------------------------------------------------------
    def start(self):
        """Read the doors, recover, then start every thread.  Returns, and
        sets ``ready`` for other threads, once the doors are read, the store
        is open and the kiosk serves (systemd's READY=1 follows)."""
        self.locker.start(self.doors.read_all(), self.doors.items())
        self.locker.flush()
        self.controller.start()
        self.reader = self._build_reader()
        if self.reader:
            self.reader.start()
        self.keypad = self._build_keypad()
        if self.link is not None:
            self.link.start()
        if self.loan_worker is not None:
            self.loan_worker.start()
        if self.printer is not None:
            self.printer.start()
            self._printing = True
        if self.serve_web:
            self._start_web()
        self.ready.set()
        log.info("bibbox %s running (boot %s)%s", __version__, self.boot_id,
                 " in simulation" if self.simulator else "")

    def _start_web(self):
        from bibbox.web.app import create_app
        from bibbox.web.serving import WebServer, proxy_settings
        cfg = self.cfg

        def make(parts, **kwargs):
            try:
                if "staff" in parts:
                    accounts = open_staff_accounts(cfg.locker.state_dir, clock=self.clock)
                    kwargs.update(staff_accounts=accounts, staff_secret=accounts.secret)
                return create_app(controller=self.controller, cfg=cfg, parts=parts, **kwargs)
            except Exception as exc:   # e.g. its account database on a full or read-only disk
                if "staff" not in parts:
                    raise
                log.critical("the staff page could not start (%s: %s); serving without it",
                             type(exc).__name__, exc)
                rest = tuple(p for p in parts if p != "staff")
                kwargs.pop("staff_accounts", None)
                kwargs.pop("staff_secret", None)
                return make(rest, **kwargs) if rest else None

        if cfg.locker.simulated:
            apps = [(make(("kiosk", "sim", *self._staff_part()), simulator=self.simulator),
                     "127.0.0.1", self.kiosk_port)]
        else:
            apps = [(make(("kiosk", "sim")), "127.0.0.1", self.kiosk_port)]
            if self._staff_part():
                apps.append((make(("staff",)), cfg.web.staff_bind, cfg.web.staff_port))
        for app, host, port in apps:
            if app is None:
                continue
            app.extensions["bibbox"]["daemon"] = self
            app.extensions["bibbox"]["library_loading"] = self.library_loading
            staff_served = "staff" in app.blueprints
            server = WebServer(app, host, port,
                               proxy=proxy_settings(cfg.web) if staff_served else None)
            server.start()
            self.servers.append(server)

    def _staff_part(self):
        try:
            import bibbox.web.staff  # noqa: F401  (issue 3)
        except ImportError:
            return ()
        return ("staff",)

    @property
    def port(self):
        return self.servers[0].port if self.servers else None

    def stop(self):
        """Stop everything; every relay ends off, whatever happened."""
        log.info("stopping")
        self.controller.board.close()          # answer every waiting long poll now
        for server in self.servers:
            try:
                server.stop()
            except Exception:
                log.exception("stopping the web server failed")
        if self.reader:
            self.reader.stop()
        if self.keypad is not None:
            self.keypad.stop()
        if self.link:
            self.link.stop()
        if self.loan_worker is not None:
            self.loan_worker.stop()
            self.verifier.close()        # the library verifier's worker and connection
        if self.library_loading is not None:
            self.library_loading.catalogue.close()   # loading's own connection
        if self._printing:
            self.printer.stop()
        self.controller.stop()
        self.hardware.close()                   # every relay off, then the pins released
        self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("stopped; all relays off")

    def health(self):
        """For the watchdog and ``bibbox status``."""
        import time
        beat = self.controller.healthy_at
        return {"controller": beat is not None and time.monotonic() - beat < 90,
                "reader": self.reader.online if self.reader else None,
                "boards": self.hardware.locks.health() if self.hardware else {},
                "link": self.link.health() if self.link else None,
                "library": None if self.loan_worker is None else
                self.loan_worker.reachability.online is not False}
