"""check-config says which pins a real locker will use, and refuses mock pins."""

from __future__ import annotations

import pytest

from bibbox.daemon.cli import main
from bibbox.locker.domain import config
from bibbox.locker.domain.errors import ConfigError

REAL = """[locker]\nid = "real"\nstate_dir = "{state}"\n{hardware}
[secrets]\nsite_key_file = "{key}"\n
[[compartments]]\nnumber = 1\nsize = "S"\nrelay_pin = 5\ndoor_pin = 17\n"""


def check(tmp_path, capsys, hardware="", env=None, monkeypatch=None):
    key = tmp_path / "site-key"
    key.write_text("ab" * 32)
    key.chmod(0o600)
    path = tmp_path / "real.toml"
    path.write_text(REAL.format(state=tmp_path / "state", hardware=hardware, key=key))
    try:
        code = main(["check-config", str(path)])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_real_locker_without_a_pin_factory_is_not_on_mock_pins(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    code, out = check(tmp_path, capsys)
    assert code == 0, out
    assert "mock" not in out and "lgpio or rpigpio, detected" in out


def test_gpiozero_pin_factory_in_the_environment_is_honoured(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "rpigpio")
    code, out = check(tmp_path, capsys, '[hardware]\npin_factory = "lgpio"\n')
    assert code == 0 and "pins rpigpio, GPIOZERO_PIN_FACTORY" in out, out


def test_mock_pins_on_a_real_locker_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    code, out = check(tmp_path, capsys, '[hardware]\npin_factory = "mock"\n')
    assert code == 2 and "only a simulated" in out, out
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    code, out = check(tmp_path, capsys)
    assert code == 2 and "not simulated" in out, out


def test_the_simulated_locker_may_use_mock_pins():
    cfg = config.parse({"locker": {"id": "d", "simulated": True},
                        "hardware": {"pin_factory": "mock"},
                        "compartments": [{"number": 1, "size": "S", "relay_pin": 5,
                                          "door_pin": 17}]})
    assert cfg.hardware.pin_factory == "mock"
    with pytest.raises(ConfigError, match="only a simulated"):
        config.parse({"locker": {"id": "d"}, "hardware": {"pin_factory": "mock"},
                      "compartments": [{"number": 1, "size": "S", "relay_pin": 5,
                                        "door_pin": 17}]})
