"""``[library]`` configuration, the daemon's wiring and ``bibbox library check``
against the test library system."""

import os
import threading

import pytest

from bibbox.daemon import cli
from bibbox.daemon.cli_library import library_verifier
from bibbox.locker.domain import config, patrons
from bibbox.locker.domain.errors import ConfigError
from bibbox.locker.domain.identity import CardNumber, Pin


def write_config(tmp_path, port, *, kind="sip2", ca=None, **library):
    creds = tmp_path / "library-credentials"
    creds.write_text("fbs-locker:fbs-secret\n" if kind == "fbs" else "locker1:sip-secret\n")
    os.chmod(creds, 0o600)
    lib = {"host": "127.0.0.1" if ca is None else "localhost", "port": port,
           "tls": ca is not None, "trusted_network": ca is None,
           "institution": "775100" if kind == "fbs" else "DK-775100",
           "location": "BIBBOX1", "credentials_file": str(creds), "timeout_s": 2}
    if ca:
        lib["ca_file"] = str(ca)
    lib.update(library)
    lines = [f'[locker]\nid = "t1"\nstate_dir = "{tmp_path}"\n',
             f'[verifier]\nkind = "{kind}"\n', "[library]"]
    for key, value in lib.items():
        lines.append(f"{key} = " + (("true" if value else "false") if isinstance(value, bool)
                                    else repr(value) if isinstance(value, (int, float))
                                    else f'"{value}"'))
    lines.append('\n[[compartments]]\nnumber = 1\nsize = "S"\nrelay_pin = 5\ndoor_pin = 6\n')
    path = tmp_path / "bibbox.toml"
    path.write_text("\n".join(lines))
    return path


def test_check_prints_supported_messages_and_round_trip(tmp_path, sip_server, library, capsys):
    path = write_config(tmp_path, sip_server.port)
    assert cli.main(["library", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "online: yes" in out and "patron information" in out and "round trip" in out
    assert library.requests == ["93"]            # 99 is answered by pysip2 itself
    assert not {"23", "63", "11", "09", "17"} & set(library.requests)


def test_check_over_fbs_https(tmp_path, fbs_server, test_ca, capsys):
    path = write_config(tmp_path, fbs_server.port, kind="fbs", ca=test_ca[0])
    assert cli.main(["library", "check", "--config", str(path)]) == 0
    assert "online: yes" in capsys.readouterr().out


def test_check_reports_an_unreachable_library(tmp_path, capsys):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    path = write_config(tmp_path, port, retries=0)
    assert cli.main(["library", "check", "--config", str(path)]) == 1
    assert "no answer" in capsys.readouterr().err


def test_the_daemon_builds_a_library_verifier(tmp_path, sip_server):
    from bibbox.daemon.config_file import load
    cfg = load(str(write_config(tmp_path, sip_server.port)))
    verifier = library_verifier(cfg)
    got, event = [], threading.Event()
    verifier.verify("h", Pin.parse("1234"), lambda v: (got.append(v), event.set()),
                    card=CardNumber.parse("L0001"))
    assert event.wait(10) and got[0].outcome == patrons.ACCEPTED
    verifier.close()


def test_config_validation_names_key_paths(tmp_path):
    base = {"locker": {"id": "t", "state_dir": str(tmp_path)},
            "compartments": [{"number": 1, "size": "S", "relay_pin": 5, "door_pin": 6}],
            "verifier": {"kind": "sip2"}}
    with pytest.raises(ConfigError) as info:
        config.parse({**base, "library": {"tls": False}})
    text = "\n".join(info.value.problems)
    for key in ("library.host", "library.institution", "library.tls"):
        assert key in text
    with pytest.raises(ConfigError, match="library.port"):
        config.parse({**base, "library": {"host": "h", "institution": "i", "port": 0}})
    ok = config.parse({**base, "library": {"host": "sip.example", "institution": "DK-1"}})
    assert ok.library.tls and ok.library.fee_limit == 200.0
    assert config.parse({**base, "verifier": {"kind": "local"}}).library.host == ""
