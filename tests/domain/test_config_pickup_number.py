"""``verifier.pickup_number_with_pin``: off by default, refused for the
verifiers that check a PIN only with the card number, shown by check-config."""

import pytest

from bibbox.daemon.cli import main
from bibbox.locker.domain import config
from bibbox.locker.domain.errors import ConfigError
from tests.domain.test_config import base

LIBRARY = {"host": "fbs.example.dk", "institution": "775100", "tls": True}


def with_verifier(kind, on=True):
    data = base(verifier={"kind": kind, "pickup_number_with_pin": on})
    if kind in ("sip2", "fbs"):
        data["library"] = dict(LIBRARY)
    return data


def test_off_by_default():
    assert config.parse(base()).verifier.pickup_number_with_pin is False


@pytest.mark.parametrize("kind", ["local", "central"])
def test_accepted_with_a_verifier_that_checks_a_pin_by_patron_hash(kind):
    cfg = config.parse(with_verifier(kind))
    assert cfg.verifier.pickup_number_with_pin is True


@pytest.mark.parametrize("kind", ["sip2", "fbs"])
def test_refused_with_a_library_system_verifier(kind):
    with pytest.raises(ConfigError) as err:
        config.parse(with_verifier(kind))
    assert err.value.problems == [
        f"verifier.pickup_number_with_pin: verifier.kind = {kind!r} checks a PIN only with "
        "the card number, which the locker never keeps; pickup by number + PIN needs "
        "kind 'local' or 'central'"]
    assert config.parse(with_verifier(kind, on=False)).verifier.kind == kind


def test_not_a_bool_is_refused():
    with pytest.raises(ConfigError, match="verifier.pickup_number_with_pin"):
        config.parse(base(verifier={"pickup_number_with_pin": "yes"}))


def test_check_config_shows_it_and_refuses_it(tmp_path, capsys):
    head = ('[locker]\nid = "t"\nsimulated = true\n[hardware]\npin_factory = "mock"\n'
            '[[compartments]]\nnumber = 1\nsize = "S"\nrelay_pin = 5\ndoor_pin = 17\n')
    good = tmp_path / "good.toml"
    good.write_text(head + '[verifier]\nkind = "central"\npickup_number_with_pin = true\n')
    assert main(["check-config", str(good)]) == 0
    assert "pickup without the card: pickup number + PIN, checked by the central verifier" \
        in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(head + '[verifier]\nkind = "fbs"\npickup_number_with_pin = true\n'
                   '[library]\nhost = "fbs.example.dk"\ninstitution = "775100"\n')
    with pytest.raises(SystemExit) as exit_:
        main(["check-config", str(bad)])
    assert exit_.value.code == 2
    assert "verifier.pickup_number_with_pin: verifier.kind = 'fbs'" in capsys.readouterr().err
