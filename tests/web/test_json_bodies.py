"""Every JSON endpoint (staff, kiosk, sim) answers a hostile body with 400
and an error code, never 500: one place reads bodies, ``web/http.py``."""

from __future__ import annotations

import pytest

from tests.domain_helpers import Rig
from tests.web.test_staff_auth import StaffClient, make_staff_app
from bibbox.web.app import create_app

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000


def post_raw(client, url, text, headers=None):
    return client.post(url, data=text, content_type="application/json",
                       headers=headers or {})


def json_post_rules(app, prefix):
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and rule.rule.startswith(prefix):
            yield (rule.rule.replace("<int:n>", "1").replace("<int:board>", "0")
                   .replace("<name>", "rs485"))


@pytest.mark.parametrize("text", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_every_staff_json_endpoint_refuses_a_deeply_nested_body(tmp_path, text):
    rig, app = make_staff_app(tmp_path)
    client = StaffClient(app)
    assert client.login().status_code == 302
    urls = list(json_post_rules(app, "/staff/api/"))
    assert len(urls) >= 10
    for url in urls:
        headers = {"X-CSRF-Token": client.csrf}
        if url == "/staff/api/login":
            anon = StaffClient(app)
            token = anon.c.get("/staff/api/login-token").get_json()["csrf"]
            r = post_raw(anon.c, url, text, {"X-CSRF-Token": token})
        else:
            r = post_raw(client.c, url, text, headers)
        assert r.status_code == 400, (url, r.status_code)
        assert r.get_json()["error"] == "bad_request", url


@pytest.mark.parametrize("text", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_every_kiosk_and_sim_json_endpoint_refuses_a_deeply_nested_body(tmp_path, text):
    class FakeSim:
        """Any call reaching the simulator fails the test: the body is refused first."""
        door_pins = {1: 17}

        def __getattr__(self, name):
            return lambda *a, **k: pytest.fail(f"the simulator was reached: {name}")

    rig = Rig(tmp_path)
    rig.start()
    app = create_app(controller=rig.controller, cfg=rig.cfg, simulator=FakeSim())
    client = app.test_client()
    urls = list(json_post_rules(app, "/api/")) + list(json_post_rules(app, "/sim/"))
    assert len(urls) >= 7, urls
    for url in urls:
        r = post_raw(client, url, text)
        assert r.status_code == 400, (url, r.status_code)
        assert r.get_json()["error"] == "bad_request", url
