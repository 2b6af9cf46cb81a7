"""What goes onto the Pi itself: boot firmware settings and driving relays off.

``bibbox firmware config-txt`` (:func:`boot_plan`, :func:`render_config_txt`)
turns a locker's configuration into the lines for
``/boot/firmware/config.txt``:

* ``gpio=N=op,dh`` (or ``dl``) for every relay pin, so the firmware drives it
  to the relay's *inactive* level about a second after power-on, long before
  Linux and the daemon start.  Active-low boards (the usual kind) are off
  when the pin is high (``dh``); active-high boards when it is low (``dl``).
* ``gpio=N=ip,pu`` for every door pin (reed switch to ground, pull-up).
* ``dtparam=watchdog=on`` (the SoC watchdog; systemd pets it, see
  ``firmware/README.md``).
* ``enable_uart=1`` when the card reader is on the GPIO header's UART
  (``/dev/serial0``, ``/dev/ttyAMA0``, ``/dev/ttyS0``), with the reminder to
  take the serial console off it.

It refuses pins the Pi uses for something else -- GPIO0/1 (the HAT ID
EEPROM, which the firmware clocks at boot), GPIO14/15 while the UART is used,
GPIO2/3 when I2C is enabled, GPIO7-11 when SPI is enabled -- and warns about
the two wirings that can energise a coil between power-on and the moment the
firmware applies the ``gpio=`` line: an active-low relay on GPIO9-27 (pulled
*down* at reset, which is "on" for it) and an active-high relay on GPIO0-8
(pulled *up* at reset).  It also notes, for every relay on GPIO0-8, that
these pins are pulled up at boot.

:func:`safe_off` is ``bibbox safe-off``: systemd's ``ExecStopPost`` runs it
after the daemon stopped *or was killed*.  gpiozero releasing a pin leaves it
as an input (floating, or at its pull), so after driving every relay off with
:func:`hal.relays.drive_all_off` it asks ``pinctrl`` (``raspi-gpio`` on older
systems) to hold each relay pin as an output at the inactive level, with the
matching pull, until the daemon claims it again.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

BEGIN_MARK = "# >>> bibbox: managed by bibbox (firmware config-txt) >>>"
END_MARK = "# <<< bibbox <<<"
UART_PORTS = ("/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0")
PULLED_UP_AT_BOOT = range(0, 9)      # GPIO0-8; GPIO9-27 are pulled down

ALWAYS_RESERVED = {0: "ID_SD: the HAT ID EEPROM, read by the firmware at boot",
                   1: "ID_SC: the HAT ID EEPROM, read by the firmware at boot"}
UART_PINS = {14: "UART TXD (the card reader's serial line)",
             15: "UART RXD (the card reader's serial line)"}
I2C_PINS = {2: "I2C1 SDA", 3: "I2C1 SCL"}
SPI_PINS = {7: "SPI0 CE1", 8: "SPI0 CE0", 9: "SPI0 MISO", 10: "SPI0 MOSI",
            11: "SPI0 SCLK"}


@dataclass(frozen=True)
class Finding:
    """``level`` is ``error`` (refused), ``warning`` or ``note``."""
    level: str
    text: str
    pin: int | None = None


@dataclass
class BootPlan:
    relay_lines: list = field(default_factory=list)   # (comment, line)
    door_lines: list = field(default_factory=list)
    uart: bool = False
    findings: list = field(default_factory=list)

    @property
    def errors(self):
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self):
        return [f for f in self.findings if f.level == "warning"]

    @property
    def notes(self):
        return [f for f in self.findings if f.level == "note"]


def uart_used(cfg) -> bool:
    """Whether the card reader sits on the GPIO header's UART."""
    return bool(cfg.reader.enabled and cfg.reader.port in UART_PORTS)


def _pins(cfg):
    """(gpio, what) for every pin the configuration uses."""
    out = []
    for c in cfg.compartments:
        if c.bus:               # on a lock board: no pin of ours
            continue
        out.append((c.relay_pin, f"compartment {c.number} relay"))
        out.append((c.door_pin, f"compartment {c.number} door sensor"))
        if c.item_pin >= 0:
            out.append((c.item_pin, f"compartment {c.number} item sensor"))
    if cfg.keypad.kind == "matrix":
        out += [(p, "keypad row") for p in cfg.keypad.row_pins]
        out += [(p, "keypad column") for p in cfg.keypad.col_pins]
    return out


def boot_plan(cfg, *, i2c=False, spi=False) -> BootPlan:
    """Work out the boot settings for ``cfg``; ``i2c``/``spi``: those buses
    are enabled on this Pi (their pins are then refused)."""
    plan = BootPlan(uart=uart_used(cfg))
    reserved = dict(ALWAYS_RESERVED)
    if plan.uart:
        reserved.update(UART_PINS)
    if i2c:
        reserved.update(I2C_PINS)
    if spi:
        reserved.update(SPI_PINS)
    for pin, what in _pins(cfg):
        if pin in reserved:
            plan.findings.append(Finding("error", f"GPIO{pin} ({what}) is {reserved[pin]}; "
                                         "wire it to a free GPIO", pin))
    active_high = cfg.hardware.relay_active_high
    level, level_name = ("dl", "low") if active_high else ("dh", "high")
    energised_at_boot, pulled_up = [], []
    gpio = sorted((c for c in cfg.compartments if not c.bus), key=lambda c: c.number)
    for c in gpio:
        pin = c.relay_pin
        plan.relay_lines.append((f"compartment {c.number}: relay on GPIO{pin}, "
                                 f"held {level_name} (off)", f"gpio={pin}={_op(level)}"))
        boot_high = pin in PULLED_UP_AT_BOOT
        if boot_high:
            pulled_up.append(f"GPIO{pin} (compartment {c.number})")
        if boot_high == active_high:
            energised_at_boot.append((pin, c.number))
    for c in gpio:
        plan.door_lines.append((f"compartment {c.number}: door sensor on GPIO{c.door_pin}",
                                f"gpio={c.door_pin}=ip,pu"))
    if energised_at_boot:
        which = ", ".join(f"GPIO{p} (compartment {n})" for p, n in energised_at_boot)
        if active_high:
            why = ("these active-high relays sit on GPIO0-8, which are pulled UP at "
                   "reset: high means ON for them")
            fix = "a 10 kOhm pull-down from each pin to GND, or move them to GPIO9-27"
        else:
            why = ("these active-low relays sit on GPIO9-27, which are pulled DOWN at "
                   "reset: low means ON for them")
            fix = "a 10 kOhm pull-up from each pin to 3.3 V, or move them to GPIO4-8"
        plan.findings.append(Finding(
            "warning",
            f"{which}: {why}.  From power-on until the firmware applies the gpio= "
            "line (about a second), and whenever no program drives the pin, the relay "
            "can be energised if its input follows the Pi's weak (~50 kOhm) pull; most "
            "opto-isolated boards need more current than that and stay off, but measure "
            f"yours (coil LED on at power-on?).  Safe fix: {fix}."))
    if pulled_up and not active_high:
        plan.findings.append(Finding(
            "note",
            "GPIO0-8 are pulled up at boot, so these relay pins start HIGH: "
            + ", ".join(pulled_up) + ". That is OFF for active-low relays (the safe "
            "direction).  GPIO0-3 "
            "also carry the ID EEPROM and I2C, which the firmware or an overlay may "
            "toggle; prefer GPIO4-8 for active-low relays."))
    return plan


def _op(level):
    return f"op,{level}"


def render_config_txt(cfg, plan: BootPlan, source="") -> str:
    """The block for ``config.txt`` (between :data:`BEGIN_MARK` and :data:`END_MARK`)."""
    active = "active-high" if cfg.hardware.relay_active_high else "active-low"
    out = [BEGIN_MARK,
           f"# Boot settings for locker {cfg.locker.id!r}"
           + (f" from {source}" if source else "") + ".",
           "# Append to /boot/firmware/config.txt (install.sh does) and reboot.",
           "[all]",
           f"# Relays ({active} board) driven to their inactive level by the firmware,",
           "# before Linux starts.  Between power-on and this point a pin sits at its",
           "# reset pull: GPIO0-8 pulled up (high), GPIO9-27 pulled down (low).",
           "# Once Linux runs, the daemon owns the pins; after it stops, systemd runs",
           "# 'bibbox safe-off', which drives them off again and holds them there."]
    for comment, line in plan.relay_lines:
        out += [f"# {comment}", line]
    out += ["# Door sensors: inputs with pull-up (reed switch to ground)."]
    for comment, line in plan.door_lines:
        out += [f"# {comment}", line]
    out += ["# Hardware watchdog: systemd pets it (RuntimeWatchdogSec); a hung kernel",
            "# reboots, and the relay lines above apply again at once.",
            "dtparam=watchdog=on"]
    if plan.uart:
        out += [f"# Card reader on the GPIO UART ({cfg.reader.port}, GPIO14/15).",
                "# Also remove 'console=serial0,115200' from /boot/firmware/cmdline.txt",
                "# (sudo raspi-config nonint do_serial_cons 1): the console would",
                "# talk to the reader.",
                "enable_uart=1"]
    for f in plan.findings:
        if f.level in ("warning", "note"):
            out += _wrap_comment(f"{f.level.upper()}: {f.text}")
    out.append(END_MARK)
    return "\n".join(out) + "\n"


def _wrap_comment(text, width=76):
    lines, line = [], "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#  "
        line += " " + word
    lines.append(line)
    return lines


# -- safe-off ---------------------------------------------------------------------
def safe_off(cfg, *, hold=True, which=shutil.which, run=subprocess.run):
    """Drive every relay of ``cfg`` off; with ``hold``, keep them off with
    ``pinctrl``/``raspi-gpio``.  Returns lines for the operator; raises
    :class:`~locker.errors.HardwareError` if a relay could not be driven off."""
    if cfg.locker.simulated:
        return ["simulated locker: its relays live in the daemon process; nothing to drive"]
    from bibbox.hal.pins import open_real_pin_factory
    from bibbox.hal.relays import drive_all_off

    from bibbox.daemon.bootstrap import relay_specs
    specs = relay_specs(cfg)
    if not specs:
        return ["no relay on GPIO; lock boards are sent nothing (they keep their locks "
                "locked by themselves, see firmware/README.md)"]
    factory, _ = open_real_pin_factory(cfg.hardware.pin_factory)
    try:
        drive_all_off(specs, factory)
    finally:
        try:
            factory.close()
        except Exception:
            pass
    lines = [f"drove {len(specs)} relay pins off (GPIO "
             + ", ".join(str(s.pin) for s in specs.values()) + ")"]
    if hold:
        lines += _hold_pins(cfg, which, run)
    return lines


def _hold_pins(cfg, which, run):
    tool = which("pinctrl") or which("raspi-gpio")
    if tool is None:
        return ["no pinctrl/raspi-gpio found: the pins were released and now rest on "
                "their pulls (see firmware/README.md)"]
    active_high = cfg.hardware.relay_active_high
    level, pull = ("dl", "pd") if active_high else ("dh", "pu")
    failed = []
    for c in (c for c in cfg.compartments if not c.bus):
        try:
            result = run([tool, "set", str(c.relay_pin), "op", pull, level],
                         capture_output=True, timeout=5)
            if result.returncode != 0:
                failed.append(c.relay_pin)
        except (OSError, subprocess.SubprocessError):
            failed.append(c.relay_pin)
    name = tool.rsplit("/", 1)[-1]
    if failed:
        return [f"{name} could not hold GPIO {failed} (they rest on their pulls)"]
    return [f"{name} holds every relay pin as an output at its inactive level "
            f"({level}, {pull})"]
