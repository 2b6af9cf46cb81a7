"""The staff page's JSON API against a real locker on a fake clock: loading,
unloading and the bad input of issue 3, each with a clear answer and
nothing lost, duplicated or half-done."""

import csv
import io
import logging

import pytest

from bibbox.locker.domain.calendar import end_of_local_day, zone
from tests.domain_helpers import ALICE_CARD, BOB_CARD, BOB_PIN
from tests.web.test_staff_auth import (OTHER_PASSWORD, StaffClient, audit_actions,
                                   make_staff_app)

ITEM_A, ITEM_B, ITEM_C = "9788702173550", "9788711909959", "9780306406157"


@pytest.fixture
def rig_app(tmp_path):
    return make_staff_app(tmp_path)


@pytest.fixture
def client(rig_app):
    rig, app = rig_app
    c = StaffClient(app)
    assert c.login().status_code == 302
    return c


def tiles(client):
    return {t["n"]: t for t in client.get("/staff/api/state").get_json()["tiles"]}


def patron(client, card=ALICE_CARD):
    r = client.post("/staff/api/patron", json={"card": card})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def load(client, items=(ITEM_A,), card=ALICE_CARD, draft="draft0001", **kw):
    token = patron(client, card)["patron"]
    return client.cmd("load", draft=draft, items=list(items), patron=token, **kw)


def hold_status(client, hold_id):
    return client.get(f"/staff/api/holds?ids={hold_id}").get_json()["holds"][0]


def play_door(rig, n):
    """The relay fires, the door springs open, staff close it."""
    fired = rig.fire_all()
    assert n in fired
    rig.door(n, True)
    rig.door(n, False)


# -- loading --------------------------------------------------------------------------
def test_load_a_multi_item_hold(rig_app, client):
    rig, app = rig_app
    for barcode in (ITEM_A, ITEM_B):
        r = client.post("/staff/api/item", json={"barcode": barcode})
        assert r.get_json() == {"ok": True, "barcode": barcode, "announced": None}
    p = patron(client)
    assert p["pseudonym"].startswith("P-") and p["proposal"] == 3   # smallest: S
    r = client.cmd("load", draft="multi0001", items=[ITEM_A, ITEM_B], patron=p["patron"],
                   pickup_days=3)
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["hold_id"] == "S-multi0001" and body["compartment"] == 3
    assert body["state"] == "loading"
    assert tiles(client)[3]["state"] == "loading"
    play_door(rig, 3)
    status = hold_status(client, "S-multi0001")
    assert status["state"] == "ready" and status["items"] == 2
    # the end of the local day three days on (issue 9.11), not now + 3 x 86,400 s
    assert status["deadline"] == end_of_local_day(rig.clock.wall(), 3, zone("Europe/Copenhagen"))
    assert status["pickup_number"] == body["pickup_number"]
    view = client.get("/staff/api/state").get_json()
    tile = [t for t in view["tiles"] if t["n"] == 3][0]
    assert tile["state"] == "ready" and tile["days_left"] == 3
    assert tile["holds"][0]["pickup"] == body["pickup_number"]
    assert ("anna", "loaded") in audit_actions(rig)


def test_card_number_is_never_echoed_stored_or_logged(rig_app, client, caplog):
    rig, app = rig_app
    caplog.set_level(logging.DEBUG)
    r = client.post("/staff/api/patron", json={"card": ALICE_CARD})
    assert ALICE_CARD not in r.get_data(as_text=True)
    client.cmd("load", draft="privacy01", items=[ITEM_A], patron=r.get_json()["patron"])
    play_door(rig, 3)
    bad = client.post("/staff/api/patron", json={"card": "0101-90!!"})
    assert bad.status_code == 400 and "0101" not in bad.get_data(as_text=True)
    files = [p for p in rig.tmp_path.iterdir() if p.is_file()]
    assert any(p.name == "staff.db" for p in files)
    for path in files:                       # the databases and their WAL files
        assert ALICE_CARD.encode() not in path.read_bytes(), path.name
    for page in ("/staff/", "/staff/load", "/staff/audit", "/staff/audit.csv",
                 "/staff/api/state", "/staff/api/holds?ids=S-privacy01"):
        assert ALICE_CARD not in client.get(page).get_data(as_text=True)
    assert ALICE_CARD not in caplog.text


def test_bad_input_gets_a_clear_message(rig_app, client):
    rig, app = rig_app
    rig.add_patron(BOB_CARD, BOB_PIN)

    def item(text):
        r = client.post("/staff/api/item", json={"barcode": text})
        return r.status_code, r.get_json()

    status, body = item("hello world!")
    assert status == 400 and body["error"] == "not_item" and body["message"]
    assert item("9788702173551")[1]["error"] == "not_item"          # wrong check digit
    status, body = item("0101901234")                                 # CPR-shaped
    assert body["error"] == "looks_like_card" and "0101901234" not in str(body)
    assert item(BOB_CARD)[1]["error"] == "looks_like_card"            # a known patron's card
    r = client.post("/staff/api/patron", json={"card": "x"})
    assert r.get_json()["error"] == "bad_card"
    r = client.post("/staff/api/patron", json={"card": ITEM_A})
    assert r.get_json()["error"] == "looks_like_item"
    r = client.cmd("load", draft="noitems01", items=[], patron="Tbogus")
    assert r.get_json()["error"] == "no_items"
    r = client.cmd("load", draft="nopatron1", items=[ITEM_A], patron="Tbogus")
    assert r.get_json()["error"] == "patron_expired"
    r = client.cmd("open", compartment=1, reason="")
    assert r.get_json()["error"] == "reason_required"
    assert not rig.relays.pulses


def test_compartment_in_use_and_item_already_in_the_locker(rig_app, client):
    rig, app = rig_app
    rig.place("H-1", BOB_CARD, 1)
    r = load(client, compartment=1, draft="inuse0001")
    assert r.status_code == 400 and r.get_json()["error"] == "compartment_in_use"
    r = client.post("/staff/api/item", json={"barcode": "H-1-0"})
    assert r.get_json()["error"] == "item_in_locker" and "1" in r.get_json()["message"]
    assert not rig.relays.pulses


def test_stale_page_is_refused(rig_app, client):
    rig, app = rig_app
    seen = tiles(client)[4]
    rig.place("H-2", BOB_CARD, 4)           # someone else used compartment 4 meanwhile
    r = load(client, compartment=4, fp=seen["fp"], draft="stale0001")
    assert r.status_code == 409
    body = r.get_json()
    assert body["error"] == "stale" and "4" in body["message"]
    r = client.cmd("open", compartment=4, reason="patron called", fp=seen["fp"])
    assert r.status_code == 409
    r = client.cmd("service", compartment=4, out_of_service=True, reason="x", fp=seen["fp"])
    assert r.status_code == 409
    assert not rig.relays.pulses and rig.locker.compartments[4].out_of_service is None
    fresh = tiles(client)[4]
    assert client.cmd("open", compartment=4, reason="patron called",
                      fp=fresh["fp"]).status_code == 200


def test_double_submit_runs_once(rig_app, client):
    rig, app = rig_app
    token = patron(client)["patron"]
    body = dict(draft="double001", items=[ITEM_A], patron=token, idem="same-key-0001")
    first = client.cmd("load", **body)
    second = client.cmd("load", **body)
    assert first.status_code == second.status_code == 200
    assert second.get_json()["replayed"] is True
    assert second.get_json()["hold_id"] == first.get_json()["hold_id"]
    # a second submit with a new key but the same draft makes no second hold
    third = client.cmd("load", draft="double001", items=[ITEM_A], patron=token)
    assert third.get_json()["hold_id"] == "S-double001" and third.get_json()["replayed"]
    assert len(rig.relays.pulses) == 1
    assert [h.id for h in rig.locker.holds.values() if h.id.startswith("S-")] == ["S-double001"]
    # the same key on another account is another submit
    other = StaffClient(app)
    other.login("bob", OTHER_PASSWORD)
    r = other.cmd("open", compartment=2, reason="check", idem="same-key-0001")
    assert r.status_code == 200 and "replayed" not in r.get_json()


def test_jammed_door_fails_over_to_another(rig_app, client):
    rig, app = rig_app
    r = load(client, items=(ITEM_C,), draft="jammed001")
    assert r.get_json()["compartment"] == 3
    rig.fire_all()                                   # the relay fired, the door never moved
    rig.advance(rig.cfg.timing.door_open_timeout_s + 1)
    status = hold_status(client, "S-jammed001")
    assert status["state"] == "announced" and status["compartment"] is None
    assert "door_jammed" in tiles(client)[3]["alarms"]
    proposal = client.post("/staff/api/propose", json={"hold_id": "S-jammed001"}).get_json()
    assert proposal["compartment"] not in (None, 3)
    again = client.cmd("load", hold_id="S-jammed001", compartment=proposal["compartment"],
                       fp=tiles(client)[proposal["compartment"]]["fp"])
    assert again.status_code == 200, again.get_json()
    play_door(rig, proposal["compartment"])
    assert hold_status(client, "S-jammed001")["state"] == "ready"
    assert ("anna", "loading_failed") in audit_actions(rig)


def test_door_left_open_during_loading(rig_app, client):
    rig, app = rig_app
    n = load(client, draft="leftopen1").get_json()["compartment"]
    rig.fire_all()
    rig.door(n, True)
    rig.advance(rig.cfg.timing.door_held_open_s + 1)
    status = hold_status(client, "S-leftopen1")
    assert status["state"] == "loading" and status["door"] == "open"
    assert "door_held_open" in status["alarms"]
    rig.door(n, False)
    status = hold_status(client, "S-leftopen1")
    assert status["state"] == "ready" and status["alarms"] == []


def test_expired_session_mid_loading_keeps_the_scanned_work(rig_app, client):
    rig, app = rig_app
    accounts = app.extensions["bibbox"]["staff"].accounts
    token = patron(client)["patron"]
    rig.clock.advance(accounts.idle_s + 1)
    body = dict(draft="expired01", items=[ITEM_A, ITEM_B], patron=token, idem="resubmit-0001")
    r = client.cmd("load", **body)
    assert r.status_code == 401 and r.get_json()["error"] == "login_required"
    assert not rig.relays.pulses
    client.login()                                   # the page's login dialog
    r = client.cmd("load", **body)                   # the same submit again
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["hold_id"] == "S-expired01" and len(rig.relays.pulses) == 1


def test_announced_hold_from_central(rig_app, client):
    rig, app = rig_app
    alice = rig.patron_hash(ALICE_CARD)
    rig.locker.announce_hold("C-77", alice, [{"barcode": ITEM_B, "title": "Havens fugle"}],
                             size="M")
    rig.run()
    announced = client.get("/staff/api/announced").get_json()["holds"]
    assert announced[0]["hold_id"] == "C-77" and announced[0]["patron"].startswith("P-")
    r = client.post("/staff/api/item", json={"barcode": ITEM_B}).get_json()
    assert r["announced"]["hold_id"] == "C-77"
    proposal = client.post("/staff/api/propose", json={"hold_id": "C-77"}).get_json()
    assert proposal["size"] == "M"
    r = client.cmd("load", hold_id="C-77")
    assert r.get_json()["compartment"] == proposal["compartment"]
    play_door(rig, proposal["compartment"])
    assert hold_status(client, "C-77")["state"] == "ready"


# -- unloading and the overview -------------------------------------------------------------
def test_unload_expired_hold(rig_app, client):
    rig, app = rig_app
    n = load(client, draft="unload001", pickup_days=1).get_json()["compartment"]
    play_door(rig, n)
    last_day_over = end_of_local_day(rig.clock.wall(), 1, zone("Europe/Copenhagen"))
    rig.advance(last_day_over - rig.clock.wall() + rig.cfg.timing.expiry_check_s)
    assert client.get("/staff/api/unload").status_code == 401     # after the last day
    client.login()
    unload = client.get("/staff/api/unload").get_json()["unload"]
    assert [(u["compartment"], u["why"]) for u in unload] == [(n, "expired")]
    assert tiles(client)[n]["state"] == "expired"
    r = client.cmd("open", compartment=n, reason="unloading: expired", purpose="unloading",
                   fp=tiles(client)[n]["fp"])
    assert r.status_code == 200
    rig.fire_all()
    rig.door(n, True)
    r = client.cmd("removed", compartment=n, reason="unloaded", fp=tiles(client)[n]["fp"])
    assert r.get_json()["error"] == "door_open"
    rig.door(n, False)
    r = client.cmd("removed", compartment=n, reason="unloaded", fp=tiles(client)[n]["fp"])
    assert r.status_code == 200 and r.get_json()["removed"] == ["S-unload001"]
    assert tiles(client)[n]["state"] == "free"
    assert client.get("/staff/api/unload").get_json()["unload"] == []
    actions = audit_actions(rig)
    assert ("anna", "unlock") in actions and ("anna", "removed") in actions


def test_out_of_service_alarm_cancel_and_move(rig_app, client):
    rig, app = rig_app
    r = client.cmd("service", compartment=2, out_of_service=True)
    assert r.get_json()["error"] == "reason_required"
    r = client.cmd("service", compartment=2, out_of_service=True, reason="broken hinge")
    assert r.status_code == 200
    t = tiles(client)[2]
    assert t["state"] == "out_of_service" and t["oos"] == "broken hinge"
    r = load(client, compartment=2, draft="oos000001")
    assert r.get_json()["error"] == "out_of_service"
    assert client.cmd("service", compartment=2, out_of_service=False).status_code == 200
    rig.door(4, True)                                    # forced open
    assert "door_forced" in tiles(client)[4]["alarms"]
    rig.door(4, False)
    r = client.cmd("alarm/clear", alarm="door_forced", compartment=4)
    assert r.status_code == 200 and tiles(client)[4]["alarms"] == []
    rig.place("H-9", BOB_CARD, 1)
    r = client.cmd("move", hold_id="H-9", to=4, fp=tiles(client)[4]["fp"])
    assert r.status_code == 200 and tiles(client)[4]["holds"][0]["id"] == "H-9"
    r = client.cmd("cancel", hold_id="H-9", reason="patron cancelled")
    assert r.status_code == 200
    assert tiles(client)[4]["state"] == "unload"
    actions = audit_actions(rig)
    for action in ("out_of_service", "in_service", "alarm_cleared", "hold_moved",
                   "hold_cancelled"):
        assert ("anna", action) in actions, action


def test_long_poll_answers_when_the_state_changes(rig_app, client):
    rig, app = rig_app
    first = client.get("/staff/api/state").get_json()
    same = client.get(f"/staff/api/state?version={first['version']}&wait=0").get_json()
    assert same["version"] == first["version"]
    rig.locker.set_out_of_service(1, "test", "anna")
    rig.run()
    newer = client.get(f"/staff/api/state?version={first['version']}&wait=5").get_json()
    assert newer["version"] > first["version"]


# -- audit ----------------------------------------------------------------------------------
def test_audit_page_filters_and_csv(rig_app, client):
    rig, app = rig_app
    client.cmd("service", compartment=2, out_of_service=True, reason="=HYPERLINK(\"x\")")
    client.cmd("open", compartment=1, reason="patron called")
    rig.place("H-5", BOB_CARD, 4)
    page = client.get("/staff/audit?kind=service").get_data(as_text=True)
    assert "Taget ud af drift" in page and "patron called" not in page
    page = client.get("/staff/audit?compartment=1").get_data(as_text=True)
    assert "patron called" in page and "HYPERLINK" not in page
    day = __import__("datetime").datetime.fromtimestamp(rig.clock.wall()).date()
    assert "patron called" in client.get(f"/staff/audit?from={day}&to={day}").get_data(
        as_text=True)
    assert client.get("/staff/audit?from=yesterday").status_code == 400
    r = client.get("/staff/audit.csv?kind=service")
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    # in the staff member's language (Danish here), the stored code last
    assert rows[0] == ["Nr.", "Tid", "Hvem", "Hændelse", "Rum", "Låner", "Hvorfor",
                       "Detaljer", "Kode"]
    assert rows[1][2:5] == ["anna", "Taget ud af drift", "2"]
    assert rows[1][6].startswith("'=")                     # never a spreadsheet formula
    assert rows[1][8] == "out_of_service"
    everything = client.get("/staff/audit.csv?sep=semicolon").get_data(as_text=True)
    assert "Reservering varslet" in everything and "hold_placed" in everything
    assert ";" in everything.splitlines()[1]
    assert rig.patron_hash(BOB_CARD) not in everything       # pseudonyms only
    assert "P-" + rig.patron_hash(BOB_CARD)[:8] in everything
