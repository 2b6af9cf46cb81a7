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
