"""Modbus RTU relay boards against a real Modbus server (pymodbus, RTU
framing over TCP, which pyserial opens as ``socket://``): coils pulsed under
the cap, discrete inputs as doors, a silent unit offline and back."""

import asyncio
import socket
import threading

import pytest

pymodbus = pytest.importorskip("pymodbus")
pytest.importorskip("minimalmodbus")

from pymodbus import FramerType  # noqa: E402
from pymodbus.datastore import (ModbusDeviceContext, ModbusSequentialDataBlock,  # noqa: E402
                                ModbusServerContext)
from pymodbus.server import ModbusTcpServer  # noqa: E402

from bibbox.hal.modbus import ModbusBus  # noqa: E402
from tests.domain_helpers import wait_until  # noqa: E402


class Server:
    """Units 1 and 2 with 16 coils and 16 discrete inputs each, on a thread."""

    def __init__(self):
        self.devices = {u: ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [0] * 17),
                                               di=ModbusSequentialDataBlock(1, [0] * 17))
                        for u in (1, 2)}
        self.coil_log = []
        self.context = ModbusServerContext(devices=self.devices, single=False)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.server = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started):
        asyncio.set_event_loop(self.loop)

        async def serve():
            self.server = ModbusTcpServer(self.context, framer=FramerType.RTU,
                                          address=("127.0.0.1", self.port),
                                          trace_pdu=self._trace, ignore_missing_devices=True)
            await self.server.serve_forever(background=True)
            started.set()
            await self.server.serving

        try:
            self.loop.run_until_complete(serve())
        except Exception:
            started.set()

    def _trace(self, sending, pdu):
        if not sending and getattr(pdu, "function_code", None) == 5:
            self.coil_log.append((pdu.dev_id, pdu.address, bool(pdu.bits[0])))
        return pdu

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def coil(self, unit, coil):
        return bool(self._call(self.server.context.async_getValues(unit, 1, coil, 1))[0])

    def set_input(self, unit, index, value):
        self._call(self.server.context.async_setValues(unit, 2, index, [bool(value)]))

    def close(self):
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(10)
        self.thread.join(5)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


class Events(list):
    def callbacks(self):
        return dict(on_fired=lambda c, s: self.append(("fired", c)),
                    on_released=lambda c: self.append(("released", c)),
                    on_door_change=lambda c, o: self.append(("door", c, o)),
                    on_board=lambda b, o, cs: self.append(("board", b, o, cs)))


@pytest.fixture
def bus(server):
    events = Events()
    driver = ModbusBus("mb", f"socket://127.0.0.1:{server.port}",
                       {1: (1, 0, 0), 2: (1, 1, 1), 3: (2, 5, 5)}, timeout_s=0.2,
                       poll_s=0.05, max_pulse_s=0.3, max_coils=1, **events.callbacks())
    driver.events = events
    yield driver
    driver.close()


def test_every_coil_is_off_at_start_and_doors_are_read(server, bus):
    assert {(1, 0, False), (1, 1, False), (2, 5, False)} <= set(server.coil_log)
    assert bus.read_all() == {1: "closed", 2: "closed", 3: "closed"}
    assert bus.health() == {"mb/1": True, "mb/2": True}


def test_a_pulse_is_a_coil_on_then_off_under_the_cap(server, bus):
    server.coil_log.clear()
    bus.pulse(3, 10.0)                          # asked for far more than the cap
    wait_until(lambda: ("released", 3) in bus.events, what="the pulse over")
    assert ("fired", 3) in bus.events
    assert server.coil_log == [(2, 5, True), (2, 5, False)]
    assert not server.coil(2, 5)


def test_a_door_input_reaches_the_callback(server, bus):
    server.set_input(1, 1, True)
    wait_until(lambda: ("door", 2, True) in bus.events, what="the door open")
    server.set_input(1, 1, False)
    wait_until(lambda: ("door", 2, False) in bus.events, what="the door closed")


def test_close_leaves_every_coil_off(server, bus):
    bus.pulse(1, 0.3)
    wait_until(lambda: ("fired", 1) in bus.events, what="the coil on")
    bus.close()
    assert not server.coil(1, 0)


def test_a_unit_that_does_not_answer_is_offline_and_the_others_work(server):
    events = Events()
    driver = ModbusBus("mb", f"socket://127.0.0.1:{server.port}",
                       {1: (1, 0, 0), 9: (7, 0, 0)}, timeout_s=0.1, poll_s=0.05,
                       retries=1, **events.callbacks())
    try:
        assert ("board", "mb/7", False, (9,)) in events
        assert driver.read(9) == "unknown" and driver.read(1) == "closed"
        driver.pulse(1, 0.1)
        wait_until(lambda: ("released", 1) in events, what="unit 1 still works")
    finally:
        driver.close()


class Wire:
    """A port that records every frame written (unit, function code) and
    swallows those to the units in ``silent``, as a unit that does not answer."""

    def __init__(self, port, on_write=None):
        self._port, self.frames, self.silent, self.on_write = port, [], set(), on_write

    def __getattr__(self, name):
        return getattr(self._port, name)

    def write(self, data):
        self.frames.append((data[0], data[1]))
        if self.on_write is not None:
            self.on_write(data[0], data[1])
        return len(data) if data[0] in self.silent else self._port.write(data)


def wired(server, **kwargs):
    """A ModbusBus on units 1 and 2 whose port is a :class:`Wire` (``bus.wire``)."""
    from bibbox.hal.serial_link import open_serial
    events, wires = Events(), []

    def opener(port, baudrate, timeout_s):
        wires.append(Wire(open_serial(port, baudrate, timeout_s)))
        return wires[-1]
    driver = ModbusBus("mb", f"socket://127.0.0.1:{server.port}", {1: (1, 0, 0), 3: (2, 5, 5)},
                       timeout_s=0.1, opener=opener, **kwargs, **events.callbacks())
    driver.events, driver.wire = events, wires[-1]
    return driver


READ, WRITE = 2, 5


def test_a_coil_write_goes_before_a_silent_units_retries(server):
    bus = wired(server, poll_s=0.05, retries=3, max_pulse_s=0.2)
    try:
        fired = []

        def on_write(unit, function):          # on the poll thread, unit 2 on the wire
            if unit == 2 and function == READ and not fired:
                fired.append(len(bus.wire.frames))
                bus.pulse(1, 0.2)
                wait_until(lambda: bus._writers, what="the coil write waiting for the port")
        bus.wire.silent.add(2)
        bus.wire.on_write = on_write
        wait_until(lambda: ("board", "mb/2", False, (3,)) in bus.events, what="unit 2 offline")
        later = bus.wire.frames[fired[0]:]
        assert later[0] == (1, WRITE)                      # before unit 2's next try
        assert later.count((2, READ)) >= 3                 # its tries went on afterwards
        wait_until(lambda: ("released", 1) in bus.events, what="the pulse over")
    finally:
        bus.close()


def test_a_unit_at_rest_is_polled_seldom_and_fast_once_a_coil_moves(server):
    bus = wired(server, poll_s=0.02, idle_poll_s=3600.0, max_pulse_s=0.2)
    try:
        at_rest = len(bus.wire.frames)
        bus.pulse(1, 0.2)
        wait_until(lambda: bus.wire.frames[at_rest:].count((1, READ)) >= 5,
                   what="unit 1 polled fast after its coil went on")
        assert (2, READ) not in bus.wire.frames[at_rest:]   # unit 2 still at rest
    finally:
        bus.close()
