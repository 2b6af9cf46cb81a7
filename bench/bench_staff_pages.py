"""How fast are the staff pages on a big, old locker?

500 compartments (450 holding a hold, a few with alarms or out of service),
50,000 historic holds and 150,000 audit rows in the store.  Every page and
JSON view is requested in-process through Flask's test client (server time:
routing, the controller call, SQLite, templates, JSON), logged in as a
staff member.  Prints p50/p99/max per page and the process's RSS.  Target:
p99 <= 100 ms on the development machine.  Prints figures; asserts nothing.

    python bench/bench_staff_pages.py [--runs 200] [--compartments 500] [--holds 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import tomllib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bibbox.locker.domain import config as config_mod  # noqa: E402
from bibbox.locker.domain.clock import FakeClock  # noqa: E402
import lockers  # noqa: E402
from bibbox.locker.app.controller import Controller  # noqa: E402
from bibbox.locker.app.local_verifier import LocalVerifier  # noqa: E402
from bibbox.locker.domain.core import Locker  # noqa: E402
from bibbox.locker.domain.identity import KeyedHasher  # noqa: E402
from bibbox.locker.domain.messages import DoorChanged  # noqa: E402
from bibbox.locker.store import Store  # noqa: E402

PASSWORD = "bench password 123"


class Relays:
    def pulse(self, compartment, seconds):
        pass

    def prepare_unlock(self, compartments):
        pass

    def expect_unlock(self, compartments):
        pass


def build(state_dir, n_comps, n_holds, seed=7):
    rng = random.Random(seed)
    sizes = ["S", "M", "L"]
    # A locker config.parse accepts: the doors on Kerong boards (lockers.py).
    raw = tomllib.loads(lockers.locker_toml(n_comps, locker_id="bench"))
    raw["locker"]["state_dir"] = state_dir
    cfg = config_mod.parse(raw)
    clock = FakeClock()
    store = Store(os.path.join(state_dir, "bibbox.db"), clock=clock)
    hasher = KeyedHasher(b"bench-site-key-0123456789abcdef")
    now = clock.wall()
    patrons = [f"{rng.getrandbits(256):064x}" for _ in range(5000)]
    conn = store.conn
    conn.execute("BEGIN")
    holds, audit = [], []
    for i in range(n_holds):              # history: collected or removed
        ts = now - (n_holds - i) * 600.0
        comp = rng.randint(1, n_comps)
        patron = rng.choice(patrons)
        state = "collected" if rng.random() < 0.9 else "removed"
        items = json.dumps([{"barcode": f"97887{i:08d}", "title": "Bog", "due": None}])
        holds.append((f"H-{i:06d}", patron, items, f"{i % 9000 + 1000}", ts + 7 * 86400,
                      state, comp, sizes[comp % 3], None, ts))
        who = f"staff{rng.randint(1, 12)}"
        audit += [(ts, who, "unlock", comp, None, f"loading hold H-{i:06d}", ""),
                  (ts + 30, who, "loaded", comp, "P-" + patron[:8], "", f"hold H-{i:06d}"),
                  (ts + 86400, "P-" + patron[:8],
                   "collected" if state == "collected" else "removed", comp,
                   "P-" + patron[:8], "patron pickup", f"hold H-{i:06d}")]
    for c in range(1, int(n_comps * 0.9) + 1):  # now: most compartments hold something
        expired = c % 10 == 0
        patron = rng.choice(patrons)
        items = json.dumps([{"barcode": f"97888{c:08d}", "title": "Bog", "due": None}])
        holds.append((f"A-{c:04d}", patron, items, f"{c % 9000 + 1000}",
                      now + (-86400 if expired else 3 * 86400),
                      "ready", c, sizes[c % 3], None, now))
    conn.executemany("INSERT INTO holds VALUES (?,?,?,?,?,?,?,?,?,?)", holds)
    conn.executemany("INSERT INTO audit (ts, actor, action, compartment, patron, reason, "
                     "detail) VALUES (?,?,?,?,?,?,?)", audit)
    conn.execute("COMMIT")
    controller = Controller(clock)
    locker = Locker(cfg, clock=clock, store=store, hasher=hasher,
                    verifier=LocalVerifier(store, hasher, clock), relays=Relays(),
                    post=controller.post, publish=controller.board.publish)
    controller.attach(locker)
    locker.start({c.number: "closed" for c in cfg.compartments})
    for c in range(n_comps - 20, n_comps - 10):
        locker.set_out_of_service(c, "broken hinge", "bench")
    for c in range(n_comps - 5, n_comps):
        locker.door_changed(DoorChanged(c, True))   # forced open: alarms
    controller.run_pending()
    return cfg, controller, locker, store, len(audit)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--compartments", type=int, default=500)
    p.add_argument("--holds", type=int, default=50_000)
    p.add_argument("--audit-indexes", action="store_true",
                   help="try the audit indexes proposed for locker/store.py "
                        "(compartment, action, actor; each with id)")
    args = p.parse_args(argv)
    import logging
    logging.disable(logging.WARNING)   # the alarms raised while building
    import psutil

    from bibbox.daemon.bootstrap import open_staff_accounts
    from bibbox.web.app import create_app
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    with tempfile.TemporaryDirectory() as state_dir:
        t0 = time.perf_counter()
        cfg, controller, locker, store, n_audit = build(state_dir, args.compartments,
                                                        args.holds)
        print(f"built {args.compartments} compartments, {args.holds} historic holds, "
              f"{n_audit} audit rows in {time.perf_counter() - t0:.1f} s; "
              f"{len(locker.holds)} active holds")
        if args.audit_indexes:
            for column in ("compartment", "action", "actor"):
                store.conn.execute(f"CREATE INDEX IF NOT EXISTS audit_{column} ON audit ({column}, id)")
            print("with the proposed audit indexes")
        accounts = open_staff_accounts(state_dir, clock=controller.clock)
        app = create_app(controller=controller, cfg=cfg, parts=("staff",),
                         staff_accounts=accounts, staff_secret=accounts.secret)
        app.extensions["bibbox"]["staff"].accounts.add("bench", PASSWORD, "admin")
        client = app.test_client()
        client.environ_base.update({"wsgi.url_scheme": "https", "REMOTE_ADDR": "10.0.0.9"})
        page = client.get("/staff/login").get_data(as_text=True).split('id="login-form"')[1]
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r = client.post("/staff/login", data={"csrf": token, "name": "bench",
                                              "password": PASSWORD})
        assert r.status_code == 302, r.status_code
        version = controller.board.get("state")["version"]
        mid = store.conn.execute("SELECT max(id) / 2 FROM audit").fetchone()[0]
        day = time.strftime("%Y-%m-%d", time.localtime(controller.clock.wall() - 3 * 86400))
        pages = [
            ("overview /staff/", "/staff/"),
            ("state JSON (live)", f"/staff/api/state?version={version - 1}"),
            ("load page", "/staff/load"),
            ("unload page", "/staff/unload"),
            ("audit newest 200", "/staff/audit"),
            ("audit page back", f"/staff/audit?before={mid}"),
            ("audit compartment", f"/staff/audit?compartment={args.compartments // 2}"),
            ("audit kind=unloading", "/staff/audit?kind=unloading"),
            ("audit one day", f"/staff/audit?from={day}&to={day}"),
            ("audit actor", "/staff/audit?actor=staff3&kind=loading"),
        ]
        print(f"\n{'page':<24}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU p50':>9}"
              f"{'CPU p99':>9}{'KiB':>8}")
        worst = 0.0
        for name, url in pages:
            times, cpu, size = [], [], 0
            for _ in range(3):
                client.get(url)             # warm up
            for _ in range(args.runs):
                c, t = time.thread_time(), time.perf_counter()
                r = client.get(url)
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.thread_time() - c) * 1000)
                size = len(r.data)
            assert r.status_code == 200, (url, r.status_code)
            times.sort()
            cpu.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            cpu99 = cpu[min(len(cpu) - 1, int(len(cpu) * 0.99))]
            worst = max(worst, p99)
            print(f"{name:<24}{statistics.median(times):>9.1f}{p99:>9.1f}{times[-1]:>9.1f}"
                  f"{statistics.median(cpu):>9.1f}{cpu99:>9.1f}{size / 1024:>8.0f}")
        t = time.perf_counter()
        r = client.get("/staff/audit.csv")
        body = r.get_data()
        print(f"\nCSV export of all {n_audit} audit rows: {time.perf_counter() - t:.2f} s, "
              f"{len(body) / 1e6:.1f} MB (streamed)")
        t = time.perf_counter()
        for _ in range(20):
            locker._dirty(state=True)
            locker.flush()
        print(f"controller: one state snapshot (Locker.state_view, {args.compartments} "
              f"compartments) {(time.perf_counter() - t) / 20 * 1000:.1f} ms")
        print(f"(machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: "
              "wall times include waiting for the CPU; CPU columns do not)")
        rss = proc.memory_info().rss
        print(f"RSS {rss / 2**20:.0f} MiB (grew {(rss - rss0) / 2**20:.0f} MiB); "
              f"worst p99 {worst:.1f} ms (target <= 100 ms)")
        store.close()


if __name__ == "__main__":
    main()
