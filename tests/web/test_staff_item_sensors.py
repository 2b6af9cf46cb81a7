"""The staff page and the item sensors: a loading the sensor did not
confirm says so (and where), every alarm kind and everything on the unload
list has words in both staff languages, the audit log reads in words."""

import json
import pathlib

import pytest

from bibbox.locker.domain.messages import ItemSensed
from bibbox.locker.domain.model import AlarmKind
from bibbox.locker.domain.views import UNLOAD_KINDS
from bibbox.web.staff.audit_words import reason_words
from tests.web.test_staff_api import hold_status, load
from tests.web.test_staff_auth import StaffClient, make_staff_app

STRINGS = json.loads((pathlib.Path(__file__).resolve().parents[2] / "web" / "static" /
                      "staff.i18n.json").read_text(encoding="utf-8"))


@pytest.fixture
def rig_app(tmp_path):
    return make_staff_app(tmp_path, timing={"item_grace_s": 1.0})


@pytest.fixture
def client(rig_app):
    c = StaffClient(rig_app[1])
    assert c.login().status_code == 302
    return c


@pytest.mark.parametrize("lang", ["da", "en"])
def test_every_alarm_and_unload_reason_has_words(lang):
    strings = STRINGS[lang]
    assert [k for k in AlarmKind if "alarm_" + k.value not in strings] == []
    assert [w for w in UNLOAD_KINDS if "why_" + w not in strings] == []
    for key in ("st_no_item", "st_checking", "retry_same"):
        assert "{n}" in strings[key]


def test_a_loading_the_sensor_did_not_confirm_says_where(rig_app, client):
    rig, _ = rig_app
    rig.controller.post(ItemSensed(3, False))
    r = load(client)
    assert r.status_code == 200, r.get_json()
    hold_id, number = r.get_json()["hold_id"], r.get_json()["compartment"]
    assert number == 3
    rig.fire_all()
    rig.door(3, True)
    rig.door(3, False)
    status = hold_status(client, hold_id)
    assert status["state"] == "loading" and status["door"] == "closed"   # checking
    assert status["opening"]["seen_open"] is True
    rig.advance(1.5)
    status = hold_status(client, hold_id)
    assert status["state"] == "announced" and status["load_unconfirmed"] == 3
    row = rig.store.audit_rows(action="loading_failed")[-1]
    assert reason_words(row["action"], row["reason"], "da") == "sensoren så intet i rummet"
    # loaded again, with the item: no longer unconfirmed
    r = client.cmd("load", draft="again0001", hold_id=hold_id, compartment=3)
    assert r.status_code == 200, r.get_json()
    assert rig.locker.item_load_unconfirmed(hold_id) is None       # a new try
    rig.fire_all()
    rig.door(3, True)
    rig.controller.post(ItemSensed(3, True))
    rig.door(3, False)
    status = hold_status(client, hold_id)
    assert status["state"] == "ready" and status["load_unconfirmed"] is None
