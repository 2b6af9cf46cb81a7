"""Configuration: every problem listed with its key path; secrets never in TOML."""

import os
import pathlib
import subprocess
import sys

import pytest

from bibbox.locker.domain import config
from bibbox.locker.domain.errors import ConfigError, SecretError
from bibbox.daemon.secrets import create_site_key, load_site_key
from bibbox.daemon.config_file import load as load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.toml"))


def base(**over):
    data = {"locker": {"id": "t"},
            "compartments": [{"number": 1, "size": "S", "relay_pin": 5, "door_pin": 17},
                             {"number": 2, "size": "M", "relay_pin": 6, "door_pin": 18}]}
    data.update(over)
    return data


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_is_valid(path):
    cfg = load_config(str(path))
    assert cfg.compartments


def test_the_real_example_has_twelve_gpio_compartments():
    cfg = load_config(str(ROOT / "config" / "locker-12-gpio.toml"))
    assert len(cfg.compartments) == 12
    assert cfg.hardware.pin_factory in ("lgpio", "rpigpio")


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["locker"].update(colour="red"), "locker.colour: unknown key"),
    (lambda d: d.update(extra={}), "extra: unknown section"),
    (lambda d: d["compartments"][1].update(relay_pin=5), "compartments[1].relay_pin: GPIO 5 is already used by compartments[0].relay_pin"),
    (lambda d: d["compartments"][1].update(number=1), "compartments[1].number: compartment 1 is already defined"),
    (lambda d: d["compartments"][0].pop("size"), "compartments[0].size: missing"),
    (lambda d: d.update(timing={"pulse_s": 9}), "timing.pulse_s: 9.0 is out of range"),
    (lambda d: d.update(timing={"pulse_s": "long"}), "timing.pulse_s: expected a number"),
    (lambda d: d.update(reader={"framing": "morse"}), "reader.framing: 'morse' is not one of"),
    (lambda d: d.update(hardware={"pin_factory": "pigpio"}), "hardware.pin_factory"),
    (lambda d: d["compartments"][0].update(size="XL"), "compartments[0].size: 'XL' is not one of holds.sizes"),
    (lambda d: d.update(compartments=[]), "compartments: at least one"),
    (lambda d: d.update(keypad={"kind": "matrix", "row_pins": [17], "col_pins": [20]}), "keypad.row_pins[0]: GPIO 17 is already used"),
])
def test_each_problem_is_reported_with_its_key_path(mutate, expected):
    data = base()
    mutate(data)
    with pytest.raises(ConfigError) as err:
        config.parse(data)
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_all_problems_are_listed_at_once():
    data = base()
    data["locker"]["colour"] = "red"
    data["timing"] = {"pulse_s": 9, "max_coils": 0}
    data["compartments"][1].update(relay_pin=5, size="XL")
    with pytest.raises(ConfigError) as err:
        config.parse(data)
    assert len(err.value.problems) == 5


def test_check_config_cli_exit_codes(tmp_path):
    good = tmp_path / "good.toml"
    key = tmp_path / "site-key"
    create_site_key(str(key))
    good.write_text((ROOT / "config" / "demo.toml").read_text())
    bad = tmp_path / "bad.toml"
    bad.write_text('[locker]\nid = "x"\nwat = 1\n[timing]\npulse_s = 99\n')
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("this is [not toml")
    run = lambda *a: subprocess.run([sys.executable, "-m", "bibbox.daemon.cli", *a],
                                    capture_output=True, text=True, cwd=ROOT)
    ok = run("check-config", str(good))
    assert ok.returncode == 0, ok.stderr
    out = run("check-config", str(bad))
    assert out.returncode == 2
    for needle in ("locker.wat: unknown key", "timing.pulse_s", "compartments: at least one"):
        assert needle in out.stderr
    assert run("check-config", str(garbage)).returncode == 2
    assert "file not found" in run("check-config", str(tmp_path / "nope.toml")).stderr


def test_run_refuses_a_broken_config_without_starting(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[locker]\nid = "x"\n[[compartments]]\nnumber = 1\n')
    out = subprocess.run([sys.executable, "-m", "bibbox.daemon.cli", "run", "--config", str(bad)],
                         capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 2
    assert "compartments[0].size: missing" in out.stderr


def test_site_key_file_must_be_private(tmp_path):
    cfg = config.parse(base(secrets={"site_key_file": str(tmp_path / "k")}))
    with pytest.raises(SecretError, match="does not exist"):
        load_site_key(cfg, env={})
    create_site_key(str(tmp_path / "k"))
    assert len(load_site_key(cfg, env={})) == 32
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        load_site_key(cfg, env={})
    with pytest.raises(SecretError, match="not overwriting"):
        create_site_key(str(tmp_path / "k"))


def test_site_key_from_environment_and_systemd_credentials(tmp_path):
    cfg = config.parse(base())
    assert load_site_key(cfg, env={"BIBBOX_SITE_KEY": "ab" * 16}) == bytes.fromhex("ab" * 16)
    create_site_key(str(tmp_path / "site-key"))
    assert len(load_site_key(cfg, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})) == 32
    with pytest.raises(SecretError, match="shorter"):
        load_site_key(cfg, env={"BIBBOX_SITE_KEY": "abcd"})


def test_the_toml_has_no_place_for_secrets():
    for cls in (config.SecretsSection, config.MqttSection):
        for f in config.dataclasses.fields(cls):
            assert f.name.endswith("_file") or f.name in (
                "enabled", "url", "topic_root", "heartbeat_s", "keepalive_s", "home_assistant",
                "command_session_s"), f.name
