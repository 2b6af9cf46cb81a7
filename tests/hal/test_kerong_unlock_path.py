"""Who writes an unlock to the Kerong bus: on an idle bus, the thread that
asked (``pulse()`` writes the request at once; an idle bus thread can take
milliseconds to be woken), the bus thread reading the reply; on a busy bus,
the bus thread after the exchange on the wire.  Against the pty simulator."""

import threading

import pytest

from bibbox.hal.kerong import KerongBus
from bibbox.hal.kerong_sim import SimulatedKerongBus
from bibbox.hal.serial_link import Link
from tests.domain_helpers import wait_until
from tests.hal.test_kerong import LOCKS, Events, during_a_poll

UNLOCK = 0x31


@pytest.fixture
def sim():
    bus = SimulatedKerongBus([0, 1, 2])
    yield bus
    bus.close()


@pytest.fixture
def writers(monkeypatch):
    """The thread that wrote each unlock request, in order."""
    seen = []
    send = Link.send

    def recording_send(link, frame):
        if frame[2] == UNLOCK:
            seen.append(threading.current_thread())
        return send(link, frame)
    monkeypatch.setattr(Link, "send", recording_send)
    return seen


def resting_bus(sim, events, **kw):
    """A bus that polls rarely: after its first round its thread waits."""
    bus = KerongBus("u", sim.path, LOCKS, poll_s=30.0, timeout_s=0.3, pulse_s=0.2,
                    **events.callbacks(), **kw)
    wait_until(lambda: bus._idle, what="the bus thread waiting")   # nothing else shows it
    return bus


def test_on_an_idle_bus_the_caller_writes_the_unlock_and_the_bus_thread_confirms_it(
        sim, writers):
    events = Events()
    bus = resting_bus(sim, events)
    try:
        bus.pulse(2, 0.2)
        assert writers == [threading.current_thread()]       # written before pulse() returned
        wait_until(lambda: (2,) in events.of("fired"), what="the board's confirmation")
        assert sim.unlocks() == [(0, 1)]
        wait_until(lambda: (2,) in events.of("released"), what="the pulse's end")
        bus.pulse(17, 0.2)                                    # idle again: the same way
        wait_until(lambda: (17,) in events.of("fired"), what="the second unlock")
        assert sim.unlocks() == [(0, 1), (1, 0)] and len(writers) == 2
    finally:
        bus.close()


def test_a_second_unlock_while_the_first_awaits_its_reply_is_queued_behind_it(sim, writers):
    """One request on the wire at a time: the second goes out after the
    first's reply, written by the bus thread."""
    events = Events()
    bus = resting_bus(sim, events)
    try:
        bus.pulse(2, 0.2)
        bus.pulse(33, 0.2)
        wait_until(lambda: {(2,), (33,)} <= set(events.of("fired")), what="both unlocks")
        assert sim.unlocks() == [(0, 1), (2, 3)]
        assert writers[0] is threading.current_thread() and writers[1].name.startswith(
            "bibbox-kerong-")
        unlocks = [i for i, f in enumerate(sim.requests) if f[2] == UNLOCK]
        assert unlocks[1] == unlocks[0] + 1                    # no poll between them
    finally:
        bus.close()


def test_on_a_busy_bus_the_unlock_waits_for_the_exchange_on_the_wire(sim, writers):
    """Asked while a poll is on the wire (from the simulator's thread as it
    reads that poll): the bus thread sends it right after the poll's reply."""
    events = Events()
    bus = KerongBus("b", sim.path, LOCKS, poll_s=0.02, timeout_s=0.3, pulse_s=0.2,
                    **events.callbacks())
    try:
        during_a_poll(sim, lambda: bus.pulse(2, 0.2))
        wait_until(lambda: (2,) in events.of("fired"), what="the unlock")
        assert [w.name for w in writers] == ["bibbox-kerong-b"]
        frames = list(sim.requests)
        first_unlock = next(i for i, f in enumerate(frames) if f[2] == UNLOCK)
        assert frames[first_unlock - 1][2] == 0x30             # right behind that poll
    finally:
        sim.on_request = None
        bus.close()


def test_all_off_drops_an_unlock_queued_behind_the_wire_and_the_bus_goes_on(sim):
    """Asked and dropped while a poll is on the wire: never sent; the bus
    keeps polling, and a later unlock goes out."""
    events = Events()
    bus = KerongBus("d", sim.path, LOCKS, poll_s=0.02, timeout_s=0.3, pulse_s=0.2,
                    **events.callbacks())
    try:
        dropped = during_a_poll(sim, lambda: (bus.pulse(2, 0.2), bus.all_off()))
        wait_until(dropped.is_set, what="an unlock asked and dropped during a poll")
        sim.on_request = None
        polls = len(sim.requests)
        wait_until(lambda: len(sim.requests) > polls + 3, what="polling goes on")
        assert sim.unlocks() == []
        bus.pulse(17, 0.2)
        wait_until(lambda: (17,) in events.of("fired"), what="a later unlock")
        assert sim.unlocks() == [(1, 0)]
    finally:
        sim.on_request = None
        bus.close()


def test_close_of_a_resting_bus_ends_its_thread_and_refuses_later_unlocks(sim):
    from bibbox.locker.domain.errors import HardwareError
    events = Events()
    bus = resting_bus(sim, events)
    bus.close()
    assert not bus._thread.is_alive()      # woken, not left to its 30 s poll
    with pytest.raises(HardwareError):
        bus.pulse(2, 0.2)
    bus.close()                              # idempotent
    assert sim.unlocks() == []


def raise_oserror(frame):
    raise OSError("write failed")


@pytest.mark.parametrize("first_write", [raise_oserror, lambda frame: frame],
                         ids=["the write raises", "the port takes nothing"])
def test_a_callers_write_that_does_not_go_out_leaves_the_unlock_to_the_bus_thread(
        sim, monkeypatch, first_write):
    """The caller's write raises (a port just unplugged) or the output
    queue takes nothing: pulse() does not raise, the unlock is not counted
    as sent -- it stays queued, so all_off() could still drop it -- and the
    bus thread's own try sends it whole."""
    events = Events()
    bus = resting_bus(sim, events)
    callers = []
    send = Link.send

    def first_unlock_fails(link, frame):
        if frame[2] == UNLOCK and not callers:
            callers.append(threading.current_thread())
            return first_write(frame)
        return send(link, frame)
    monkeypatch.setattr(Link, "send", first_unlock_fails)
    try:
        bus.pulse(2, 0.2)
        assert callers == [threading.current_thread()]
        wait_until(lambda: (2,) in events.of("fired"), what="the bus thread's try")
        assert sim.unlocks() == [(0, 1)]
    finally:
        bus.close()


class NotATty:
    """The simulator's port seen through no file descriptor, as a
    ``socket://`` RS485 gateway is: pyserial's write may block."""

    def __init__(self, port):
        self._port = port

    def fileno(self):
        raise OSError("no file descriptor")

    def __getattr__(self, name):
        return getattr(self._port, name)


def test_on_a_port_that_is_not_a_local_tty_the_bus_thread_writes_the_unlock(sim, writers):
    """pulse() must not wait on the controller's thread: where a write may
    block, it only queues."""
    from bibbox.hal.serial_link import open_serial
    events = Events()
    bus = resting_bus(sim, events, opener=lambda *args: NotATty(open_serial(*args)))
    try:
        bus.pulse(2, 0.2)
        wait_until(lambda: (2,) in events.of("fired"), what="the unlock")
        assert [w.name for w in writers] == ["bibbox-kerong-u"]
        assert sim.unlocks() == [(0, 1)]
    finally:
        bus.close()
