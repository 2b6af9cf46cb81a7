"""An idle web server does not wake: its loop waits for work, not for a 1 s tick."""

from __future__ import annotations

import time
import urllib.request

from flask import Flask

from bibbox.web.serving import WebServer


def context_switches(native_id):
    with open(f"/proc/self/task/{native_id}/status") as status:
        return sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)


def test_the_idle_server_loop_does_not_wake_and_still_answers():
    app = Flask(__name__)
    app.add_url_rule("/", "hello", lambda: "hello")
    server = WebServer(app, "127.0.0.1", 0, threads=2)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5) as r:
            assert r.read() == b"hello"
        time.sleep(0.5)                                  # let the answer's wakeups pass
        before = context_switches(server.thread.native_id)
        time.sleep(3.2)                                  # three ticks of waitress's default
        assert context_switches(server.thread.native_id) - before == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5) as r:
            assert r.read() == b"hello"                  # a request still wakes it at once
    finally:
        server.stop()
    assert not server.thread.is_alive()
