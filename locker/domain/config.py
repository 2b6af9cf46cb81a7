"""The locker configuration: one TOML file per locker.

The dataclasses below are the schema: each field's type, default and allowed
range live here and nowhere else.  :func:`load` parses a file, rejects
unknown keys, wrong types, out-of-range values and cross-field conflicts, and
raises :class:`ConfigError` listing *every* problem with its key path (for
example ``compartments[3].size: missing``).  Secrets never live in the TOML;
the file only names where they are (see :mod:`locker.secrets`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field

from bibbox.locker.domain.buses import (BUS_KINDS, IDLE_POLL_S, KERONG_LOCKS, NO_CHANNEL,
                                        POLL_S, check_buses)
from bibbox.locker.domain.config_checks import cross_check
from bibbox.locker.domain.errors import ConfigError

# Facts shared with adapters; kept here so the domain need not import them.
# gpiozero's names; "auto" follows gpiozero's detection (lgpio, then rpigpio).
# GPIOZERO_PIN_FACTORY in the environment overrides the file, as in gpiozero.
PIN_FACTORIES = ("auto", "mock", "lgpio", "rpigpio", "native")
READER_FRAMINGS = ("barcode", "magstripe", "rdm6300")
KEYPAD_KINDS = ("none", "serial", "matrix")
VERIFIERS = ("local", "central", "sip2", "fbs")
OFFLINE_POLICIES = ("deny", "pickup-code")
LANGUAGES = ("da", "en", "de", "pl", "uk", "ar")   # the kiosk's catalogues
HARD_MAX_PULSE_S = 5.0


def _opt(default, *, lo=None, hi=None, choices=None, doc=""):
    """A field with its default and what values it may take."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


REQUIRED = dataclasses.MISSING


@dataclass(frozen=True)
class LockerSection:
    id: str = _opt(REQUIRED, doc="unique locker id; also the MQTT topic leaf")
    name: str = _opt("Bibboksen", doc="shown on the kiosk")
    state_dir: str = _opt("/var/lib/bibbox", doc="database and generated keys")
    language: str = _opt("da", choices=LANGUAGES, doc="kiosk default language")
    simulated: bool = _opt(False, doc="virtual doors and /sim endpoints (demo)")
    timezone: str = _opt("Europe/Copenhagen",
                         doc="local days: pickup deadlines end at local midnight")
    help_phone: str = _opt("", doc="the library's phone number, shown on every kiosk "
                           "denial and error screen (free text)")
    help_hours: str = _opt("", doc="the library's opening hours, shown with help_phone "
                           "(free text)")


@dataclass(frozen=True)
class SecretsSection:
    site_key_file: str = _opt("", doc="file with the site key (mode 0600); "
                                  "or env BIBBOX_SITE_KEY_FILE / BIBBOX_SITE_KEY")


@dataclass(frozen=True)
class HardwareSection:
    pin_factory: str = _opt("auto", choices=PIN_FACTORIES,
                            doc="mock only on a simulated locker")
    relay_active_high: bool = _opt(False, doc="relay boards are usually active-low")
    door_closed_when_low: bool = _opt(True, doc="reed switch to ground, pull-up")
    door_bounce_s: float = _opt(0.02, lo=0.0, hi=0.5)


@dataclass(frozen=True)
class TimingSection:
    pulse_s: float = _opt(0.8, lo=0.05, hi=HARD_MAX_PULSE_S,
                          doc="how long a lock coil is energised per unlock")
    max_coils: int = _opt(1, lo=1, hi=8, doc="coils energised at once at most")
    pin_timeout_s: float = _opt(30.0, lo=5.0, hi=300.0)
    door_open_timeout_s: float = _opt(8.0, lo=1.0, hi=60.0,
                                      doc="unlock with no door movement: jammed")
    door_held_open_s: float = _opt(120.0, lo=10.0, hi=3600.0)
    flap_edges: int = _opt(12, lo=4, hi=1000)
    flap_window_s: float = _opt(10.0, lo=1.0, hi=600.0)
    kiosk_idle_s: float = _opt(45.0, lo=10.0, hi=600.0)
    close_door_s: float = _opt(45.0, lo=10.0, hi=600.0,
                               doc="kiosk: the countdown to close an open door; at zero "
                               "the receipt shows (the held-open alarm is door_held_open_s)")
    reopen_window_s: float = _opt(60.0, lo=0.0, hi=300.0,
                                  doc="after the doors close, the same card opens them "
                                  "again this long (forgotten items); 0 turns it off")
    pin_tries: int = _opt(3, lo=1, hi=10)
    pin_block_minutes: float = _opt(15.0, lo=1.0, hi=1440.0)
    expiry_check_s: float = _opt(60.0, lo=1.0, hi=3600.0)
    item_grace_s: float = _opt(2.0, lo=0.2, hi=30.0,
                               doc="item sensors: how long a sensor may take to report "
                               "after a door closes, and how long an item must be seen "
                               "before it counts as left behind or unexpected")


@dataclass(frozen=True)
class ReaderSection:
    enabled: bool = _opt(True)
    port: str = _opt("/dev/bibbox-reader", doc="device path or pyserial URL")
    baudrate: int = _opt(9600, lo=1200, hi=921600)
    framing: str = _opt("barcode", choices=READER_FRAMINGS)
    suffix: str = _opt("\r", doc="barcode line terminator")
    prefix: str = _opt("")
    strip_aim: bool = _opt(True)
    repeat_window_s: float = _opt(2.0, lo=0.0, hi=60.0)
    inter_char_timeout_s: float = _opt(0.3, lo=0.01, hi=5.0)


@dataclass(frozen=True)
class KeypadSection:
    kind: str = _opt("none", choices=KEYPAD_KINDS)
    port: str = _opt("", doc="serial keypad port")
    baudrate: int = _opt(9600, lo=1200, hi=921600)
    row_pins: list = _opt([], doc="matrix keypad rows (GPIO numbers)")
    col_pins: list = _opt([], doc="matrix keypad columns (GPIO numbers)")


@dataclass(frozen=True)
class WebSection:
    kiosk_port: int = _opt(8080, lo=1, hi=65535, doc="kiosk answers on 127.0.0.1")
    staff_bind: str = _opt("127.0.0.1", doc="address the staff page listens on")
    staff_port: int = _opt(8081, lo=1, hi=65535)
    trusted_proxy: str = _opt("127.0.0.1", doc="the reverse proxy (one IP address) whose "
                              "X-Forwarded-* headers the staff page believes; \"\" for none")
    trusted_proxy_headers: list = _opt(["x-forwarded-for", "x-forwarded-proto"],
                                       doc="headers believed from trusted_proxy")


@dataclass(frozen=True)
class HoldsSection:
    sizes: list = _opt(["S", "M", "L"], doc="compartment sizes, smallest first")
    pickup_days: float = _opt(7.0, lo=1.0, hi=60.0)
    share_compartments: bool = _opt(False)


@dataclass(frozen=True)
class VerifierSection:
    kind: str = _opt("local", choices=VERIFIERS)
    timeout_s: float = _opt(3.0, lo=0.5, hi=30.0)
    offline_policy: str = _opt("deny", choices=OFFLINE_POLICIES)
    pickup_number_with_pin: bool = _opt(False, doc="the kiosk also offers pickup without "
                                        "the card: the hold's pickup number and the PIN "
                                        "(local or central verifier only)")


@dataclass(frozen=True)
class LibrarySection:
    """The library system (``verifier.kind = "sip2"`` or ``"fbs"``).
    Credentials live in files named here, never in the TOML."""
    host: str = _opt("", doc="the SIP2 server, or FBS's host")
    port: int = _opt(6001, lo=1, hi=65535, doc="SIP2 port (FBS: 443)")
    tls: bool = _opt(True, doc="TLS, always verified")
    ca_file: str = _opt("", doc="CA file for TLS (default: the system's)")
    trusted_network: bool = _opt(False, doc="allow plain TCP/HTTP: only on a trusted "
                                            "local network (card numbers and PINs)")
    institution: str = _opt("", doc="SIP2 AO; for FBS the agency (DK-<agency>)")
    location: str = _opt("", doc="location code (93 CP, 09 AP)")
    credentials_file: str = _opt("", doc="file with 'user:password' (SIP2 93 login, "
                                         "or FBS's login); or env BIBBOX_LIBRARY_CREDENTIALS"
                                         "_FILE, or systemd credential 'library'")
    terminal_password_file: str = _opt("", doc="file with the terminal password (AC)")
    checksums: bool = _opt(True, doc="AY/AZ error detection (plain SIP2)")
    timeout_s: float = _opt(5.0, lo=0.5, hi=60.0, doc="per message")
    retries: int = _opt(2, lo=0, hi=5)
    fee_limit: float = _opt(200.0, lo=0.0, hi=1e6, doc="kr; used when the library "
                                                       "system sends no CC")
    loan_key_file: str = _opt("", doc="the key that seals queued loans' identities "
                                      "(default <state_dir>/loan-key, made 0600); or env "
                                      "BIBBOX_LOAN_KEY_FILE, or systemd credential 'loan-key'")
    loan_max_wait_h: float = _opt(72.0, lo=0.1, hi=24 * 30, doc="a loan the library "
                                  "system has not taken by then is dropped (alarm)")


@dataclass(frozen=True)
class MqttSection:
    enabled: bool = _opt(False)
    url: str = _opt("mqtt://127.0.0.1:1883")
    topic_root: str = _opt("", doc="default bibbox/<locker.id>")
    heartbeat_s: float = _opt(300.0, lo=5.0, hi=86400.0)
    keepalive_s: int = _opt(300, lo=10, hi=3600,
                            doc="MQTT keepalive: pings are most of an idle locker's 4G "
                                "traffic; the broker declares a silent locker offline "
                                "after 1.5 x this")
    command_session_s: int = _opt(86400, lo=0, hi=604800,
                                  doc="how long the broker keeps the locker's session, and "
                                      "the commands sent to it, while it is offline "
                                      "(MQTT 5 session expiry; 0: none, commands sent "
                                      "meanwhile are lost)")
    ca_file: str = _opt("")
    cert_file: str = _opt("")
    key_file: str = _opt("")
    credentials_file: str = _opt("", doc="file with 'username:password'")
    home_assistant: bool = _opt(False)




@dataclass(frozen=True)
class BusSection:
    """A serial bus of lock boards (``[[buses]]``), named by compartments."""
    name: str = _opt(REQUIRED, doc="what compartments call it in their 'bus' key")
    kind: str = _opt(REQUIRED, choices=BUS_KINDS,
                     doc="kerong: KR-CU16 lock boards; modbus: Modbus RTU relay boards")
    port: str = _opt(REQUIRED, doc="device path or pyserial URL")
    baudrate: int = _opt(19200, lo=1200, hi=921600)
    poll_s: float = _opt(POLL_S, lo=0.01, hi=10.0,
                         doc="a board whose doors move (opened, closed or unlocked in "
                             "the last 5 s, or open) is asked for them this often")
    idle_poll_s: float = _opt(IDLE_POLL_S, lo=0.01, hi=10.0,
                              doc="a board at rest is asked this often (at least poll_s): "
                                  "a door forced while all is quiet is seen this late")
    timeout_s: float = _opt(0.1, lo=0.01, hi=5.0, doc="wait this long for a reply")
    retries: int = _opt(2, lo=0, hi=10, doc="further tries of a request before a "
                                               "board counts as offline")
    hook_open_level: int = _opt(0, lo=0, hi=1, doc="kerong: hook bit level of an open "
                                                  "door (differs between batches)")
    item_present_level: int = _opt(1, lo=0, hi=1, doc="kerong: IR bit level that "
                                                      "means an item is inside")
    item_sensors: bool = _opt(False, doc="kerong: the boards' IR item sensors are fitted "
                                         "(loading, pickup and wrong-compartment checks); "
                                         "false: the IR bits are ignored")
    input_open_level: int = _opt(1, lo=0, hi=1, doc="modbus: discrete input level of "
                                                   "an open door")
    boards: list = _opt([], doc="kerong board numbers / modbus units on the bus; "
                                "when listed, each must have compartments")


@dataclass(frozen=True)
class CompartmentSection:
    """One compartment: on GPIO pins (``relay_pin``/``door_pin``, the
    default), or on a bus: ``board``+``lock`` (kerong) or ``unit``+``coil``
    (+``input``) (modbus)."""
    number: int = _opt(REQUIRED, lo=1, hi=9999)
    size: str = _opt(REQUIRED)
    relay_pin: int = _opt(NO_CHANNEL, lo=0, hi=27)
    door_pin: int = _opt(NO_CHANNEL, lo=0, hi=27)
    item_pin: int = _opt(NO_CHANNEL, lo=0, hi=27, doc="optional GPIO item sensor")
    bus: str = _opt("", doc="name of a [[buses]] entry; empty: GPIO")
    board: int = _opt(NO_CHANNEL, lo=0, hi=15)
    lock: int = _opt(NO_CHANNEL, lo=0, hi=KERONG_LOCKS - 1)
    unit: int = _opt(NO_CHANNEL, lo=1, hi=247)
    coil: int = _opt(NO_CHANNEL, lo=0, hi=65535)
    input: int = _opt(NO_CHANNEL, lo=0, hi=65535)
    column: int = _opt(0, lo=1, hi=64, doc="place in the front: column from 1 at the left")
    row: int = _opt(0, lo=1, hi=64, doc="place in the front: row from 1 at the top")
    rows: int = _opt(1, lo=1, hi=64, doc="rows the door spans")

    @property
    def on_gpio(self):
        return not self.bus


COMPOSITORS = ("auto", "labwc", "wayfire", "none")


@dataclass(frozen=True)
class DisplaySection:
    """The kiosk on the locker's own touch screen (firmware/install.sh)."""
    compositor: str = _opt("auto", choices=COMPOSITORS,
                           doc="labwc (Bookworm), wayfire (older images), none: no screen")
    user: str = _opt("", doc="the desktop user that logs in; default: the first user")
    output: str = _opt("", doc="the screen's output name (wlr-randr), e.g. DSI-1, HDMI-A-1")
    rotation: int = _opt(0, choices=(0, 90, 180, 270), doc="degrees clockwise")
    touch_device: str = _opt("", doc="touch panel name to map onto the output (libinput)")


@dataclass(frozen=True)
class PrinterSection:
    """An optional ESC/POS receipt printer (hal/receipt_printer.py)."""
    enabled: bool = _opt(False, doc="print each patron's receipt")
    port: str = _opt("", doc="serial device or pyserial URL, e.g. /dev/usb/lp0")
    baudrate: int = _opt(9600, lo=1200, hi=921600)


@dataclass(frozen=True)
class Config:
    locker: LockerSection
    compartments: tuple
    secrets: SecretsSection = SecretsSection()
    hardware: HardwareSection = HardwareSection()
    timing: TimingSection = TimingSection()
    reader: ReaderSection = ReaderSection()
    keypad: KeypadSection = KeypadSection()
    web: WebSection = WebSection()
    holds: HoldsSection = HoldsSection()
    verifier: VerifierSection = VerifierSection()
    mqtt: MqttSection = MqttSection()
    display: DisplaySection = DisplaySection()
    library: LibrarySection = LibrarySection()
    printer: PrinterSection = PrinterSection()
    buses: tuple = ()
    source: str = ""

    def bus(self, name):
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(name)

    def compartment(self, number):
        for c in self.compartments:
            if c.number == number:
                return c
        raise KeyError(number)

    @property
    def topic_root(self):
        return self.mqtt.topic_root or f"bibbox/{self.locker.id}"


_SECTION_TYPES = {
    "locker": LockerSection, "secrets": SecretsSection,
    "hardware": HardwareSection, "timing": TimingSection,
    "reader": ReaderSection, "keypad": KeypadSection, "web": WebSection,
    "holds": HoldsSection, "verifier": VerifierSection, "mqtt": MqttSection,
    "display": DisplaySection, "library": LibrarySection, "printer": PrinterSection,
}
_TYPE_NAMES = {bool: "true or false", int: "a whole number",
               float: "a number", str: "text", list: "a list"}


def _check_value(path, value, f, problems):
    """Return ``value`` coerced to the field's type, or None with a problem."""
    want = {"bool": bool, "int": int, "float": float, "str": str,
            "list": list}[f.type if isinstance(f.type, str) else f.type.__name__]
    ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        problems.append(f"{path}: expected {_TYPE_NAMES[want]}, got {value!r}")
        return None
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        problems.append(f"{path}: {value!r} is not one of "
                        + ", ".join(map(repr, meta["choices"])))
        return None
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and value < lo or hi is not None and value > hi:
        problems.append(f"{path}: {value!r} is out of range {lo}..{hi}")
        return None
    return value


def _build(cls, path, table, problems):
    """Build dataclass ``cls`` from ``table``, recording every problem."""
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{path}.{key}: unknown key (known: {known})")
    values, failed = {}, False
    for name, f in fields.items():
        if name in table:
            v = _check_value(f"{path}.{name}", table[name], f, problems)
            failed |= v is None
            values[name] = v
        elif f.default is REQUIRED and f.default_factory is REQUIRED:
            problems.append(f"{path}.{name}: missing")
            failed = True
    return None if failed else cls(**values)


def _valid_fields(cls, table):
    """The fields of ``table`` that passed their own checks, for cross-checks
    that should still run when a sibling field was wrong."""
    if not isinstance(table, dict):
        return {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for name, value in table.items():
        if name in fields and _check_value("", value, fields[name], []) is not None:
            out[name] = value
    return out


def parse(data: dict, source: str = "") -> Config:
    """Validate a parsed TOML document; raise ConfigError with all problems."""
    problems = []
    for key in data:
        if key not in _SECTION_TYPES and key not in ("compartments", "buses"):
            problems.append(f"{key}: unknown section (known: "
                            + ", ".join(sorted([*_SECTION_TYPES, "buses", "compartments"]))
                            + ")")
    sections = {}
    for name, cls in _SECTION_TYPES.items():
        if name in data:
            sections[name] = _build(cls, name, data[name], problems)
        elif name == "locker":
            problems.append("locker: missing section")
        else:
            sections[name] = cls()
    hardware, locker = sections.get("hardware"), sections.get("locker")
    if locker is not None:
        from bibbox.locker.domain.calendar import zone
        try:
            zone(locker.timezone)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if hardware is not None and locker is not None and hardware.pin_factory == "mock" \
            and not locker.simulated:
        problems.append("hardware.pin_factory: 'mock' drives no real pin; only a simulated "
                        "locker (locker.simulated = true) may use it")
    raw = data.get("compartments")
    compartments = []
    if not isinstance(raw, list) or not raw:
        problems.append("compartments: at least one [[compartments]] is needed")
    else:
        for i, table in enumerate(raw):
            compartments.append(
                _build(CompartmentSection, f"compartments[{i}]", table, problems))
    raw_buses = data.get("buses", [])
    buses = []
    if not isinstance(raw_buses, list):
        problems.append("buses: expected [[buses]] tables")
        raw_buses = []
    for i, table in enumerate(raw_buses):
        buses.append(_build(BusSection, f"buses[{i}]", table, problems))
    valid_compartments = ([_valid_fields(CompartmentSection, t) for t in raw]
                          if isinstance(raw, list) else [])
    cross_check(sections, valid_compartments, problems)
    check_buses(sections, [_valid_fields(BusSection, t) for t in raw_buses],
                 valid_compartments, problems)
    if problems:
        raise ConfigError(problems)
    return Config(compartments=tuple(compartments), buses=tuple(buses), source=source,
                  **sections)


def parse_toml(text: str, source: str = "") -> Config:
    """Parse and validate TOML text (the daemon reads the file)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source or 'configuration'}: not valid TOML: {exc}"]) from None
    return parse(data, source=source)


def replace(cfg: Config, **sections) -> Config:
    """A copy of ``cfg`` with sections overridden field by field, e.g.
    ``replace(cfg, locker={"state_dir": d})``."""
    changes = {}
    for name, values in sections.items():
        changes[name] = dataclasses.replace(getattr(cfg, name), **values)
    return dataclasses.replace(cfg, **changes)
