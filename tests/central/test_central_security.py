"""TLS with a test CA, client certificates, per-locker ACLs with passwords,
and privacy: no card number and no PIN on the wire during a pickup."""

import json
import os
import shutil
import subprocess

import pytest

from bibbox.locker.domain import config as config_mod
from bibbox.locker.domain.identity import CardNumber
from bibbox.locker.domain.messages import CardRead, PinEntered, RelayFired, RelayReleased
from tests.brokers import Subscriber, broker, broker_factory  # noqa: F401
from tests.central_helpers import LockerRig, contract_validator, wait_until
from tests.domain_helpers import ALICE_CARD, ALICE_PIN

ROOT = "bibbox/test-1"
ACL = os.path.join(os.path.dirname(__file__), "..", "..", "config", "mosquitto", "acl")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


@pytest.fixture
def rig(tmp_path):
    r = LockerRig(tmp_path / "locker")
    yield r
    r.close()


def with_mqtt(rig, **values):
    return config_mod.replace(rig.cfg, mqtt=values)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA, a server certificate for 127.0.0.1/localhost, a client
    certificate, and a second CA nobody trusts."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "rogue"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=Bibbox test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=test-1-{name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.crt", cwd=d)
    return d


def tls_broker(broker_factory, pki, require_cert=False):
    return broker_factory(extra=f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\n"
                                f"keyfile {pki}/server.key\n"
                                f"require_certificate {'true' if require_cert else 'false'}\n")


@needs_openssl
def test_tls_with_the_configured_ca(broker_factory, pki, rig):
    b = tls_broker(broker_factory, pki)
    link = rig.link(f"mqtts://127.0.0.1:{b.port}", cfg=with_mqtt(rig, ca_file=str(pki / "ca.crt")))
    wait_until(lambda: link.health()["subscribed"], 10, "a TLS connection")
    sub = Subscriber(b.port, [f"{ROOT}/availability"], validate=contract_validator,
                     tls={"ca_certs": str(pki / "ca.crt")}).start()
    assert sub.last(f"{ROOT}/availability").json()["state"] == "online"
    sub.stop()
    assert not sub.errors


@needs_openssl
def test_tls_refuses_a_broker_signed_by_another_ca(broker_factory, pki, rig):
    b = tls_broker(broker_factory, pki)
    link = rig.link(f"mqtts://127.0.0.1:{b.port}",
                    cfg=with_mqtt(rig, ca_file=str(pki / "rogue.crt")))
    wait_until(lambda: link.health()["last_error"], 10, "the TLS failure")
    assert not link.health()["connected"]


@needs_openssl
def test_tls_with_a_client_certificate(broker_factory, pki, rig):
    b = tls_broker(broker_factory, pki, require_cert=True)
    cfg = with_mqtt(rig, ca_file=str(pki / "ca.crt"), cert_file=str(pki / "client.crt"),
                    key_file=str(pki / "client.key"))
    link = rig.link(f"mqtts://127.0.0.1:{b.port}", cfg=cfg)
    wait_until(lambda: link.health()["subscribed"], 10, "a mutual TLS connection")


def passwords(tmp_path, users):
    path = tmp_path / "passwd"
    path.write_text("")
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True,
                       capture_output=True)
    return path


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_the_example_acl_confines_each_locker_to_its_own_root(broker_factory, tmp_path, rig):
    pw = passwords(tmp_path, {"test-1": "pw-one", "test-2": "pw-two", "central": "pw-c"})
    b = broker_factory(anonymous=False, extra=f"password_file {pw}\nacl_file {os.path.abspath(ACL)}\n")
    creds = tmp_path / "creds"
    creds.write_text("test-1:pw-one\n")
    creds.chmod(0o600)
    central = Subscriber(b.port, ["bibbox/#"], validate=contract_validator, qos=1,
                         username="central", password="pw-c").start()
    link = rig.link(b.url, cfg=with_mqtt(rig, credentials_file=str(creds)))
    assert central.last(f"{ROOT}/availability").json()["state"] == "online"
    # locker test-1's credentials, in a raw client, try to eavesdrop on test-2 ...
    spy = Subscriber(b.port, ["bibbox/test-2/#", "bibbox/+/commands/#", f"{ROOT}/commands/+"],
                     qos=1, username="test-1", password="pw-one").start()
    # ... and to forge test-2's state (mosquitto drops it and the client)
    forger = Subscriber(b.port, [f"{ROOT}/commands/+"], username="test-1",
                        password="pw-one").start()
    forger.publish("bibbox/test-2/state", b'{"forged": true}', qos=0)
    central.publish("bibbox/test-2/commands/get_state", json.dumps(
        {"request_id": "for-2", "sent_at": rig.clock.wall(), "locker_id": "test-2"}),
        qos=1).wait_for_publish(5)
    # a marker through the same broker proves the earlier messages had their chance
    central.publish(f"{ROOT}/commands/get_state", json.dumps(
        {"request_id": "marker", "sent_at": rig.clock.wall(), "locker_id": "test-1"}),
        qos=1).wait_for_publish(5)
    central.wait_for(lambda ms: any(m.topic == f"{ROOT}/responses" for m in ms))
    spy.wait_for(lambda ms: ms, 5, what="the spy's own command topic")
    assert not [m for m in central.messages if m.topic == "bibbox/test-2/state"]
    # (overlapping subscriptions may bring the allowed one twice)
    assert {m.topic for m in spy.messages} == {f"{ROOT}/commands/get_state"}
    # a wrong password is refused outright
    bad = rig.link(b.url, start=True, cfg=with_mqtt(rig, credentials_file=str(
        _write(tmp_path / "bad", "test-1:nope"))))
    wait_until(lambda: bad.health()["last_error"], 10, "the refusal")
    assert not bad.health()["connected"]
    for s in (central, spy, forger):
        s.stop()
    assert not central.errors, central.errors
    assert link.health()["connected"]


def _write(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_no_card_number_or_pin_on_the_wire_during_a_pickup(broker, rig):
    sniffer = Subscriber(broker.port, ["#"], validate=contract_validator).start()
    rig.link(broker.url)
    rig.call(lambda lk: rig.rig.add_patron(ALICE_CARD, ALICE_PIN))
    rig.call(lambda lk: rig.rig.place("h1", ALICE_CARD, 3))
    rig.controller.post(CardRead(CardNumber.parse(ALICE_CARD)))
    rig.controller.post(PinEntered("0000"))                  # a wrong one first
    wait_until(lambda: (rig.controller.board.get("kiosk") or {}).get("message") == "wrong_pin",
               10, "the wrong PIN to be noticed")
    rig.controller.post(PinEntered(ALICE_PIN))
    wait_until(lambda: rig.rig.relays.pulses, 10, "the unlock")
    rig.controller.post(RelayFired(3, 0.8))
    rig.controller.post(RelayReleased(3))
    rig.door(3, True)
    rig.door(3, False)
    sniffer.wait_for(lambda ms: any(b"hold.collected" in m.payload for m in ms), 10,
                     what="hold.collected")
    assert len(sniffer.messages) > 10
    for m in sniffer.messages:
        assert ALICE_CARD not in m.topic and ALICE_CARD.encode() not in m.payload
        for pin in (ALICE_PIN, "0000"):
            assert not _holds_value(json.loads(m.payload), pin), (m.topic, m.payload)
    sniffer.stop()
    assert not sniffer.errors, sniffer.errors


def _holds_value(obj, needle):
    if isinstance(obj, dict):
        return any(k in ("pin", "card") or _holds_value(v, needle) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_holds_value(v, needle) for v in obj)
    return str(obj) == needle


@needs_openssl
@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_the_example_broker_configuration_runs_and_admits_a_locker(tmp_path, pki, rig):
    """config/mosquitto/mosquitto.conf with its paths and ports pointed at the
    test's files: mosquitto starts, and a locker gets in over TLS with its
    password and stays confined by the example ACL."""
    from tests.brokers import free_port, wait_port
    conf = open(os.path.join(os.path.dirname(ACL), "mosquitto.conf")).read()
    tls_port, local_port = free_port(), free_port()
    pw = passwords(tmp_path, {"test-1": "pw-one"})
    conf = (conf.replace("/etc/mosquitto/passwd", str(pw))
                .replace("/etc/mosquitto/acl", os.path.abspath(ACL))
                .replace("/etc/mosquitto/certs/library-ca.crt", str(pki / "ca.crt"))
                .replace("/etc/mosquitto/certs/broker.crt", str(pki / "server.crt"))
                .replace("/etc/mosquitto/certs/broker.key", str(pki / "server.key"))
                .replace("/var/lib/mosquitto/", str(tmp_path) + "/")
                .replace("listener 8883", f"listener {tls_port} 127.0.0.1")
                .replace("listener 1883 127.0.0.1", f"listener {local_port} 127.0.0.1"))
    path = tmp_path / "mosquitto.conf"
    path.write_text("user root\n" + conf)
    proc = subprocess.Popen(["mosquitto", "-c", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        assert wait_port(tls_port), proc.stderr.read1().decode() if proc.poll() else "no port"
        creds = _write(tmp_path / "creds", "test-1:pw-one")
        link = rig.link(f"mqtts://127.0.0.1:{tls_port}",
                        cfg=with_mqtt(rig, ca_file=str(pki / "ca.crt"),
                                      credentials_file=str(creds)))
        wait_until(lambda: link.health()["subscribed"], 10, "the locker to get in")
    finally:
        proc.terminate()
        proc.wait(5)
