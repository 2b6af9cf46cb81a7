"""The staff page's gate: logins, sessions, roles, CSRF, cookies, lockout.

Flask's test client against a real locker on a fake clock (no threads).
The helpers at the top are shared with the other staff tests.
"""

import os
import re
import sqlite3
import stat
import uuid

import pytest

from tests.domain_helpers import Rig
from bibbox.daemon.bootstrap import open_staff_accounts
from bibbox.web.app import create_app

PASSWORD = "correct horse battery"
OTHER_PASSWORD = "another fine password"


class StaffClient:
    """A browser stand-in: one cookie jar, the CSRF token of its session."""

    def __init__(self, app, address="10.0.0.5", https=True):
        self.app = app
        self.c = app.test_client()
        self.c.environ_base.update({"wsgi.url_scheme": "https" if https else "http",
                                    "REMOTE_ADDR": address})
        self.csrf = None

    def login_token(self):
        page = self.c.get("/staff/login")
        form = page.get_data(as_text=True).split('id="login-form"', 1)[1]
        return re.search(r'name="csrf" value="([^"]*)"', form).group(1)

    def login(self, name="anna", password=PASSWORD):
        r = self.c.post("/staff/login", data={"csrf": self.login_token(), "name": name,
                                              "password": password, "next": "/staff/"})
        if r.status_code == 302:
            self.csrf = self.c.get("/staff/api/me").get_json()["csrf"]
        return r

    def session_id(self):
        for name in ("__Host-bibbox-staff", "bibbox-staff"):
            cookie = self.c.get_cookie(name)
            if cookie is not None:
                return cookie.value
        return None

    def get(self, path, **kw):
        return self.c.get(path, **kw)

    def post(self, path, json=None, data=None, csrf=True):
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        return self.c.post(path, json=json, data=data, headers=headers)

    def cmd(self, path, **body):
        body.setdefault("idem", uuid.uuid4().hex)
        return self.post("/staff/api/" + path, json=body)


def make_staff_app(tmp_path, **sections):
    rig = Rig(tmp_path, **sections)
    rig.start()
    staff_accounts = open_staff_accounts(rig.cfg.locker.state_dir, clock=rig.controller.clock)
    app = create_app(controller=rig.controller, cfg=rig.cfg, parts=("staff",),
                     staff_accounts=staff_accounts, staff_secret=staff_accounts.secret)
    accounts = app.extensions["bibbox"]["staff"].accounts
    accounts.add("anna", PASSWORD, "admin")
    accounts.add("bob", OTHER_PASSWORD, "staff")
    return rig, app


@pytest.fixture
def staff_app(tmp_path):
    return make_staff_app(tmp_path)


def staff_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("staff."):
            url = rule.rule.replace("<code>", "en")
            yield rule, url


def audit_actions(rig):
    return [(r["actor"], r["action"]) for r in rig.store.audit_rows(limit=10_000)]


# -- refusing ----------------------------------------------------------------------
def test_every_staff_route_refuses_an_anonymous_request(staff_app):
    rig, app = staff_app
    from bibbox.web.staff import PUBLIC
    client = StaffClient(app)
    checked = 0
    for rule, url in staff_rules(app):
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = client.c.open(url, method=method, json={"idem": "x" * 16})
            checked += 1
            if method == "GET" and not url.startswith("/staff/api/") and \
                    not url.endswith(".csv"):
                assert r.status_code == 302, (method, url)
                assert r.headers["Location"].startswith("/staff/login"), url
            else:
                assert r.status_code == 401, (method, url, r.status_code)
                assert r.get_json()["error"] == "login_required"
    assert checked >= 25
    assert not rig.relays.pulses


def test_admin_routes_refuse_staff_role(staff_app):
    rig, app = staff_app
    from bibbox.web.staff import ADMIN
    client = StaffClient(app)
    assert client.login("bob", OTHER_PASSWORD).status_code == 302
    seen = 0
    for rule, url in staff_rules(app):
        if rule.endpoint not in ADMIN:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = client.c.open(url, method=method, data={"csrf": client.csrf, "name": "anna"})
            assert r.status_code == 403, (method, url)
            seen += 1
    assert seen >= 5
    assert app.extensions["bibbox"]["staff"].accounts.get("anna") is not None
    # and an admin may
    admin = StaffClient(app)
    admin.login("anna")
    assert admin.get("/staff/accounts").status_code == 200


def test_staff_role_may_work_the_locker(staff_app):
    rig, app = staff_app
    client = StaffClient(app)
    client.login("bob", OTHER_PASSWORD)
    for page in ("/staff/", "/staff/load", "/staff/unload", "/staff/audit",
                 "/staff/audit.csv", "/staff/api/state"):
        assert client.get(page).status_code == 200, page
    r = client.cmd("service", compartment=1, out_of_service=True, reason="broken hinge")
    assert r.status_code == 200, r.get_json()


def test_state_changing_post_without_csrf_token_is_400(staff_app):
    rig, app = staff_app
    client = StaffClient(app)
    client.login("anna")
    posts = [url for rule, url in staff_rules(app)
             if "POST" in rule.methods and rule.endpoint not in
             ("staff.login", "staff.login_api")]
    assert len(posts) >= 14
    for url in posts:
        for headers in ({}, {"X-CSRF-Token": "0" * 64}):
            r = client.c.post(url, json={"idem": uuid.uuid4().hex, "compartment": 1,
                                         "reason": "x", "out_of_service": True},
                              headers=headers)
            assert r.status_code == 400, url
            assert r.get_json()["error"] == "csrf", url
    assert not rig.relays.pulses
    assert rig.locker.compartments[1].out_of_service is None
    # the token in a form field works as well as the header
    r = client.c.post("/staff/logout", data={"csrf": client.csrf})
    assert r.status_code == 302


def test_login_form_needs_its_own_token(staff_app):
    rig, app = staff_app
    client = StaffClient(app)
    r = client.c.post("/staff/login", data={"name": "anna", "password": PASSWORD})
    assert r.status_code == 400
    r = client.c.post("/staff/api/login", json={"name": "anna", "password": PASSWORD})
    assert r.status_code == 400
    assert client.session_id() is None


# -- cookies and sessions -------------------------------------------------------------
def _session_cookie_header(response):
    return [h for h in response.headers.getlist("Set-Cookie") if "bibbox-staff=" in h][0]


def test_cookie_flags_on_a_real_locker(staff_app):
    rig, app = staff_app
    client = StaffClient(app)
    r = client.login()
    header = _session_cookie_header(r)
    assert header.startswith("__Host-bibbox-staff=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in header, header
    assert "Expires" not in header and "Max-Age" not in header   # ends with the browser
    assert "Domain" not in header
    # plain http from loopback on a real locker: still Secure
    local = StaffClient(app, address="127.0.0.1", https=False)
    assert "Secure" in _session_cookie_header(local.login())


def test_cookie_is_not_secure_only_for_the_demo_on_loopback(tmp_path):
    rig, app = make_staff_app(tmp_path, locker={"simulated": True})
    local = StaffClient(app, address="127.0.0.1", https=False)
    header = _session_cookie_header(local.login())
    assert header.startswith("bibbox-staff=")
    assert "Secure" not in header and "HttpOnly" in header and "SameSite=Strict" in header
    assert local.get("/staff/").status_code == 200
    remote = StaffClient(app, address="10.1.2.3", https=False)
    assert "Secure" in _session_cookie_header(remote.login())
    # behind the reverse proxy over HTTPS: tests/web/test_staff_proxy.py (real waitress)


def test_new_session_id_at_every_login(staff_app):
    rig, app = staff_app
    client = StaffClient(app)
    client.login()
    first = client.session_id()
    client.login()
    second = client.session_id()
    assert first and second and first != second
    stale = StaffClient(app)
    stale.c.set_cookie("__Host-bibbox-staff", first, path="/")
    assert stale.get("/staff/api/state").status_code == 401
    assert client.get("/staff/api/state").status_code == 200
    # session ids are not stored in the clear
    raw = open(tmp_db(app), "rb").read()
    assert second.encode() not in raw
    # logout ends it server-side
    assert client.post("/staff/logout").status_code == 302
    again = StaffClient(app)
    again.c.set_cookie("__Host-bibbox-staff", second, path="/")
    assert again.get("/staff/api/state").status_code == 401
    assert ("anna", "logout") in audit_actions(rig)


def tmp_db(app):
    return app.extensions["bibbox"]["staff"].accounts.path


def test_sessions_end_after_idle_time_and_on_password_change(staff_app):
    rig, app = staff_app
    accounts = app.extensions["bibbox"]["staff"].accounts
    client = StaffClient(app)
    client.login()
    rig.clock.advance(accounts.idle_s - 60)
    assert client.get("/staff/api/state").status_code == 200   # touches the session
    rig.clock.advance(accounts.idle_s - 60)
    assert client.get("/staff/api/state").status_code == 200
    rig.clock.advance(accounts.idle_s + 1)
    assert client.get("/staff/api/state").status_code == 401
    client.login()
    assert client.get("/staff/api/state").status_code == 200
    accounts.set_password("anna", "a brand new password")
    assert client.get("/staff/api/state").status_code == 401


# -- lockout ----------------------------------------------------------------------------
def test_repeated_failures_lock_the_account(staff_app):
    rig, app = staff_app
    for i in range(5):
        attacker = StaffClient(app, address=f"10.9.0.{i + 1}")   # a new address each time
        assert attacker.login("anna", "wrong password!").status_code in (401, 429)
    r = StaffClient(app, address="10.8.0.1").login("anna", PASSWORD)
    assert r.status_code == 429
    assert "min" in r.get_data(as_text=True)
    assert StaffClient(app, address="10.8.0.1").login("bob", OTHER_PASSWORD).status_code == 302
    rig.clock.advance(15 * 60 + 1)
    assert StaffClient(app, address="10.8.0.1").login("anna", PASSWORD).status_code == 302
    actions = audit_actions(rig)
    assert actions.count(("anna", "login_failed")) == 4
    assert ("anna", "login_locked") in actions


def test_repeated_failures_lock_the_address(staff_app):
    rig, app = staff_app
    for name in ("nobody", "carl", "dora", "eve", "fred"):
        StaffClient(app, address="10.7.7.7").login(name, "guess guess guess")
    assert StaffClient(app, address="10.7.7.7").login("bob", OTHER_PASSWORD).status_code == 429
    assert StaffClient(app, address="10.7.7.8").login("bob", OTHER_PASSWORD).status_code == 302
    assert ("anonymous", "login_failed") in audit_actions(rig)
    # no typed name is kept in the clear
    raw = open(tmp_db(app), "rb").read()
    assert b"carl" not in raw and b"guess" not in raw


# behind a reverse proxy the lockout counts the forwarded address: that is
# waitress's work now (trusted_proxy), tested on a real server in
# tests/web/test_staff_proxy.py


# -- storage --------------------------------------------------------------------------------
def test_passwords_are_scrypt_hashes_and_files_are_private(staff_app, tmp_path):
    rig, app = staff_app
    path = tmp_db(app)
    conn = sqlite3.connect(path)
    hashes = [r[0] for r in conn.execute("SELECT pw_hash FROM staff")]
    conn.close()
    assert all(h.startswith("scrypt$16384$8$1$") for h in hashes)
    assert PASSWORD.encode() not in open(path, "rb").read()
    for name in ("staff.db", "staff-secret"):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert app.secret_key and len(app.secret_key) >= 32


def test_login_audit_and_safe_redirects(staff_app):
    rig, app = staff_app
    client = StaffClient(app)
    r = client.c.post("/staff/login", data={"csrf": client.login_token(), "name": "anna",
                                            "password": PASSWORD, "next": "//evil.example/"})
    assert r.headers["Location"] == "/staff/"
    r = client.get("/staff/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["Cache-Control"] == "no-store"
    assert ("anna", "login") in audit_actions(rig)


def test_odd_tokens_are_refused_not_crashed(staff_app):
    rig, app = staff_app
    client = StaffClient(app)
    client.login()
    r = client.c.post("/staff/api/open", json={"idem": "k" * 16, "compartment": 1,
                                               "reason": "x"},
                      headers={"X-CSRF-Token": "ø" * 64})
    assert r.status_code == 400 and r.get_json()["error"] == "csrf"
    r = client.c.post("/staff/login", data={"csrf": "ø", "name": "anna", "password": "x"})
    assert r.status_code == 400
    assert client.c.get("/staff/api/holds?ids=a/b").status_code == 400
    assert client.post("/staff/api/item", data="not json").status_code == 400
