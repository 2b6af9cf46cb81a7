"""The library system's costs, against the embedded test library system
(pysip2 over TCP on 127.0.0.1, plain SIP2 on a "trusted network").

- verdict: accepted PIN -> verdict through the SIP2 verifier port (63),
  paired with the floor interleaved with it: the test server's own answer
  to the same 63, sent raw on a socket of its own right before and after
  (mean of the two).  p50/p99 of path, floor and paired difference.
- drain: N loans queued (collections while the library system is down),
  then the server started; loans/s until the queue is empty; lost = queued
  minus lent.
- RSS: VmHWM of a fresh interpreter importing the adapter with and
  without PyNaCl (the sealed box), and with pysip2 (the demo's server).

Prints figures; asserts nothing.  ``python bench/bench_library.py [N]``.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bibbox.library.sip2 import frame, patron_information  # noqa: E402
from bibbox.locker.domain.identity import CardNumber, Pin  # noqa: E402
from tests.library.acs import Library, SipServer  # noqa: E402
from tests.library.loan_rig import LibraryRig, sip_client  # noqa: E402
from bibbox.library.verifier import LibraryVerifier  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def raw_63(sock):
    started = time.perf_counter()
    sock.sendall(frame(patron_information("DK-775100", "L0001", "1234"), seq=None))
    data = b""
    while not data.endswith(b"\r"):
        data += sock.recv(4096)
    return time.perf_counter() - started


def bench_verdict(n):
    library = Library()
    server = SipServer(library).start()
    verifier = LibraryVerifier(sip_client(server.port))
    sock = socket.create_connection(("127.0.0.1", server.port))
    card, pin = CardNumber.parse("L0001"), Pin.parse("1234")
    paths, floors = [], []
    for _ in range(n):
        before = raw_63(sock)
        done = threading.Event()
        started = time.perf_counter()
        verifier.verify("h", pin, lambda v: done.set(), card=card)
        done.wait(10)
        paths.append(time.perf_counter() - started)
        floors.append((before + raw_63(sock)) / 2)
    diffs = [p - f for p, f in zip(paths, floors)]
    ms = lambda v: f"{v * 1000:.2f} ms"  # noqa: E731
    print(f"PIN -> verdict ({n}): path p50 {ms(pct(paths, 50))} p99 {ms(pct(paths, 99))}; "
          f"floor p50 {ms(pct(floors, 50))} p99 {ms(pct(floors, 99))}; "
          f"paired difference p50 {ms(pct(diffs, 50))} p99 {ms(pct(diffs, 99))}")
    verifier.close()
    sock.close()
    server.stop()


def bench_drain(n):
    library = Library()
    library.data["items"].update({f"B{i:05d}": {"title": f"Bog {i}"} for i in range(n)})
    server = SipServer(library).start()
    port = server.port
    with tempfile.TemporaryDirectory() as tmp:
        rig = LibraryRig(Path(tmp), port, max_wait_s=10 ** 9)
        rig.start()
        sealed = rig.unsealer.sealer.seal(CardNumber.parse("L0004"))
        with rig.store.unit() as unit:
            for i in range(n):
                unit.queue_loan("checkout", f"H{i}", f"B{i:05d}", patron_hash="x",
                                sealed=sealed, offline=True)
        server.stop()
        rig.start_worker()
        time.sleep(0.5)                       # the outage: the first send fails
        server = SipServer(library, port=port).start()
        started = time.perf_counter()
        rig.until(lambda: rig.store.loans_waiting() == 0, "the drain")
        elapsed = time.perf_counter() - started
        print(f"loan-queue drain after an outage: {n} loans in {elapsed:.2f} s "
              f"({n / elapsed:.0f} loans/s, includes the back-off until the server is seen), "
              f"lost {n - len(library.loans)}")
        rig.close()
    server.stop()


RSS_SNIPPET = """
import sys
{imports}
print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])
"""


def rss(imports):
    out = subprocess.run([sys.executable, "-c", RSS_SNIPPET.format(imports=imports)],
                         capture_output=True, text=True, check=True).stdout
    return int(out) / 1024


def bench_rss():
    base = rss("import bibbox.locker.domain.core")
    adapter = rss("import bibbox.locker.domain.core, bibbox.library.client, "
                  "bibbox.library.transport, bibbox.library.fbs, bibbox.library.verifier, "
                  "bibbox.library.loans")
    nacl = rss("import bibbox.locker.domain.core, bibbox.library.client, "
               "bibbox.library.transport, bibbox.library.fbs, bibbox.library.verifier, "
               "bibbox.library.loans, bibbox.library.sealing")
    demo = rss("import bibbox.library.sealing, pysip2, anyio")
    print(f"VmHWM: domain {base:.1f} MB; + SIP2/FBS adapter {adapter:.1f} MB "
          f"(+{adapter - base:.1f}); + PyNaCl sealing {nacl:.1f} MB (+{nacl - adapter:.1f}); "
          f"pysip2 + anyio (demo server) {demo:.1f} MB")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    bench_rss()
    bench_verdict(n)
    bench_drain(n)
