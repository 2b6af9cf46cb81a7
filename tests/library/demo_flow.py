"""The demo against its embedded test library system, driven over HTTP as a
person would: staff load by scanning an item (the staff page's JSON API,
logged in), the simulator plays the door, the patron presents a card and
types the PIN on the kiosk, takes the items and closes the door.  Every
response body is kept (``Http.seen``) for the privacy scan."""

from __future__ import annotations

import http.cookiejar
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

from bibbox.daemon.bootstrap import open_staff_accounts
from bibbox.daemon.cli import demo_daemon
from tests.domain_helpers import wait_until

STAFF, STAFF_PASSWORD = "anna", "correct horse battery"

# from library/demo_library.json (made up: 31 February does not exist)
SOREN, SOREN_PIN, SOREN_ITEM = "3102851234", "0471", "57010037"
METTE, METTE_PIN, METTE_ITEMS = "DK7751000017", "0852", ("57010011", "57010029")
BIRTHE, BIRTHE_PIN = "DK7751000025", "0111"          # card reported lost
JENS, JENS_PIN = "DK7751000033", "0333"              # 250 kr in fees
WRONG_PIN = "0999"


def daemon_threads():
    """The running threads, but the test library system's AnyIO workers
    (pysip2 runs its handlers there; they idle a while after it stopped)."""
    return {t for t in threading.enumerate() if t.name != "AnyIO worker thread"}


class Http:
    """Requests to the daemon on loopback with one cookie jar; every
    response body is kept in ``seen`` as ``(path, bytes)``."""

    def __init__(self, port):
        self.port, self.seen, self.csrf = port, [], None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        self.seen.append((path, raw))
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body):
        return self.call("POST", path, body)

    def staff_login(self):
        _, token = self.get("/staff/api/login-token")
        self.csrf = token["csrf"]
        status, me = self.post("/staff/api/login", {"name": STAFF, "password": STAFF_PASSWORD})
        assert status == 200, me
        self.csrf = me["csrf"]

    def cmd(self, name, **body):
        body.setdefault("idem", uuid.uuid4().hex)
        return self.post("/staff/api/" + name, body)


def start_demo(state_dir, ils, clock=None):
    """``bibbox demo --ils ILS`` in this process, with a staff account; started."""
    state_dir.mkdir(parents=True, exist_ok=True)
    accounts = open_staff_accounts(str(state_dir))
    accounts.add(STAFF, STAFF_PASSWORD, "admin")
    daemon = demo_daemon(state_dir, port=0, ils=ils, clock=clock)
    try:
        daemon.start()
    except BaseException:
        daemon.stop()
        raise
    return daemon


def kiosk_screen(web, want, timeout=10, message=None):
    deadline = time.monotonic() + timeout
    view = None
    while time.monotonic() < deadline:
        _, view = web.get("/api/kiosk")
        if view["screen"] in want and (message is None or view.get("message") == message):
            return view
        time.sleep(0.05)
    raise AssertionError(f"kiosk screen {view and view['screen']!r}, wanted {want}")


def door(web, n, is_open):
    status, body = web.post(f"/sim/doors/{n}", {"open": is_open})
    assert status == 200, body


def wait_door_open(web, n):
    wait_until(lambda: web.get("/sim/state")[1]["doors"][str(n)]["open"],
               what=f"door {n} springs open")


def load_by_item(web, barcode):
    """Staff scan ``barcode``; the library system names its patron; staff
    load the announced hold; the door springs open and staff close it.
    Returns (hold id, compartment)."""
    status, found = web.post("/staff/api/item", {"barcode": barcode})
    assert status == 200 and found["announced"], found
    hold_id = found["announced"]["hold_id"]
    status, loaded = web.cmd("load", hold_id=hold_id)
    assert status == 200, loaded
    n = loaded["compartment"]
    wait_door_open(web, n)
    door(web, n, False)
    # the lock's pulse ends (a pulse asked for while one is on merges with it)
    wait_until(lambda: web.get("/sim/state")[1]["relays"][str(n)] == "off",
               what="the relay released")
    wait_until(lambda: web.get(f"/staff/api/holds?ids={hold_id}")[1]["holds"][0]["state"]
               == "ready", what="the hold is ready")
    return hold_id, n


def present(web, card_text):
    status, body = web.post("/sim/card", {"data": card_text + "\r"})
    assert status == 200, body


def collect(web, card_text, pins, compartments):
    """Present the card, type each PIN, take the items, close the doors."""
    present(web, card_text)
    kiosk_screen(web, ("pin",))
    for pin in pins[:-1]:                      # wrong ones first
        web.post("/api/kiosk/pin", {"pin": pin})
        kiosk_screen(web, ("pin",), message="wrong_pin")
    web.post("/api/kiosk/pin", {"pin": pins[-1]})
    for n in compartments:
        wait_door_open(web, n)
    for n in compartments:
        door(web, n, False)
    return kiosk_screen(web, ("receipt",))


def deny(web, card_text, pin):
    present(web, card_text)
    kiosk_screen(web, ("pin",))
    web.post("/api/kiosk/pin", {"pin": pin})
    view = kiosk_screen(web, ("denied",))
    web.post("/api/kiosk/action", {"action": "cancel"})
    kiosk_screen(web, ("idle",))
    return view
