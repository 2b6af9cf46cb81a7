"""KR-CU16 lock boards: frames byte for byte against the pty simulator,
polling, a board going silent and back, and every kind of bad input."""

import threading
import time

import pytest

from bibbox.hal import kerong
from bibbox.hal.kerong import KerongBus
from bibbox.hal.kerong_protocol import find_status, request, status_reply
from bibbox.hal.kerong_sim import SimulatedKerongBus
from tests.domain_helpers import wait_until

LOCKS = {1: (0, 0), 2: (0, 1), 16: (0, 15), 17: (1, 0), 18: (1, 7), 33: (2, 3)}


class Events:
    """Every callback of the driver, in order."""

    def __init__(self):
        self.items, self._lock = [], threading.Lock()

    def add(self, *event):
        with self._lock:
            self.items.append(event)

    def of(self, kind):
        with self._lock:
            return [e[1:] for e in self.items if e[0] == kind]

    def callbacks(self):
        return dict(on_fired=lambda c, s: self.add("fired", c),
                    on_released=lambda c: self.add("released", c),
                    on_door_change=lambda c, o: self.add("door", c, o),
                    on_item=lambda c, p: self.add("item", c, p),
                    on_board=lambda b, o, cs: self.add("board", b, o, cs))


def during_a_poll(sim, act):
    """Run ``act()`` once, on the simulator's thread as it reads a poll
    request: the bus thread is inside that exchange, so the bus is busy.
    Returns an Event set once it ran."""
    done = threading.Event()

    def on_request(frame):
        if frame[2] == 0x30 and not done.is_set():
            act()
            done.set()
    sim.on_request = on_request
    return done


@pytest.fixture
def sim():
    bus = SimulatedKerongBus([0, 1, 2], slow_s=1.0)     # "slow" is well past the timeout
    yield bus
    bus.close()


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def driver(sim, events):
    bus = KerongBus("a", sim.path, LOCKS, poll_s=0.02, timeout_s=0.3, retries=1,
                    pulse_s=0.2, item_sensors=True, **events.callbacks())
    yield bus
    bus.close()


# -- frames -------------------------------------------------------------------------
def test_frames_are_the_documented_bytes():
    assert request(0, 0, 0x31) == bytes.fromhex("0200310336")
    assert request(0, 0, 0x30) == bytes.fromhex("0200300335")
    assert request(2, 5, 0x31) == bytes.fromhex("022531035b")
    reply = status_reply(1, hooks=0x8001, infrared=0x0100)
    assert reply == bytes((2, 0x10, 0x35, 0x01, 0x80, 0x00, 0x01, 3, sum(reply[:8]) & 0xFF))
    status, why = find_status(reply, 1)
    assert (status.hooks, status.infrared, why) == (0x8001, 0x0100, "")


@pytest.mark.parametrize("buffer, why", [
    (b"", "no reply"),
    (b"\xff\x13\x37", "garbage"),
    (status_reply(0, 0, 0)[:-1] + b"\x00", "wrong checksum"),
    (status_reply(3, 0, 0), "reply from board 3"),
])
def test_bad_replies_are_named(buffer, why):
    assert find_status(buffer, 0) == (None, why)


def test_a_reply_after_garbage_is_found():
    status, _ = find_status(b"\x02\x99\x02" + status_reply(0, 0xFFFF, 0), 0)
    assert status.hooks == 0xFFFF


def test_the_unlock_frame_reaches_the_bus_byte_for_byte(sim, driver, events):
    driver.pulse(17, 0.5)
    wait_until(lambda: (17,) in events.of("fired"), what="the unlock acknowledged")
    assert request(1, 0, 0x31) in sim.requests
    assert sim.unlocks() == [(1, 0)]          # no other lock was ever asked to open
    wait_until(lambda: (17, True) in events.of("door"), what="the door springing open")
    wait_until(lambda: (17,) in events.of("released"), what="the pulse reported over")
    assert set(sim.requests) <= {request(b, lock, c) for b in range(3) for lock in range(16)
                                 for c in (0x30, 0x31)}


def test_a_pulse_while_its_unlock_is_under_way_is_merged_and_one_while_on_waits(sim, events):
    """A request while the unlock is on the wire sends nothing more; one
    while the lock is still on (asked the moment the board confirmed) goes
    out only after that pulse ended, so the board never restarts a pulse."""
    callbacks = events.callbacks()
    confirmed = callbacks["on_fired"]

    def on_fired(compartment, seconds):
        confirmed(compartment, seconds)
        if len(events.of("fired")) == 1:
            bus.pulse(compartment, 0.5)               # the lock is on right now
    bus = KerongBus("m", sim.path, LOCKS, poll_s=0.02, timeout_s=0.3, pulse_s=1.0,
                    **{**callbacks, "on_fired": on_fired})
    try:
        asked_again = threading.Event()
        _once(sim, lambda f: f == request(1, 0, UNLOCK) and bus.pulse(17, 0.5) is None
              and not asked_again.set())              # asked again while on the wire
        released_first = []
        bus.pulse(17, 0.5)
        wait_until(lambda: len(sim.unlocks()) == 1 and asked_again.is_set(), what="one unlock")
        _once(sim, lambda f: f == request(1, 0, UNLOCK)
              and not released_first.append(events.of("released") == [(17,)]))
        wait_until(lambda: len(events.of("released")) == 2, what="both pulses over")
        assert sim.unlocks() == [(1, 0), (1, 0)] and released_first == [True]
        assert [e[0] for e in events.items if e[0] in ("fired", "released")] == \
            ["fired", "released", "fired", "released"]
    finally:
        bus.close()


def test_after_its_pulse_a_lock_unlocks_again(sim, driver, events):
    driver.pulse(17, 0.5)
    wait_until(lambda: (17,) in events.of("released"), what="the first pulse over")
    driver.pulse(17, 0.5)
    wait_until(lambda: sim.unlocks() == [(1, 0), (1, 0)], what="a second unlock frame")


# -- polling ------------------------------------------------------------------------
def test_every_board_is_polled_and_doors_start_known(sim, driver, events):
    assert driver.read_all() == dict.fromkeys(LOCKS, "closed")
    assert driver.health() == {"a/0": True, "a/1": True, "a/2": True}
    wait_until(lambda: {r[1] >> 4 for r in sim.requests if r[2] == 0x30} == {0, 1, 2},
               what="every board polled")
    sim.set_door(0, 15, True)
    wait_until(lambda: (16, True) in events.of("door"), what="the door change polled")
    assert driver.read(16) == "open"
    sim.set_door(0, 15, False)
    wait_until(lambda: (16, False) in events.of("door")[-1:], what="the door closing")


def test_item_sensors_are_reported(sim, driver, events):
    wait_until(lambda: (33, False) in events.of("item"), what="the item state at start")
    sim.set_item(2, 3, True)
    wait_until(lambda: (33, True) in events.of("item"), what="an item seen")
    assert driver.items()[33] is True


def test_boards_without_item_sensors_report_no_items(sim, events):
    sim.set_item(0, 0, True)                 # whatever the unwired IR bits read
    bus = KerongBus("n", sim.path, {1: (0, 0), 2: (0, 1)}, item_sensors=False,
                    poll_s=0.02, timeout_s=0.3, **events.callbacks())
    try:
        sim.set_door(0, 1, True)
        sim.set_item(0, 1, True)
        wait_until(lambda: (2, True) in events.of("door"), what="a poll after the IR changed")
        assert bus.items() == {} and events.of("item") == []
    finally:
        bus.close()


def test_hook_polarity_is_configurable(events):
    sim = SimulatedKerongBus([0], hook_open_level=1, item_present_level=0)
    sim.set_door(0, 1, True)
    sim.set_item(0, 0, True)
    bus = KerongBus("b", sim.path, {1: (0, 0), 2: (0, 1)}, hook_open_level=1,
                    item_present_level=0, item_sensors=True, poll_s=0.02, timeout_s=0.3,
                    **events.callbacks())
    try:
        wait_until(lambda: bus.read_all() == {1: "closed", 2: "open"}, what="doors read")
        assert bus.items() == {1: True, 2: False}
    finally:
        bus.close()
        sim.close()


# -- a board that goes silent, and comes back ------------------------------------------
def test_a_silent_board_goes_offline_alone_and_comes_back(sim, driver, events):
    sim.silent.add(1)
    wait_until(lambda: ("a/1", False, (17, 18)) in events.of("board"), what="board 1 offline")
    assert driver.read(17) == driver.read(18) == "unknown"
    assert driver.health() == {"a/0": True, "a/1": False, "a/2": True}
    sim.set_door(0, 0, True)                  # the others keep working
    wait_until(lambda: (1, True) in events.of("door"), what="board 0 still polled")
    driver.pulse(33, 0.5)
    wait_until(lambda: (33,) in events.of("fired"), what="board 2 still unlocks")
    sim.silent.clear()
    wait_until(lambda: ("a/1", True, (17, 18)) in events.of("board"), what="board 1 back")
    wait_until(lambda: driver.read(17) == "closed", what="its doors known again")


@pytest.mark.parametrize("fault", ["garbage", "checksum", "address", "slow"])
def test_bad_input_never_crashes_or_unlocks_and_is_retried(sim, driver, events, fault):
    sim.faults[0] = fault
    wait_until(lambda: ("a/0", False, (1, 2, 16)) in events.of("board"),
               what=f"board 0 offline on {fault}")
    assert driver.read(1) == "unknown"
    assert driver.errors[0] >= 2                       # tried again before giving up
    sim.set_door(1, 7, True)                           # another board is unaffected
    wait_until(lambda: (18, True) in events.of("door"), what="board 1 still polled")
    assert sim.unlocks() == [] and events.of("fired") == []
    del sim.faults[0]
    wait_until(lambda: events.of("board")[-1] == ("a/0", True, (1, 2, 16)),
               what="board 0 back once it answers well")
    wait_until(lambda: driver.read(1) == "closed", what="its doors known again")


def test_an_unplugged_bus_is_reopened(sim, driver, events):
    sim.unplug()
    wait_until(lambda: {b for b, online, _ in events.of("board") if not online}
               == {"a/0", "a/1", "a/2"}, what="every board offline")
    assert set(driver.read_all().values()) == {"unknown"}
    sim.replug()
    wait_until(lambda: all(driver.health().values()), what="the port reopened")
    assert set(driver.read_all().values()) == {"closed"}
    driver.pulse(2, 0.5)
    wait_until(lambda: (2,) in events.of("fired"), what="an unlock after the replug")


def test_an_unlock_asked_while_the_bus_is_unplugged_is_never_sent(sim, driver, events):
    """A door must not spring open when the cable is back, long after the patron."""
    sim.unplug()
    wait_until(lambda: {b for b, online, _ in events.of("board") if not online}
               == {"a/0", "a/1", "a/2"}, what="every board offline")
    driver.pulse(2, 0.5)
    sim.replug()
    wait_until(lambda: all(driver.health().values()), what="the port reopened")
    driver.pulse(33, 0.5)                      # asked after the replug: sent
    wait_until(lambda: (33,) in events.of("fired"), what="the new unlock")
    assert sim.unlocks() == [(2, 3)] and (2,) not in events.of("fired")   # 33 only


def test_an_unlock_that_waited_too_long_is_dropped(sim, events, monkeypatch):
    """An unlock queued behind the exchange on the wire (asked from the
    simulator's thread as it reads a poll) is dropped once too old."""
    from bibbox.hal import kerong
    monkeypatch.setattr(kerong, "UNLOCK_MAX_AGE_S", 0.0)   # every queued unlock is too old
    bus = KerongBus("o", sim.path, LOCKS, poll_s=0.02, timeout_s=0.3, **events.callbacks())
    try:
        asked = during_a_poll(sim, lambda: bus.pulse(2, 0.5))
        wait_until(asked.is_set, what="an unlock asked during a poll")
        polls = len(sim.requests)
        wait_until(lambda: len(sim.requests) > polls + 3, what="polling goes on")
        assert sim.unlocks() == [] and events.of("fired") == []
    finally:
        sim.on_request = None
        bus.close()


def test_a_missing_port_at_start_is_an_offline_bus_not_a_crash(tmp_path, events):
    bus = KerongBus("c", str(tmp_path / "nothing"), {1: (0, 0)}, **events.callbacks())
    try:
        assert bus.read_all() == {1: "unknown"}
        assert ("c/0", False, (1,)) in events.of("board")
    finally:
        bus.close()


# -- safety -------------------------------------------------------------------------
def test_all_off_and_close_send_nothing(sim, driver):
    driver.all_off()
    before = len(sim.requests)
    driver.close()
    assert all(r[2] == 0x30 for r in sim.requests[before:])
    assert sim.unlocks() == []


def test_unknown_compartments_and_bad_lengths_are_refused(driver):
    from bibbox.locker.domain.errors import HardwareError
    with pytest.raises(HardwareError):
        driver.pulse(99, 0.5)
    with pytest.raises(ValueError):
        driver.pulse(1, 0)


def test_a_failing_callback_does_not_stop_the_bus(sim):
    calls = []

    def explode(compartment, is_open):
        calls.append(compartment)
        raise RuntimeError("boom")

    bus = KerongBus("d", sim.path, {1: (0, 0)}, poll_s=0.02, timeout_s=0.3,
                    on_door_change=explode)
    try:
        wait_until(lambda: calls, what="the first report (closed)")
        sim.set_door(0, 0, True)
        wait_until(lambda: bus.read(1) == "open", what="the bus still polling")
        assert len(calls) >= 2 and set(calls) == {1}
    finally:
        bus.close()


def test_an_unchanged_board_calls_nothing(sim, driver, events):
    """Polls that find nothing new wake nobody: no callback, so no message
    to the controller."""
    wait_until(lambda: len(events.of("door")) == len(LOCKS), what="the doors at start")
    before, polls = list(events.items), len(sim.requests)
    wait_until(lambda: len(sim.requests) >= polls + 20, what="twenty more polls")
    assert events.items == before


def test_the_module_keeps_no_timer_per_door():
    assert "Timer" not in open(kerong.__file__).read()


# -- the cost of polling ------------------------------------------------------------
def _scheduled(thread):
    with open(f"/proc/self/task/{thread.native_id}/schedstat") as fh:
        return int(fh.read().split()[2])


def test_the_bus_thread_sleeps_between_polls(sim, events):
    """No busy loop: the bus thread is scheduled a bounded number of times a poll."""
    bus = KerongBus("s", sim.path, LOCKS, poll_s=0.02, timeout_s=0.3, **events.callbacks())
    try:
        thread = bus._thread
        polls0, runs0 = len(sim.requests), _scheduled(thread)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.05)
        polls, runs = len(sim.requests) - polls0, _scheduled(thread) - runs0
    finally:
        bus.close()
    assert polls >= 10
    assert runs <= 4 * polls + 10


def test_adaptive_poll_is_fast_while_a_door_moves_and_slow_at_rest(sim, events):
    bus = KerongBus("i", sim.path, {1: (0, 0)}, boards=[0], poll_s=0.02, idle_poll_s=30.0,
                    timeout_s=0.3, pulse_s=0.2, **events.callbacks())
    try:
        at_rest = len(sim.requests)
        time.sleep(0.3)
        assert len(sim.requests) - at_rest <= 1          # idle: one poll a 30 s at most
        bus.pulse(1, 0.2)                                 # something moves: fast polls
        assert wait_until(lambda: bus.read(1) == "open", 2.0)
        sim.set_door(0, 0, False)                         # closed well within the idle period
        assert wait_until(lambda: bus.read(1) == "closed", 2.0)
    finally:
        bus.close()


# -- unlocks go first ---------------------------------------------------------------
STATUS, UNLOCK = 0x30, 0x31


def _once(sim, action):
    """Hook ``action(frame)`` into the simulator (its thread, before the
    reply) until it returns True; returns the requests seen after that frame."""
    at = []

    def hook(frame):
        if not at and action(frame):
            at.append(len(sim.requests))
    sim.on_request = hook
    return lambda: list(sim.requests)[at[0]:] if at else []


def _after(sim, frame):
    """The requests the simulator saw after the first ``frame`` (none before it)."""
    seen = list(sim.requests)
    return seen[seen.index(frame) + 1:] if frame in seen else []


@pytest.fixture
def six():
    sim = SimulatedKerongBus(range(6))
    yield sim
    sim.close()


def test_an_unlock_goes_out_next_in_the_middle_of_a_poll_round(six, events):
    """At rest the boards are asked one after the other in one round; an
    unlock queued while board 2 is on the wire is the very next frame, ahead
    of boards 3-5."""
    bus = KerongBus("r", six.path, {b * 16 + 1: (b, 0) for b in range(6)}, poll_s=0.02,
                    idle_poll_s=0.3, timeout_s=0.3, **events.callbacks())
    try:
        later = _once(six, lambda f: f == request(2, 0, STATUS) and bus.pulse(65, 0.5) is None)
        wait_until(lambda: (65,) in events.of("fired"), what="the unlock confirmed")
        assert later()[0] == request(4, 0, UNLOCK)
        assert six.unlocks() == [(4, 0)]
    finally:
        bus.close()


def test_an_unlock_does_not_wait_for_a_silent_boards_retries(six, events):
    bus = KerongBus("r", six.path, {1: (0, 0), 17: (1, 0), 33: (2, 0)}, poll_s=0.02,
                    timeout_s=0.05, retries=3, **events.callbacks())
    try:
        six.silent.add(1)
        after = _once(six, lambda f: f == request(1, 0, STATUS) and bus.pulse(33, 0.5) is None)
        wait_until(lambda: ("r/1", False, (17,)) in events.of("board"), what="board 1 offline")
        wait_until(lambda: (33,) in events.of("fired"), what="the unlock confirmed")
        later = after()
        assert later[0] == request(2, 0, UNLOCK)           # before board 1's next try
        assert later.count(request(1, 0, STATUS)) >= 3     # its tries went on afterwards
        assert six.unlocks() == [(2, 0)]
    finally:
        bus.close()


def test_an_unlock_retry_lets_another_unlock_go_first(six, events):
    bus = KerongBus("r", six.path, {17: (1, 0), 33: (2, 0)}, poll_s=0.02, timeout_s=0.05,
                    retries=2, **events.callbacks())
    try:
        six.silent.add(1)
        _once(six, lambda f: f == request(1, 0, UNLOCK) and bus.pulse(33, 0.5) is None)
        bus.pulse(17, 0.5)
        wait_until(lambda: six.unlocks().count((1, 0)) == 3, what="every try of the unlock")
        assert six.unlocks()[:2] == [(1, 0), (2, 0)]        # board 2 did not wait for the retries
        assert events.of("fired") == [(33,)]
    finally:
        bus.close()


def test_all_off_drops_an_unlock_between_its_tries(six, events):
    bus = KerongBus("r", six.path, {17: (1, 0), 33: (2, 0)}, poll_s=0.02, timeout_s=0.05,
                    retries=3, **events.callbacks())
    try:
        six.silent.add(1)
        _once(six, lambda f: f == request(1, 0, UNLOCK) and bus.all_off() is None)
        bus.pulse(17, 0.5)
        wait_until(lambda: _after(six, request(1, 0, UNLOCK)).count(request(2, 0, STATUS)) >= 3,
                   what="polls after the first try")
        assert six.unlocks() == [(1, 0)]                  # tried once, never again
    finally:
        bus.close()


def test_boards_at_rest_are_polled_in_rounds_and_an_unlocked_board_fast(six, events):
    bus = KerongBus("g", six.path, {b * 16 + 1: (b, 0) for b in range(3)}, poll_s=0.02,
                    idle_poll_s=0.2, timeout_s=0.3, **events.callbacks())
    try:
        wait_until(lambda: len(six.requests) >= 15, what="five rounds")
        boards = [f[1] >> 4 for f in list(six.requests)[6:]]    # the grid is found by now
        start = boards.index(0)
        assert boards[start:start + 6] == [0, 1, 2] * 2        # one round after the other
        bus.close()
        bus = KerongBus("g", six.path, {b * 16 + 1: (b, 0) for b in range(3)}, poll_s=0.02,
                        idle_poll_s=30.0, timeout_s=0.3, **events.callbacks())
        bus.pulse(1, 0.2)                                 # board 0 moves; 1 and 2 rest
        wait_until(lambda: _after(six, request(0, 0, UNLOCK)).count(request(0, 0, STATUS)) >= 5,
                   what="board 0 polled fast")
        later = _after(six, request(0, 0, UNLOCK))
        assert request(1, 0, STATUS) not in later and request(2, 0, STATUS) not in later
    finally:
        bus.close()


# -- the unlock hint (expect_unlock) --------------------------------------------------
def _polls_after(sim, at):
    return [f for f in list(sim.requests)[at:] if f[2] == STATUS]


def test_a_hinted_bus_starts_no_poll_until_the_unlock_and_another_bus_polls_on(six, events):
    """The hint comes while board 2's poll is on the wire: that exchange ends,
    then nothing goes out on this bus (the other bus, not hinted, keeps
    polling) until the unlock, which is the next frame; then polls resume."""
    from bibbox.hal.lockdrivers import LockDrivers
    other = SimulatedKerongBus([0])
    hinted = KerongBus("h", six.path, {b * 16 + 1: (b, 0) for b in range(6)}, poll_s=0.02,
                       timeout_s=0.3, hint_hold_s=60.0, **events.callbacks())
    free = KerongBus("f", other.path, {201: (0, 0)}, poll_s=0.02, timeout_s=0.3)
    drivers = LockDrivers([hinted, free])
    try:
        hinted_at = threading.Event()
        later = _once(six, lambda f: f == request(2, 0, STATUS)
                      and drivers.expect_unlock([33, 999]) is None and not hinted_at.set())
        assert hinted_at.wait(10), "the hint was never sent"
        at_other = len(other.requests)
        wait_until(lambda: len(other.requests) >= at_other + 10, what="the other bus polling")
        assert later() == []                 # board 2's exchange ended, nothing went out since
        hinted.pulse(49, 0.5)
        wait_until(lambda: (49,) in events.of("fired"), what="the unlock confirmed")
        wait_until(lambda: len(later()) >= 7, what="polls after the unlock")
        assert later()[0] == request(3, 0, UNLOCK)
        assert six.unlocks() == [(3, 0)]                   # the hint opened nothing
    finally:
        drivers.close()
        other.close()


def test_a_hint_holds_polls_back_only_for_the_hold_time(six, events):
    bus = KerongBus("t", six.path, {1: (0, 0), 17: (1, 0)}, poll_s=0.02, timeout_s=0.3,
                    hint_hold_s=0.2, **events.callbacks())
    try:
        bus.expect_unlock([17])
        at = len(six.requests)
        wait_until(lambda: len(_polls_after(six, at)) >= 5, what="polling again")
        assert six.unlocks() == []                         # no unlock came, none was sent
    finally:
        bus.close()


# -- the typed-PIN hint (prepare_unlock) ---------------------------------------------
def _resting_bus(sim, events, idle_poll_s, hint_hold_s=60.0):
    """Six boards at rest (nothing moved), polled every ``idle_poll_s``."""
    return KerongBus("p", sim.path, {b * 16 + 1: (b, 0) for b in range(6)}, poll_s=0.02,
                     idle_poll_s=idle_poll_s, timeout_s=0.3, retries=1,
                     hint_hold_s=hint_hold_s, **events.callbacks())


def test_a_typed_pin_polls_every_board_now_then_keeps_the_wire_free_for_the_unlock(six, events):
    """Every board falls due within the (long) idle period, so each is asked
    once at once; then nothing goes out until the unlock, the next frame."""
    bus = _resting_bus(six, events, idle_poll_s=60.0)
    try:
        at = len(six.requests)
        bus.prepare_unlock([33, 999])
        wait_until(lambda: len(six.requests) >= at + 6, what="the early round")
        time.sleep(0.2)                      # room for a poll that should not come
        assert list(six.requests)[at:] == [request(b, 0, STATUS) for b in range(6)]
        bus.expect_unlock([33])
        bus.pulse(33, 0.5)
        wait_until(lambda: (33,) in events.of("fired"), what="the unlock confirmed")
        assert list(six.requests)[at + 6] == request(2, 0, UNLOCK)
        assert six.unlocks() == [(2, 0)]     # the hints opened nothing
    finally:
        bus.close()


def test_without_ok_a_typed_pin_lets_polling_resume_and_unlocks_nothing(six, events):
    """No OK comes: the hold ends with the idle period (0.4 s here; the wait
    allows 5 s, a hold that outlived it would fail) and rounds go on; a
    hint for compartments of no board here changes nothing."""
    bus = _resting_bus(six, events, idle_poll_s=0.4)
    try:
        at = len(six.requests)
        bus.prepare_unlock([1])
        wait_until(lambda: len(_polls_after(six, at)) >= 18, timeout=5.0, what="three rounds")
        bus.prepare_unlock([2, 99])
        assert six.unlocks() == []
    finally:
        bus.close()


def test_a_failed_early_poll_is_retried_before_the_hold_not_after(six, events):
    """Board 1 answers garbage: its retry goes out at once (the hold lasts
    60 s), so it is found offline now, not a hold later."""
    bus = _resting_bus(six, events, idle_poll_s=60.0)
    try:
        six.faults[1] = "garbage"
        at = len(six.requests)
        bus.prepare_unlock([1])
        wait_until(lambda: ("p/1", False, (17,)) in events.of("board"), timeout=5.0,
                   what="board 1 retried and found offline")
        wait_until(lambda: len(_polls_after(six, at)) >= 7, timeout=5.0, what="the round")
        time.sleep(0.2)                      # room for a poll that should not come
        asked = [f[1] >> 4 for f in _polls_after(six, at)]
        assert asked == [0, 1, 1, 2, 3, 4, 5]
    finally:
        bus.close()


def test_a_denied_pin_lets_the_rest_of_the_early_round_go_on(six, events):
    """OK comes while board 1 is asked and no unlock follows (a wrong PIN):
    once the check's hold (0.2 s) is over, boards 2-5 are asked, long
    before the typed-PIN hold (60 s) would end."""
    bus = _resting_bus(six, events, idle_poll_s=60.0, hint_hold_s=0.2)
    try:
        later = _once(six, lambda f: f == request(1, 0, STATUS)
                      and bus.expect_unlock([33]) is None)
        bus.prepare_unlock([33])
        wait_until(lambda: len(later()) >= 4, timeout=5.0, what="the rest of the round")
        assert later()[:4] == [request(b, 0, STATUS) for b in range(2, 6)]
        assert six.unlocks() == []
    finally:
        bus.close()


def test_a_pin_check_pauses_the_early_round_for_the_unlock(six, events):
    """OK comes while the early round is on the wire (board 1 asked): that
    exchange ends, the boards after it are not asked, and the unlock is
    the next frame."""
    bus = _resting_bus(six, events, idle_poll_s=60.0)
    try:
        checked = threading.Event()
        later = _once(six, lambda f: f == request(1, 0, STATUS)
                      and bus.expect_unlock([33]) is None and not checked.set())
        bus.prepare_unlock([33])
        assert checked.wait(10), "the early round never reached board 1"
        time.sleep(0.2)
        assert later() == []
        bus.pulse(33, 0.5)
        wait_until(lambda: len(later()) >= 1, what="the unlock")
        assert later()[0] == request(2, 0, UNLOCK)
    finally:
        bus.close()


def test_a_hint_for_another_bus_or_all_off_leaves_polling_alone(six, events):
    bus = KerongBus("u", six.path, {1: (0, 0)}, poll_s=0.02, timeout_s=0.3, hint_hold_s=60.0,
                    **events.callbacks())
    try:
        bus.expect_unlock([2, 99])                         # none of them on this bus
        at = len(six.requests)
        wait_until(lambda: len(_polls_after(six, at)) >= 5, what="polls despite the hint")
        bus.expect_unlock([1])
        bus.all_off()                                      # drops the hint with the unlocks
        at = len(six.requests)
        wait_until(lambda: len(_polls_after(six, at)) >= 5, what="polls after all_off")
        assert six.unlocks() == []
    finally:
        bus.close()
