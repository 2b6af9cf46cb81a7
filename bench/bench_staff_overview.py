"""How fast does the staff overview draw a big locker in a browser?

A simulated locker of each size (``bibbox demo`` on Kerong boards, a place
for every door: the cabinet's front, tests/lockers.py) with a few ready
holds, two doors out of service and two forced open, a logged-in staff page
in headless Chromium.  Measured in the page (User Timing marks set by
staff.js): the first render of every tile (script start -> tiles drawn,
and navigation start -> tiles drawn), a filter switch and a search keystroke
(click/input -> the tiles shown again, layout included); each at full speed
and with the CPU slowed 4x (DevTools throttling, about a mid-range phone).
Also the bytes of the page's HTML and of the live state JSON, raw and
gzipped.  Prints figures and the machine's load; asserts nothing.

    python bench/bench_staff_overview.py [--sizes 48,200,500] [--loads 7]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lockers import demo_locker, place_ready_hold  # noqa: E402

PASSWORD = "bench password 123"
CHROMIUM = "/usr/bin/chromium"

FIRST_RENDER = """() => {
  const s = performance.getEntriesByName("bibbox-overview-start")[0];
  const r = performance.getEntriesByName("bibbox-overview-rendered")[0];
  return [r.startTime - s.startTime, r.startTime];
}"""
FILTER_SWITCH = """() => {
  const times = [];
  for (const key of ["alarms", "ready", "free", "oos", "all"]) {
    const t = performance.now();
    document.querySelector(`[data-filter="${key}"]`).click();
    document.body.offsetHeight;                 // the layout, too
    times.push(performance.now() - t);
  }
  return times;
}"""
KEYSTROKES = """() => {
  const box = document.getElementById("tile-search"), times = [];
  for (const text of ["1", "15", "150", "15", "1", ""]) {
    const t = performance.now();
    box.value = text;
    box.dispatchEvent(new Event("input", {bubbles: true}));
    document.body.offsetHeight;
    times.push(performance.now() - t);
  }
  return times;
}"""


def setup(doors, directory):
    from bibbox.daemon.bootstrap import open_staff_accounts
    daemon = demo_locker(directory, doors, rows=10, timeout_s=0.5)
    open_staff_accounts(daemon.cfg.locker.state_dir).add("bench", PASSWORD, "admin")
    for i, n in enumerate(range(10, doors, max(1, doors // 8))):
        place_ready_hold(daemon, f"B-{n}", "BIB0000001", n, pickup=f"{8000 + i}")
    for n in (doors // 2, doors - 3):
        daemon.controller.call(lambda locker, n=n: locker.set_out_of_service(n, "bench", "bench"))
    for n in (doors // 3, doors - 1):
        daemon.simulator.set_door(n, True)
    return daemon


def sizes_of(page, base):
    html = page.request.get(base + "/staff/").body()
    state = page.request.get(base + "/staff/api/state").body()
    return len(html), len(gzip.compress(html)), len(state), len(gzip.compress(state))


def measure(browser, daemon, loads, throttle):
    base = f"http://127.0.0.1:{daemon.port}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(base + "/staff/login")
    page.fill("#name", "bench")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_url(base + "/staff/")
    cdp = context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
    script, nav, switch, keys = [], [], [], []
    for _ in range(loads):
        page.goto(base + "/staff/")
        page.wait_for_function("performance.getEntriesByName('bibbox-overview-rendered').length")
        s, n = page.evaluate(FIRST_RENDER)
        script.append(s)
        nav.append(n)
        switch += page.evaluate(FILTER_SWITCH)
        keys += page.evaluate(KEYSTROKES)
    sizes = sizes_of(page, base)
    context.close()
    return script, nav, switch, keys, sizes


def ms(values):
    return f"{statistics.median(values):7.1f} {max(values):7.1f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="48,200,500")
    p.add_argument("--loads", type=int, default=7)
    args = p.parse_args(argv)
    import logging
    logging.disable(logging.ERROR)
    from playwright.sync_api import sync_playwright
    print(f"{'doors':>5} {'CPU':>4} | {'render p50/max ms':>17} | {'nav->tiles':>15} | "
          f"{'filter switch':>15} | {'keystroke':>15}")
    sizes_rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            for doors in [int(s) for s in args.sizes.split(",")]:
                with tempfile.TemporaryDirectory() as directory:
                    daemon = setup(doors, directory)
                    try:
                        time.sleep(1.0)                # the forced doors seen, the boards polled
                        for throttle in (1, 4):
                            script, nav, switch, keys, sizes = measure(browser, daemon,
                                                                       args.loads, throttle)
                            print(f"{doors:>5} {str(throttle) + 'x':>4} | {ms(script):>17} | "
                                  f"{ms(nav):>15} | {ms(switch):>15} | {ms(keys):>15}")
                        sizes_rows.append((doors, sizes))
                    finally:
                        daemon.stop()
        finally:
            browser.close()
    print(f"\n{'doors':>5} | {'HTML KiB':>8} {'gzip':>6} | {'state JSON KiB':>14} {'gzip':>6}")
    for doors, (html, html_gz, state, state_gz) in sizes_rows:
        print(f"{doors:>5} | {html / 1024:8.1f} {html_gz / 1024:6.1f} | {state / 1024:14.1f} "
              f"{state_gz / 1024:6.1f}")
    print(f"(machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
