"""Issue 9, item 5: the staff page behind the README's reverse proxy.

A real :class:`WebServer` (waitress) with the proxy settings of the default
configuration: requests arrive from 127.0.0.1 (the proxy) with
X-Forwarded-For and X-Forwarded-Proto.  The lockout, the audit log and the
cookies see the real client, and HSTS is sent over HTTPS."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.web.test_staff_auth import OTHER_PASSWORD, make_staff_app
from bibbox.locker.domain import config
from bibbox.web.serving import WebServer, proxy_settings


class Proxy:
    """Talks to the server as nginx would: the client's address appended to
    X-Forwarded-For (after whatever the client sent), the scheme in
    X-Forwarded-Proto."""

    def __init__(self, port):
        self.port = port

    def request(self, method, path, client, body=None, headers=None, spoofed="10.6.6.6"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"X-Forwarded-For": f"{spoofed}, {client}", "X-Forwarded-Proto": "https",
                "Host": "locker.example.org"}
        sent.update(headers or {})
        if body is not None:
            body = json.dumps(body)
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response, data

    def login(self, name, password, client):
        r, data = self.request("GET", "/staff/api/login-token", client)
        cookie = r.getheader("Set-Cookie").split(";", 1)[0]
        token = json.loads(data)["csrf"]
        return self.request("POST", "/staff/api/login", client,
                            body={"name": name, "password": password},
                            headers={"X-CSRF-Token": token, "Cookie": cookie})


@pytest.fixture
def served(tmp_path):
    rig, app = make_staff_app(tmp_path, locker={"simulated": True})
    rig.controller.start()
    server = WebServer(app, "127.0.0.1", 0, proxy=proxy_settings(rig.cfg.web))
    server.start()
    yield rig, Proxy(server.port)
    server.stop()
    rig.controller.stop()


def audit_details(rig, action):
    return [r["detail"] for r in rig.store.audit_rows(limit=10_000) if r["action"] == action]


def test_the_default_configuration_trusts_a_proxy_on_loopback():
    web = config.parse({"locker": {"id": "t"}, "compartments": [
        {"number": 1, "size": "S", "relay_pin": 5, "door_pin": 17}]}).web
    settings = proxy_settings(web)
    assert settings["trusted_proxy"] == "127.0.0.1"
    assert settings["trusted_proxy_headers"] == {"x-forwarded-for", "x-forwarded-proto"}


def test_behind_the_proxy_one_attacker_cannot_lock_out_other_staff(served):
    rig, proxy = served
    statuses = [proxy.login("zed", "nope nope nope", "203.0.113.9")[0].status
                for _ in range(6)]
    assert statuses[-1] == 429                           # that client is throttled
    r, data = proxy.login("bob", OTHER_PASSWORD, "203.0.113.10")
    assert r.status == 200, data
    assert json.loads(data)["name"] == "bob"
    # the audit log names the real clients, never the proxy or a spoofed hop
    assert audit_details(rig, "login") == ["from 203.0.113.10"]
    failed = audit_details(rig, "login_failed")
    assert failed and all(d.startswith("from 203.0.113.9") for d in failed)
    # over HTTPS (the proxy said so): HSTS and a __Host- cookie, even on the demo
    assert r.getheader("Strict-Transport-Security", "").startswith("max-age=")
    assert any(c.startswith("__Host-bibbox-staff=") and "Secure" in c
               for c in r.headers.get_all("Set-Cookie"))
