"""A controller turn on simulated 6-500-door lockers (Kerong buses): the idle
turn (next_deadline, on_time, flush) and a state snapshot after a change, in
microseconds; ``-p`` profiles 500 idle turns at 500 doors.  ``--items``: the
boards' item sensors on, every door reported empty, and 50 free compartments
with an item sensed (50 wrong-compartment checks pending) during the turns.

    python bench/bench_core_turn.py [-p] [--items]
"""
import sys, time, tempfile, cProfile, pstats
import os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); import lockers
from bibbox.daemon.cli import demo_daemon
from bibbox.locker.domain.messages import DoorChanged
for n in (6, 48, 200, 500):
    items = '--items' in sys.argv
    p = lockers.write_locker(n, tempfile.mkdtemp(), item_sensors=items)
    t = time.perf_counter()
    d = demo_daemon(tempfile.mkdtemp(), port=0, config=p)
    L = d.locker
    build = time.perf_counter() - t
    if items:
        from bibbox.locker.domain.messages import ItemSensed
        for number in L.compartments:
            L.item_sensed(ItemSensed(number, False))
        free = [c for c in L.compartments if not L.holds_in(c)][:50]
        for number in free:
            L.item_sensed(ItemSensed(number, True))
        assert len(L._items.pending) == len(free)
    def turn():
        L.next_deadline(); L.on_time(); L.flush()
    N = 2000
    t = time.perf_counter()
    for _ in range(N): turn()
    idle = (time.perf_counter() - t) / N * 1e6
    t = time.perf_counter()
    for _ in range(200): L._dirty(state=True); L.flush()
    sv = (time.perf_counter() - t) / 200 * 1e6
    pending = f", {len(L._items.pending)} item checks pending" if items else ""
    print(f"{n:4d} doors: build {build*1000:.0f} ms, idle turn {idle:.1f} us, state flush {sv:.0f} us{pending}")
    if n == 500 and '-p' in sys.argv:
        cProfile.run('for _ in range(500): turn()', '/tmp/l/p.out')
        pstats.Stats('/tmp/l/p.out').sort_stats('cumtime').print_stats(12)
    try: d.simulator.close()
    except Exception: pass
