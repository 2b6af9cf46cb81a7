"""The kiosk's pickup-number actions through Flask's test client, against a
real Locker and Store (the domain test Rig; :meth:`Rig.run` plays the
controller thread)."""

from __future__ import annotations

import json

import pytest

from bibbox.locker.domain.pickup_numbers import ANSWER_FLOOR_S
from bibbox.web.app import create_app
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig
from tests.domain.test_pickup_number import place
from tests.web.test_web_kiosk import REMOTE, assert_json_error, post_json


def make_client(rig):
    app = create_app(controller=rig.controller, cfg=rig.cfg, parts=("kiosk",))
    app.testing = True
    return app.test_client()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path, verifier={"pickup_number_with_pin": True})
    r.start()
    r.add_patron(ALICE_CARD, ALICE_PIN)
    place(r, "h1", ALICE_CARD, 2, "4711", titles=("Kaffe og kage",))
    return r


@pytest.fixture
def client(rig):
    return make_client(rig)


def view(client):
    return client.get("/api/kiosk").get_json()


def step(client, rig, url, body):
    assert post_json(client, url, body).get_json() == {"ok": True}
    rig.run()
    rig.run()          # a verdict the verifier posted back
    return view(client)


def test_number_then_pin_opens_the_door(client, rig):
    assert view(client)["number_entry"] is True
    assert step(client, rig, "/api/kiosk/action", {"action": "pickup_number"})["screen"] == \
        "number"
    assert step(client, rig, "/api/kiosk/number", {"number": "4711"})["screen"] == "pin"
    opened = step(client, rig, "/api/kiosk/pin", {"pin": ALICE_PIN})
    assert opened["screen"] == "opening" and opened["by_number"] is True
    assert [c["number"] for c in opened["compartments"]] == [2]
    assert rig.fire_all() == [2]
    text = json.dumps(opened)
    for secret in ("4711", ALICE_PIN, rig.patron_hash(ALICE_CARD)):
        assert secret not in text


def test_unknown_number_and_wrong_pin_answer_alike(client, rig):
    answers = []
    for number, pin in (("1111", ALICE_PIN), ("4711", "0000")):
        step(client, rig, "/api/kiosk/action", {"action": "pickup_number"})
        step(client, rig, "/api/kiosk/number", {"number": number})
        assert step(client, rig, "/api/kiosk/pin", {"pin": pin})["screen"] == "verifying"
        rig.advance(ANSWER_FLOOR_S)
        shown = view(client)
        answers.append({k: v for k, v in shown.items() if k not in ("version", "seconds_left")})
        step(client, rig, "/api/kiosk/action", {"action": "cancel"})
    assert answers[0] == answers[1]
    assert (answers[0]["screen"], answers[0]["message"]) == ("number", "number_or_pin_wrong")


@pytest.mark.parametrize("body, error", [
    ({}, "bad_request"),
    ({"number": 4711}, "bad_number"),
    ({"number": None}, "bad_number"),
    ({"number": "1" * 17}, "bad_number"),
])
def test_bad_number_requests_are_400(client, rig, body, error):
    step(client, rig, "/api/kiosk/action", {"action": "pickup_number"})
    assert_json_error(post_json(client, "/api/kiosk/number", body), 400, error)
    rig.run()
    assert (view(client)["screen"], view(client)["message"]) == ("number", "")


def test_the_number_screen_answers_loopback_only(client, rig):
    assert_json_error(post_json(client, "/api/kiosk/action", {"action": "pickup_number"},
                                environ_base=REMOTE), 403, "forbidden")
    assert_json_error(post_json(client, "/api/kiosk/number", {"number": "4711"},
                                environ_base=REMOTE), 403, "forbidden")
    rig.run()
    assert view(client)["screen"] == "idle"


def test_off_the_actions_are_refused_and_nothing_reaches_the_locker(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    client = make_client(rig)
    assert view(client)["number_entry"] is False
    body = assert_json_error(post_json(client, "/api/kiosk/action",
                                       {"action": "pickup_number"}), 400, "pickup_number_off")
    assert "not turned on" in body["message"]
    assert_json_error(post_json(client, "/api/kiosk/number", {"number": "4711"}), 400,
                      "pickup_number_off")
    assert rig.controller.queue.empty()
    rig.run()
    assert view(client)["screen"] == "idle"
