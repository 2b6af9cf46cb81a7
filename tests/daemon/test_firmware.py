"""What goes onto the Pi: ``bibbox firmware config-txt`` against the example
configurations, ``bibbox safe-off``, the systemd unit (``systemd-analyze
verify``), the udev rule and ``install.sh`` (shellcheck, and a run against a
scratch root directory)."""

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from bibbox.daemon.config_file import load as load_config
from bibbox.locker.domain import config as config_mod
from bibbox.daemon import boot_config as firmware
from bibbox.daemon.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
EXAMPLES = sorted((ROOT / "config").glob("*.toml"))
LINE = re.compile(r"^(#.*|\[all\]|gpio=\d+=(op,d[hl]|ip,pu)|dtparam=watchdog=on|enable_uart=1)$")


def config_txt(capsys, path, *extra):
    capsys.readouterr()
    try:
        code = main(["firmware", "config-txt", "--config", str(path), *extra])
    except SystemExit as exc:          # a configuration refused by validation
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def write_config(tmp_path, *, relays=(5,), doors=(17,), active_high=False, port="sim",
                 name="c.toml"):
    comps = "".join(f"[[compartments]]\nnumber = {i + 1}\nsize = \"S\"\nrelay_pin = {r}\n"
                    f"door_pin = {d}\n" for i, (r, d) in enumerate(zip(relays, doors)))
    path = tmp_path / name
    path.write_text(f"""[locker]\nid = "t"\nstate_dir = "{tmp_path}/state"\n
[hardware]\npin_factory = "lgpio"\nrelay_active_high = {str(active_high).lower()}\n
[reader]\nport = "{port}"\n\n{comps}""")
    return path


# -- config-txt ----------------------------------------------------------------------
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_config_txt_for_the_example_configurations(capsys, example):
    cfg = load_config(example)
    code, out, err = config_txt(capsys, example)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == firmware.BEGIN_MARK and lines[-1] == firmware.END_MARK
    body = [line for line in lines[1:-1]]
    assert all(LINE.match(line) for line in body), [x for x in body if not LINE.match(x)]
    level = "dl" if cfg.hardware.relay_active_high else "dh"
    settings = [line for line in body if not line.startswith("#")]
    if all(c.bus for c in cfg.compartments):   # every lock on a board: no relay pin of ours
        assert not [line for line in settings if line.startswith("gpio=")], settings
        assert "dtparam=watchdog=on" in settings
        return
    for c in cfg.compartments:
        assert settings.count(f"gpio={c.relay_pin}=op,{level}") == 1, c
        assert settings.count(f"gpio={c.door_pin}=ip,pu") == 1, c
    assert "dtparam=watchdog=on" in settings
    assert ("enable_uart=1" in settings) == firmware.uart_used(cfg)
    assert "enable_uart=1" not in settings        # both examples: USB reader or simulator
    # Active-low relays on GPIO9-27 sit on a pull-down at reset: warned, by pin.
    hazardous = [c.relay_pin for c in cfg.compartments if c.relay_pin >= 9]
    assert hazardous
    warning = " ".join(line.lstrip("#").strip() for line in body if line.startswith("#"))
    assert "WARNING" in warning and "pulled DOWN at reset" in warning
    for pin in hazardous:
        assert f"GPIO{pin} (compartment" in warning
    # ... and GPIO0-8, pulled up at boot, are noted.
    assert "GPIO0-8 are pulled up at boot" in warning
    assert "1 warning(s)" in err


def test_active_high_relays_are_driven_low_and_warned_on_gpio0_8(tmp_path, capsys):
    path = write_config(tmp_path, relays=(4, 20), doors=(17, 18), active_high=True)
    code, out, err = config_txt(capsys, path)
    assert code == 0
    assert "gpio=4=op,dl" in out.splitlines() and "gpio=20=op,dl" in out.splitlines()
    assert "pulled UP at reset" in out and "GPIO4 (compartment 1)" in out
    assert "GPIO20 (compartment" not in out.split("WARNING")[1].split("NOTE")[0]
    code, out, err = config_txt(capsys, path, "--strict")
    assert code == 2


def test_active_low_relays_on_pulled_up_pins_need_no_warning(tmp_path, capsys):
    path = write_config(tmp_path, relays=(4, 5, 6), doors=(17, 18, 22))
    code, out, err = config_txt(capsys, path, "--strict")
    assert code == 0 and "WARNING" not in out and err == ""
    assert "NOTE: GPIO0-8 are pulled up at boot" in out


@pytest.mark.parametrize("relays, doors, port, flags, refused", [
    ((0,), (17,), "sim", [], "GPIO0"),
    ((5,), (1,), "sim", [], "GPIO1"),
    ((14,), (17,), "/dev/ttyAMA0", [], "GPIO14"),
    ((5,), (15,), "/dev/ttyS0", [], "GPIO15"),
    ((2,), (17,), "sim", ["--i2c"], "GPIO2"),
    ((5,), (3,), "sim", ["--i2c"], "GPIO3"),
    ((10,), (17,), "sim", ["--spi"], "GPIO10"),
])
def test_pins_the_pi_uses_for_something_else_are_refused(tmp_path, capsys, relays, doors,
                                                          port, flags, refused):
    path = write_config(tmp_path, relays=relays, doors=doors, port=port)
    code, out, err = config_txt(capsys, path, *flags)
    assert code == 2 and out == ""
    assert refused in err


def test_a_uart_reader_enables_the_uart_and_says_to_drop_the_console(tmp_path, capsys):
    path = write_config(tmp_path, relays=(5,), doors=(17,), port="/dev/serial0")
    code, out, err = config_txt(capsys, path)
    assert code == 0
    assert "enable_uart=1" in out.splitlines()
    assert "console=serial0,115200" in out
    # GPIO14/15 are the UART then (config validation refuses them for serial0 too).
    path = write_config(tmp_path, relays=(14,), doors=(17,), port="/dev/serial0",
                        name="d.toml")
    code, out, err = config_txt(capsys, path)
    assert code == 2 and "14" in err


def test_the_12_compartment_example_clashes_with_i2c_and_spi(capsys):
    path = ROOT / "config" / "locker-12-gpio.toml"
    assert config_txt(capsys, path, "--i2c")[0] == 2
    assert config_txt(capsys, path, "--spi")[0] == 2


# -- safe-off ------------------------------------------------------------------------
def test_safe_off_drives_every_relay_off_and_holds_it(tmp_path, monkeypatch, capsys):
    factory = MockFactory()
    monkeypatch.setattr("bibbox.hal.pins.make_pin_factory", lambda name: factory)
    factory.close = lambda: None                      # keep the pins to look at
    for gpio in (5, 20):                               # a crashed daemon left them on
        factory.pin(gpio).function = "output"
        factory.pin(gpio).state = False               # active-low: on
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    (bindir / "pinctrl").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bindir / "pinctrl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    path = write_config(tmp_path, relays=(5, 20), doors=(17, 18))
    capsys.readouterr()
    assert main(["safe-off", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "drove 2 relay pins off" in out and "pinctrl holds" in out
    assert factory.pin(5).state and factory.pin(20).state      # high: off
    assert calls.read_text().splitlines() == ["set 5 op pu dh", "set 20 op pu dh"]


def test_safe_off_without_pinctrl_and_for_active_high(tmp_path, monkeypatch):
    factory = MockFactory()
    factory.close = lambda: None
    monkeypatch.setattr("bibbox.hal.pins.make_pin_factory", lambda name: factory)
    cfg = load_config(write_config(tmp_path, relays=(21,), doors=(17,), active_high=True))
    factory.pin(21).function = "output"
    factory.pin(21).state = True                               # active-high: on
    lines = firmware.safe_off(cfg, which=lambda name: None)
    assert not factory.pin(21).state
    assert "no pinctrl" in lines[-1]
    seen = []
    firmware.safe_off(cfg, which=lambda name: "/usr/bin/raspi-gpio" if name == "raspi-gpio"
                      else None, run=lambda argv, **kw: seen.append(argv) or
                      subprocess.CompletedProcess(argv, 0))
    assert seen == [["/usr/bin/raspi-gpio", "set", "21", "op", "pd", "dl"]]


def test_safe_off_on_the_simulator_touches_nothing(capsys):
    assert main(["safe-off", "--config", str(ROOT / "config" / "demo.toml")]) == 0
    assert "simulated" in capsys.readouterr().out


# -- the systemd unit ----------------------------------------------------------------
def unit_settings():
    settings = {}
    section = None
    for line in (FIRMWARE / "bibbox.service").read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault((section, key), []).append(value)
    return settings


def test_the_unit_has_what_the_issue_asks_for():
    s = unit_settings()

    def one(key, section="Service"):
        values = s.get((section, key))
        assert values and len(values) == 1, key
        return values[0]
    assert one("Type") == "notify"
    assert int(one("WatchdogSec")) > 0
    assert one("Restart") == "always"
    assert one("User") == "bibbox"
    assert set(one("SupplementaryGroups").split()) == {"gpio", "dialout"}
    assert one("StateDirectory") == "bibbox"
    assert one("LoadCredential") == "site-key:/etc/bibbox/site-key"
    assert one("SyslogIdentifier") == "bibbox"
    assert "MALLOC_ARENA_MAX=1" in one("Environment").split()     # the RSS README quotes
    assert one("ExecStart").endswith("bibbox run --config /etc/bibbox/bibbox.toml")
    assert one("ExecStopPost").endswith("bibbox safe-off --config /etc/bibbox/bibbox.toml")
    for key, value in [("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("NoNewPrivileges", "yes"), ("ProtectHome", "yes"),
                       ("CapabilityBoundingSet", "")]:
        assert one(key) == value, key
    assert set(one("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    # GPIO and serial access: nothing that would turn on a device allow-list.
    for key in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock",
                "ProtectKernelTunables", "ProcSubset"):
        assert ("Service", key) not in s, key
    assert one("StartLimitIntervalSec", "Unit") == "0"


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    stub = tmp_path / "bibbox"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "bibbox.service"
    unit.write_text((FIRMWARE / "bibbox.service").read_text()
                    .replace("/opt/bibbox/venv/bin/bibbox", str(stub)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    # In a container without systemd as PID 1 these two are about the host, not the unit.
    known = ("Failed to connect to bus", "System has not been booted with systemd")
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and not any(k in line for k in known)]
    assert result.returncode == 0 or not problems, result.stdout + result.stderr
    assert problems == [], problems


# -- udev ------------------------------------------------------------------------------
def test_the_udev_rule_names_the_reader_and_documents_its_ids():
    text = (FIRMWARE / "99-bibbox-reader.rules").read_text()
    rules = [line.lstrip("#") for line in text.splitlines()
             if line.lstrip("#").startswith("SUBSYSTEM==")]
    assert rules
    for rule in rules:
        assert 'SYMLINK+="bibbox-reader"' in rule and 'GROUP="dialout"' in rule
        assert re.search(r'ATTRS\{idVendor\}=="[0-9a-f]{4}", ATTRS\{idProduct\}=="[0-9a-f]{4}"',
                         rule)
    assert "lsusb" in text and "udevadm info" in text
    reader_port = load_config(ROOT / "config" / "locker-12-gpio.toml").reader.port
    assert reader_port == "/dev/bibbox-reader"


# -- install.sh ------------------------------------------------------------------------
def test_install_sh_passes_shellcheck():
    checker = shutil.which("shellcheck")
    if checker is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run([checker, str(FIRMWARE / "install.sh")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def scratch_root(tmp_path, model, cmdline="console=serial0,115200 console=tty1 rootwait"):
    root = tmp_path / "root"
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "device-tree" / "model").write_bytes(model.encode() + b"\0")
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text("# theirs\ndtparam=audio=on\n")
    (root / "boot" / "firmware" / "cmdline.txt").write_text(cmdline + "\n")
    return root


def install(root, *args):
    env = dict(os.environ, BIBBOX_PYTHON=sys.executable)
    result = subprocess.run(["bash", str(FIRMWARE / "install.sh"), "--root", str(root), *args],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink()
                                       else os.readlink(p) if p.is_symlink() else None,
                                       stat.S_IMODE(p.lstat().st_mode))
            for p in sorted(root.rglob("*"))}


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_install_into_a_scratch_root_twice_then_uninstall(tmp_path):
    root = scratch_root(tmp_path, "Raspberry Pi 4 Model B Rev 1.4")
    out = install(root)
    assert "pin factory: rpigpio" in out
    assert "(dry run) useradd" in out and "(dry run) systemctl enable bibbox.service" in out
    assert "bibbox[rpigpio]" in out
    assert "systemctl restart" not in out       # the example config is not started
    etc = root / "etc" / "bibbox"
    cfg = load_config(etc / "bibbox.toml")
    assert cfg.hardware.pin_factory == "rpigpio"
    assert cfg.locker.state_dir == "/var/lib/bibbox"
    assert cfg.secrets.site_key_file == "/etc/bibbox/site-key"
    assert mode(etc) == 0o750 and mode(etc / "bibbox.toml") == 0o640
    assert mode(etc / "site-key") == 0o600 and len((etc / "site-key").read_text().strip()) == 64
    unit = root / "etc" / "systemd" / "system" / "bibbox.service"
    assert unit.read_text() == (FIRMWARE / "bibbox.service").read_text()
    assert "RuntimeWatchdogSec=" in (root / "etc" / "systemd" / "system.conf.d" /
                                     "bibbox-watchdog.conf").read_text()
    assert (root / "etc" / "udev" / "rules.d" / "99-bibbox-reader.rules").exists()
    assert os.readlink(root / "usr" / "local" / "bin" / "bibbox") == \
        "/opt/bibbox/venv/bin/bibbox"
    boot = (root / "boot" / "firmware" / "config.txt").read_text()
    assert boot.startswith("# theirs\ndtparam=audio=on\n")
    assert boot.count(firmware.BEGIN_MARK) == 1 and "gpio=5=op,dh" in boot
    assert "Next:" in out and "selftest" in out
    # Again: nothing changes but what is regenerated the same; the key and config stay.
    key, config = (etc / "site-key").read_bytes(), (etc / "bibbox.toml").read_bytes()
    before = snapshot(root)
    out = install(root, "--reader-id", "1A86:7523")
    assert "configuration: kept" in out and "site key: kept" in out
    assert "systemctl restart bibbox.service" in out
    after = snapshot(root)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed == {"etc/udev/rules.d/99-bibbox-reader.rules"}, changed
    assert (etc / "site-key").read_bytes() == key and (etc / "bibbox.toml").read_bytes() == config
    rule = (root / "etc" / "udev" / "rules.d" / "99-bibbox-reader.rules").read_text()
    assert rule.count('ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523"') == 2  # doc + rule
    assert [l for l in rule.splitlines() if l.startswith("SUBSYSTEM==")] == [
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", '
        'SYMLINK+="bibbox-reader", GROUP="dialout", MODE="0660"']
    install(root)                               # the reader line survives a plain re-run
    assert (root / "etc" / "udev" / "rules.d" / "99-bibbox-reader.rules").read_text() == rule
    # Uninstall keeps the data; purge removes it.
    assert mode(root / "var" / "lib" / "bibbox") == 0o750
    (root / "var" / "lib" / "bibbox" / "bibbox.db").write_bytes(b"holds")
    out = install(root, "--uninstall")
    assert not unit.exists() and not (root / "opt" / "bibbox").exists()
    assert not (root / "usr" / "local" / "bin" / "bibbox").exists()
    assert firmware.BEGIN_MARK not in (root / "boot" / "firmware" / "config.txt").read_text()
    assert (root / "boot" / "firmware" / "config.txt").read_text() == \
        "# theirs\ndtparam=audio=on\n"
    assert (etc / "site-key").read_bytes() == key
    assert (root / "var" / "lib" / "bibbox" / "bibbox.db").read_bytes() == b"holds"
    install(root, "--uninstall", "--purge")
    assert not etc.exists() and not (root / "var" / "lib" / "bibbox").exists()


def test_install_on_a_pi_5_picks_lgpio_and_frees_a_uart_reader(tmp_path):
    root = scratch_root(tmp_path, "Raspberry Pi 5 Model B Rev 1.0")
    example = write_config(tmp_path, relays=(5,), doors=(17,), port="/dev/serial0")
    out = install(root, "--config-example", str(example))
    assert "pin factory: lgpio" in out and "bibbox[lgpio]" in out
    assert "liblgpio-dev" in out
    cfg = load_config(root / "etc" / "bibbox" / "bibbox.toml")
    assert cfg.hardware.pin_factory == "lgpio"
    assert "enable_uart=1" in (root / "boot" / "firmware" / "config.txt").read_text()
    cmdline = root / "boot" / "firmware" / "cmdline.txt"
    assert cmdline.read_text() == "console=tty1 rootwait\n"
    assert (root / "boot" / "firmware" / "cmdline.txt.bibbox-orig").read_text().startswith(
        "console=serial0,115200")


def test_install_leaves_config_txt_alone_when_the_pins_are_refused(tmp_path):
    root = scratch_root(tmp_path, "Raspberry Pi 3 Model B Plus Rev 1.3")
    example = write_config(tmp_path, relays=(1,), doors=(17,))
    out = install(root, "--config-example", str(example), "--pin-factory", "lgpio")
    assert "pin factory: lgpio (chosen with --pin-factory" in out
    assert "NOT changed" in out and "GPIO1" in out
    assert (root / "boot" / "firmware" / "config.txt").read_text() == \
        "# theirs\ndtparam=audio=on\n"


@pytest.mark.parametrize("model, kernel, factory", [
    ("Raspberry Pi 4 Model B Rev 1.4", "6.1.21-v8+", "rpigpio"),
    ("Raspberry Pi 3 Model B Rev 1.2", None, "rpigpio"),
    ("Raspberry Pi 4 Model B Rev 1.5", "6.6.31+rpt-rpi-v8", "lgpio"),
    ("Raspberry Pi 4 Model B Rev 1.5", "6.12.25+rpt-rpi-v8", "lgpio"),
    ("Raspberry Pi 5 Model B Rev 1.0", "6.1.0", "lgpio"),
    ("Raspberry Pi Compute Module 5 Rev 1.0", None, "lgpio"),
])
def test_install_picks_the_pin_factory_from_the_board_and_kernel(tmp_path, model, kernel,
                                                                  factory):
    root = scratch_root(tmp_path, model)
    if kernel:
        (root / "proc" / "sys" / "kernel").mkdir(parents=True)
        (root / "proc" / "sys" / "kernel" / "osrelease").write_text(kernel + "\n")
    out = install(root, "--no-boot-config")
    assert f"pin factory: {factory} (" in out
    assert f"bibbox[{factory}]" in out
    assert load_config(root / "etc" / "bibbox" / "bibbox.toml").hardware.pin_factory \
        == factory
