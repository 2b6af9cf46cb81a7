"""Issue 9, item 8 (staff part): a CPR number typed into any free-text field
of the staff page is refused (400, ``cpr_in_text``, a message in Danish and
English) before anything is written; then the state directory's files and
every log record are scanned for it."""

from __future__ import annotations

import logging

import pytest

from tests.domain_helpers import BOB_CARD
from tests.web.test_staff_auth import StaffClient, make_staff_app

CPRS = ("0101709999", "010170-9999", "010170 9999")


def typed(cpr):
    return f"patron {cpr} called"


def assert_refused(r, what):
    assert r.status_code == 400, (what, r.status_code, r.get_data(as_text=True)[:200])
    body = r.get_json(silent=True)
    if body is not None:
        assert body["error"] == "cpr_in_text", (what, body)
        assert "CPR" in body["message"], body["message"]


@pytest.mark.parametrize("lang", ["da", "en"])
def test_cpr_typed_into_any_staff_field_is_refused_and_never_stored(tmp_path, caplog, lang):
    caplog.set_level(logging.DEBUG)
    rig, app = make_staff_app(tmp_path)
    rig.place("H-9", BOB_CARD, 1)
    client = StaffClient(app)
    client.c.set_cookie("bibbox-lang", lang, path="/staff")
    assert client.login().status_code == 302
    for cpr in CPRS:
        text = typed(cpr)
        assert_refused(client.cmd("open", compartment=2, reason=text), "open")
        assert_refused(client.cmd("removed", compartment=1, reason=text), "removed")
        assert_refused(client.cmd("cancel", hold_id="H-9", reason=text), "cancel")
        assert_refused(client.cmd("service", compartment=3, out_of_service=True,
                                  reason=text), "service")
        assert_refused(client.get("/staff/audit", query_string={"actor": text}), "audit")
        assert_refused(client.get("/staff/audit.csv", query_string={"actor": text}),
                       "audit.csv actor")
        # a parameter the page does not know is not stored either
        r = client.get("/staff/audit.csv", query_string={"note": text, "sep": text})
        assert r.status_code in (200, 400)
        r.get_data()
        r = client.post("/staff/accounts/add",
                        data={"name": "x" + cpr.replace(" ", "").replace("-", ""),
                              "role": "staff", "password": "long enough password",
                              "password2": "long enough password"})
        assert r.status_code in (302, 400)
        assert "error=" in r.headers.get("Location", "error="), r.headers
    # the refusals name the problem in the page's language
    r = client.cmd("open", compartment=2, reason=typed(CPRS[0]))
    message = r.get_json()["message"]
    assert ("personnummer" in message.lower()) == (lang == "da"), message
    # nothing happened
    assert not rig.relays.pulses
    assert rig.locker.compartments[3].out_of_service is None
    assert rig.locker.holds["H-9"].state.value != "cancelled"
    rig.run()
    # scan what was written: every file of the state directory, every log record
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert any(p.name == "staff.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for form in CPRS:
            assert form.encode() not in data, (path.name, form)
    for record in caplog.records:
        line = record.getMessage() + repr(record.args)
        for form in CPRS:
            assert form not in line, (record.name, line[:200])
