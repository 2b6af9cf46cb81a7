"""Issue 9, item 6: staff long polls never starve the server.

A real :class:`WebServer` (waitress, 8 threads) serving kiosk and staff in
one app, as the demo does, and more staff long polls than threads: the kiosk
and a staff page still answer before any waiting poll ends; polls over the
bound answer at once with the current state and ``retry_after``."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from tests.domain_helpers import wait_until
from tests.web.test_staff_auth import PASSWORD, StaffClient, make_staff_app
from bibbox.web.app import create_app
from bibbox.web.serving import WebServer

THREADS = 8
SESSIONS = 6
POLLS_PER_SESSION = 2
WAIT_S = 6


def fetch(url, cookie=None):
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.status, r.read()


def test_more_staff_long_polls_than_threads_leave_kiosk_and_pages_answering(tmp_path):
    rig, staff_only = make_staff_app(tmp_path)
    ext = staff_only.extensions["bibbox"]
    app = create_app(controller=rig.controller, cfg=rig.cfg, parts=("kiosk", "staff"),
                     staff_accounts=ext["staff"].accounts, staff_secret=ext["staff_secret"])
    cookies = []
    for i in range(SESSIONS):
        client = StaffClient(app, address=f"10.0.1.{i + 1}")
        assert client.login("anna", PASSWORD).status_code == 302
        cookies.append(f"__Host-bibbox-staff={client.session_id()}")
    rig.controller.start()
    server = WebServer(app, "127.0.0.1", 0, threads=THREADS)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    done = []                         # (what, answer), in the order they came
    lock = threading.Lock()
    try:
        status, raw = fetch(base + "/staff/api/state", cookies[0])
        version = json.loads(raw)["version"]

        def poll(cookie):
            status, raw = fetch(f"{base}/staff/api/state?version={version}&wait={WAIT_S}",
                                cookie)
            with lock:
                done.append(("poll", json.loads(raw)))

        polls = [threading.Thread(target=poll, args=(c,), daemon=True)
                 for c in cookies for _ in range(POLLS_PER_SESSION)]
        assert len(polls) > THREADS
        for t in polls:
            t.start()
        dispatcher = server.server.task_dispatcher
        wait_until(lambda: dispatcher.active_count + len(done) >= THREADS,
                   what="the polls to arrive")

        def other(what, url, cookie=None):
            status, raw = fetch(url, cookie)
            with lock:
                done.append((what, status))

        others = [threading.Thread(target=other, args=("kiosk", base + "/api/kiosk")),
                  threading.Thread(target=other, args=("page", base + "/staff/", cookies[0]))]
        for t in others:
            t.start()
        for t in others + polls:
            t.join(60)
        kinds = [what for what, _ in done]
        waited = [i for i, (what, body) in enumerate(done)
                  if what == "poll" and "retry_after" not in body]
        assert waited, "some polls must have waited"
        first_waited_poll_end = waited[0]
        assert kinds.index("kiosk") < first_waited_poll_end, kinds
        assert kinds.index("page") < first_waited_poll_end, kinds
        assert dict(done)["kiosk"] == 200 and dict(done)["page"] == 200
        turned_away = [body for what, body in done if what == "poll" and "retry_after" in body]
        assert turned_away, "polls over the bound answer at once"
        for body in turned_away:
            assert body["ok"] and body["version"] == version and body["retry_after"] > 0
    finally:
        server.stop()
        rig.controller.stop()
