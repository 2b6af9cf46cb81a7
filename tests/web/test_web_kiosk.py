"""The kiosk and /sim HTTP surface through Flask's test client.

A real Locker, Store and Controller (the domain test Rig, no threads): the
requests post messages, :meth:`Rig.run` plays the controller thread.
"""

from __future__ import annotations

import json
import threading

import pytest

from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig
from bibbox.daemon.config_file import load as load_config
from bibbox.web.app import MAX_BODY_BYTES, create_app

REMOTE = {"REMOTE_ADDR": "192.168.1.5"}


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    r.start()
    r.add_patron(ALICE_CARD, ALICE_PIN)
    r.place("h1", ALICE_CARD, 2, titles=("Kaffe og kage",))
    return r


@pytest.fixture
def client(rig):
    app = create_app(controller=rig.controller, cfg=rig.cfg, parts=("kiosk", "sim"))
    app.testing = True
    return app.test_client()


def post_json(client, url, data, **kw):
    return client.post(url, data=json.dumps(data), content_type="application/json", **kw)


def assert_json_error(response, status, error=None):
    assert response.status_code == status, response.data
    body = response.get_json()
    assert body["ok"] is False and body["message"]
    if error:
        assert body["error"] == error
    return body


# ---------------------------------------------------------------- the page
def test_page_is_danish_by_default_with_no_inline_script(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<html lang="da" dir="ltr">' in html
    assert 'data-screen="idle"' in html
    assert "Content-Security-Policy" in html and "script-src 'self'" in html
    assert "<script>" not in html                      # CSP: scripts from files only
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    for asset in ("/static/kiosk.js", "/static/i18n.js", "/static/kiosk.css"):
        assert asset in html
        assert client.get(asset).status_code == 200


def test_page_language_follows_the_config(tmp_path):
    rig = Rig(tmp_path, locker={"language": "en"})
    rig.start()
    app = create_app(controller=rig.controller, cfg=rig.cfg, parts=("kiosk",))
    html = app.test_client().get("/").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in html
    assert ">Dansk</button>" in html


# ---------------------------------------------------------------- loopback only
@pytest.mark.parametrize("method, url, body", [
    ("get", "/", None),
    ("get", "/api/kiosk", None),
    ("get", "/api/kiosk?version=1&wait=0", None),
    ("post", "/api/kiosk/pin", {"pin": "1234"}),
    ("post", "/api/kiosk/action", {"action": "cancel"}),
])
def test_kiosk_refuses_other_hosts(client, rig, method, url, body):
    rig.card(ALICE_CARD)
    if body is None:
        response = client.get(url, environ_base=REMOTE)
    else:
        response = post_json(client, url, body, environ_base=REMOTE)
    assert_json_error(response, 403, "forbidden")
    rig.run()
    assert rig.kiosk["screen"] == "pin"               # nothing reached the locker


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
def test_kiosk_answers_loopback_addresses(client, address):
    assert client.get("/api/kiosk", environ_base={"REMOTE_ADDR": address}).status_code == 200


def test_sim_refuses_other_hosts(tmp_path):
    from bibbox.locker.domain import config as config_mod
    from bibbox.daemon.cli import DEMO_CONFIG

    class FakeSim:
        door_pins = {1: 17}

        def state(self):
            return {"doors": {}, "relays": {}}

    cfg = config_mod.replace(load_config(DEMO_CONFIG), locker={"state_dir": str(tmp_path)})
    rig = Rig(tmp_path)
    app = create_app(controller=rig.controller, cfg=cfg, simulator=FakeSim())
    client = app.test_client()
    assert client.get("/sim/state").status_code == 200
    assert_json_error(client.get("/sim/state", environ_base=REMOTE), 403, "forbidden")


# ---------------------------------------------------------------- bad requests
@pytest.mark.parametrize("body, content_type, error", [
    ("{not json", "application/json", "bad_request"),
    ("[1, 2]", "application/json", "bad_request"),
    ('"1234"', "application/json", "bad_request"),
    ('{"pin": "1234"}', "text/plain", "bad_request"),
    ("{}", "application/json", "bad_request"),
    ('{"code": "1234"}', "application/json", "bad_request"),
    ('{"pin": 1234}', "application/json", "bad_pin"),
    ('{"pin": ["1", "2", "3", "4"]}', "application/json", "bad_pin"),
    ('{"pin": null}', "application/json", "bad_pin"),
    ('{"pin": "12345678901234567"}', "application/json", "bad_pin"),
])
def test_bad_pin_requests_are_400_with_a_json_error(client, rig, body, content_type, error):
    rig.card(ALICE_CARD)
    response = client.post("/api/kiosk/pin", data=body, content_type=content_type)
    assert_json_error(response, 400, error)
    rig.run()
    assert rig.kiosk["screen"] == "pin" and rig.kiosk["message"] == ""


def test_missing_pin_names_the_field(client):
    body = assert_json_error(post_json(client, "/api/kiosk/pin", {}), 400, "bad_request")
    assert "pin" in body["message"]


def test_bad_action_requests(client):
    assert_json_error(post_json(client, "/api/kiosk/action", {}), 400, "bad_request")
    assert_json_error(post_json(client, "/api/kiosk/action", {"action": "open"}), 400,
                      "bad_action")
    assert_json_error(post_json(client, "/api/kiosk/action", {"action": ["cancel"]}), 400,
                      "bad_action")


@pytest.mark.parametrize("url", ["/api/kiosk/pin", "/api/kiosk/code", "/api/kiosk/action"])
def test_oversized_body_is_413_with_a_json_error(client, url):
    body = json.dumps({"pin": "1" * MAX_BODY_BYTES})
    response = client.post(url, data=body, content_type="application/json")
    assert_json_error(response, 413, "too_large")


def test_wrong_method_is_refused(client):
    assert client.get("/api/kiosk/pin").status_code == 405
    assert client.post("/api/kiosk", data="{}", content_type="application/json").status_code == 405


def test_the_pin_error_never_echoes_the_pin(client):
    response = post_json(client, "/api/kiosk/pin", {"pin": "98765432109876543"})
    assert b"98765432109876543" not in response.data


# ---------------------------------------------------------------- /sim on a real locker
@pytest.mark.parametrize("method, url", [
    ("get", "/sim"), ("get", "/sim/"), ("get", "/sim/state"),
    ("post", "/sim/card"), ("post", "/sim/doors/1"), ("post", "/sim/doors/1/jam"),
])
def test_sim_is_off_on_a_real_locker(client, method, url):
    if method == "get":
        response = client.get(url)
    else:
        response = post_json(client, url, {"data": "0101709999\r", "open": True})
    body = assert_json_error(response, 404, "not_simulated")
    assert "real locker" in body["message"]


# ---------------------------------------------------------------- the kiosk API
def test_the_view_carries_no_patron_data(client, rig):
    rig.card(ALICE_CARD)
    view = client.get("/api/kiosk").get_json()
    assert view["screen"] == "pin"
    text = json.dumps(view)
    for secret in (ALICE_CARD, rig.patron_hash(ALICE_CARD), rig.patron_hash(ALICE_CARD)[:12]):
        assert secret not in text
    assert not [k for k in view if "hash" in k or "card" in k or k in ("pin", "patron")]


def test_pin_and_actions_reach_the_locker(client, rig):
    rig.card(ALICE_CARD)
    assert post_json(client, "/api/kiosk/action", {"action": "extend"}).get_json() == {"ok": True}
    rig.run()
    assert post_json(client, "/api/kiosk/action", {"action": "pin_typed"}).get_json() == \
        {"ok": True}
    rig.run()
    assert rig.relays.prepared == [(2,)]          # Alice's door readied, nothing opened
    assert post_json(client, "/api/kiosk/pin", {"pin": "0000"}).get_json() == {"ok": True}
    rig.run()
    rig.run()
    view = client.get("/api/kiosk").get_json()
    assert (view["screen"], view["message"], view["tries_left"]) == ("pin", "wrong_pin", 2)
    post_json(client, "/api/kiosk/pin", {"pin": ALICE_PIN})
    rig.run()
    rig.run()
    view = client.get("/api/kiosk").get_json()
    assert view["screen"] == "opening"
    assert view["compartments"] == [{"number": 2, "status": "queued"}]
    assert [i["title"] for i in view["items"]] == ["Kaffe og kage"]


def test_cancel_returns_to_idle(client, rig):
    rig.card(ALICE_CARD)
    post_json(client, "/api/kiosk/action", {"action": "cancel"})
    rig.run()
    assert client.get("/api/kiosk").get_json()["screen"] == "idle"


# ---------------------------------------------------------------- long poll
def in_thread(fn):
    """Run ``fn`` on a thread; return (done event, result list)."""
    done, result = threading.Event(), []

    def run():
        result.append(fn())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, result


def test_long_poll_answers_at_once_when_the_version_differs(client, rig):
    current = client.get("/api/kiosk").get_json()
    # a stale version, or one from before a restart: no waiting at all
    for stale in (current["version"] - 1, current["version"] + 100, 0):
        done, result = in_thread(lambda: client.get(f"/api/kiosk?version={stale}").get_json())
        assert done.wait(10), "the long poll waited although the version differs"
        assert result[0] == current


def test_long_poll_waits_for_a_change(rig, tmp_path):
    app = create_app(controller=rig.controller, cfg=rig.cfg, parts=("kiosk",))
    version = rig.kiosk["version"]
    done, result = in_thread(
        lambda: app.test_client().get(f"/api/kiosk?version={version}").get_json())
    assert not done.is_set()
    rig.card(ALICE_CARD)                               # publishes a new version
    assert done.wait(10)
    assert result[0]["screen"] == "pin" and result[0]["version"] != version


def test_long_poll_times_out_with_the_same_view(client, rig):
    view = client.get("/api/kiosk").get_json()
    again = client.get(f"/api/kiosk?version={view['version']}&wait=0").get_json()
    assert again == view
    negative = client.get(f"/api/kiosk?version={view['version']}&wait=-5").get_json()
    assert negative == view


def test_a_non_numeric_version_is_a_plain_get(client):
    view = client.get("/api/kiosk?version=abc").get_json()
    assert view["screen"] == "idle"
