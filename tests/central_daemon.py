"""A stand-in for the daemon, run as a separate process by the tests: a real
locker (fake clock, real store in ``state_dir``) with its controller thread
and a central link, writing ``n`` events, one transaction each, then idling
until killed.  Prints ``ready`` once started and ``emitted <k>`` as it goes.

    python -m tests.central_daemon <state_dir> <mqtt url> <n>
"""

import pathlib
import sys
import threading

from bibbox.daemon.bootstrap import build_central_link
from bibbox.locker.domain.model import EventType
from tests.domain_helpers import Rig

EVENTS_PER_UNIT = 1


def main():
    state_dir, url, n = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    rig = Rig(state_dir)
    rig.start()
    rig.controller.start()
    link = build_central_link(rig.cfg, controller=rig.controller, store=rig.store,
                              clock=rig.clock, version="daemon-test",
                              boot_id=sys.argv[4] if len(sys.argv) > 4 else "daemon", url=url)
    link.reconnect_min_s, link.reconnect_max_s = 0.1, 0.5
    link.start()
    print("ready", flush=True)

    def write(locker):
        with locker.store.unit() as unit:
            for _ in range(EVENTS_PER_UNIT):
                unit.event(EventType.DOOR_CLOSED, {"compartment": 1})

    for k in range(0, n, EVENTS_PER_UNIT):
        rig.controller.call(write, timeout=10)
        if k % 50 == 0:
            print("emitted", k, flush=True)
    print("done", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
