"""Issue 9, item 5: a lockout that cannot be turned against staff.

- the lock check, the password check and the failure count are one atomic
  step (30 concurrent attempts at one account: 5 password checks);
- a device that logged in to an account before (a signed device cookie)
  does not hit that account's lock, nor its address's;
- a repeated lock lasts longer each time (growing delays)."""

from __future__ import annotations

import threading

import pytest

from tests.web.test_staff_auth import (OTHER_PASSWORD, PASSWORD, StaffClient,
                                       make_staff_app)
from bibbox.web.staff import accounts as accounts_mod


@pytest.fixture
def staff_app(tmp_path):
    return make_staff_app(tmp_path)


def test_concurrent_attempts_get_no_more_password_checks_than_the_limit(staff_app,
                                                                          monkeypatch):
    rig, app = staff_app
    accounts = app.extensions["bibbox"]["staff"].accounts
    checks = []
    real = accounts_mod.verify_password

    def counting(password, encoded):
        checks.append(1)
        return real(password, encoded)
    monkeypatch.setattr(accounts_mod, "verify_password", counting)
    start = threading.Barrier(30)
    results = []

    def attempt(i):
        start.wait()
        results.append(accounts.login("anna", "wrong password!", f"10.3.0.{i + 1}").code)
    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 30
    assert len(checks) == accounts.fail_limit, len(checks)
    assert results.count("locked") == 30 - accounts.fail_limit + 1


def test_a_known_device_is_not_locked_out_by_an_attacker(staff_app):
    rig, app = staff_app
    anna = StaffClient(app, address="10.7.7.7")              # the library's one NAT address
    assert anna.login("anna", PASSWORD).status_code == 302   # this device is now known
    for i in range(8):                                       # an attacker, many addresses
        StaffClient(app, address=f"10.9.0.{i + 1}").login("anna", "wrong password!")
    for _ in range(6):                                       # and behind the same NAT
        StaffClient(app, address="10.7.7.7").login("nobody", "wrong password!")
    # a new device is refused, even with the right password ...
    assert StaffClient(app, address="10.8.0.1").login("anna", PASSWORD).status_code == 429
    assert StaffClient(app, address="10.7.7.7").login("bob", OTHER_PASSWORD).status_code == 429
    # ... but anna's own device still gets in
    assert anna.login("anna", PASSWORD).status_code == 302
    # and other accounts were never locked by the address
    assert StaffClient(app, address="10.8.0.2").login("bob", OTHER_PASSWORD).status_code == 302


def test_a_known_device_that_keeps_failing_is_locked_itself(staff_app):
    rig, app = staff_app
    device = StaffClient(app, address="10.7.7.7")
    assert device.login("anna", PASSWORD).status_code == 302
    for _ in range(5):
        device.login("anna", "wrong password!")
    assert device.login("anna", PASSWORD).status_code == 429
    # the account itself is not locked for anna's other devices
    other = StaffClient(app, address="10.7.7.8")
    assert other.login("anna", PASSWORD).status_code == 302


def test_a_forged_device_cookie_counts_for_nothing(staff_app):
    rig, app = staff_app
    for i in range(5):
        StaffClient(app, address=f"10.9.0.{i + 1}").login("anna", "wrong password!")
    forged = StaffClient(app, address="10.8.0.1")
    forged.c.set_cookie(accounts_mod.DEVICE_COOKIE_PREFIX + "anna", "abc.def", path="/staff")
    assert forged.login("anna", PASSWORD).status_code == 429


def test_each_lock_of_an_account_lasts_longer(staff_app):
    rig, app = staff_app
    accounts = app.extensions["bibbox"]["staff"].accounts

    def five_failures():
        for i in range(5):
            StaffClient(app, address=f"10.9.1.{i + 1}").login("anna", "wrong password!")

    def can_log_in():
        return StaffClient(app, address="10.8.0.1").login("anna", PASSWORD).status_code == 302
    five_failures()
    rig.clock.advance(accounts.lock_s + 1)
    five_failures()                                          # locked a second time
    rig.clock.advance(accounts.lock_s + 1)
    assert not can_log_in()                                  # twice as long now
    rig.clock.advance(accounts.lock_s)
    assert can_log_in()
