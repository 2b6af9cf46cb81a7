"""Hardware and network trouble the daemon must ride out while serving:
the card reader unplugged and plugged back, a door sensor flapping, the
broker gone for an hour.  Each time the locker keeps serving and says what
is wrong: an alarm in its state, ``/api/status`` and ``bibbox status``."""

import queue
import threading

import pytest
import serial

from bibbox.locker.domain.clock import FakeClock
from bibbox.daemon.systemd import check_health
from tests.fault_helpers import alarms, get, kiosk, pickup, place_hold, sim_daemon, wait_until


class Plug:
    """A USB serial reader that can be pulled out: opening or reading the
    port raises SerialException while it is unplugged, as pyserial does."""

    def __init__(self):
        self.plugged = True
        self.port = None
        self.opened = 0

    def open(self, url, baudrate, timeout):
        if not self.plugged:
            raise serial.SerialException(f"could not open port {url}: no such device")
        self.opened += 1
        self.port = FakePort(self, timeout)
        return self.port

    def unplug(self):
        """Pull it out: like a real USB port, a read blocked on it fails now."""
        self.plugged = False
        if self.port is not None:
            self.port.data.put(None)

    def type_card(self, text):
        self.port.data.put(text.encode() + b"\r")


class FakePort:
    in_waiting = 0

    def __init__(self, plug, timeout):
        self.plug, self.timeout, self.data = plug, timeout, queue.Queue()

    def read(self, size=1):
        if not self.plug.plugged:
            raise serial.SerialException("device reports readiness to read but returned "
                                         "no data (device disconnected?)")
        try:
            data = self.data.get(timeout=self.timeout)   # timeout None: block
        except queue.Empty:
            return b""
        if data is None:                                  # unplugged or cancelled
            if not self.plug.plugged:
                raise serial.SerialException("device reports readiness to read but "
                                             "returned no data (device disconnected?)")
            return b""
        return data

    def cancel_read(self):
        self.data.put(None)

    def close(self):
        pass


@pytest.fixture
def plug(monkeypatch):
    import bibbox.hal.cardreader
    plug = Plug()
    real = bibbox.hal.cardreader.SerialCardReader

    def reader(*args, **kwargs):
        kwargs.update(open_port=plug.open, reopen_min_s=0.05, reopen_max_s=0.2)
        return real(*args, **kwargs)
    monkeypatch.setattr(bibbox.hal.cardreader, "SerialCardReader", reader)
    return plug


def status_cli(daemon, capsys):
    from bibbox.daemon.cli import main
    capsys.readouterr()
    code = main(["status", "--url", f"http://127.0.0.1:{daemon.port}"])
    return code, capsys.readouterr().out


def test_reader_unplugged_and_plugged_back(tmp_path, plug, capsys):
    daemon = sim_daemon(tmp_path / "state")
    try:
        daemon.start()
        place_hold(daemon, "H1", 0, 1)
        wait_until(lambda: daemon.reader.online, 5, what="the reader online")
        plug.unplug()
        wait_until(lambda: ("reader_offline", None) in alarms(daemon), 5,
                   what="the reader_offline alarm")
        assert kiosk(daemon)["reader_online"] is False
        status = get(daemon.port, "/api/status")
        assert status["health"]["reader"] is False
        code, out = status_cli(daemon, capsys)
        assert code == 3 and "OFFLINE" in out and "reader_offline" in out
        assert check_health(daemon) == []      # its thread keeps retrying: no restart
        # The rest of the locker still works: staff can open a door.
        daemon.controller.call(lambda l: l.open_compartment(2, "staff", "test"))
        wait_until(lambda: daemon.simulator.door_is_open(2), 5, what="door 2 to open")
        daemon.simulator.set_door(2, False)
        opened = plug.opened
        plug.plugged = True
        wait_until(lambda: ("reader_offline", None) not in alarms(daemon), 5,
                   what="the alarm to clear")
        assert plug.opened == opened + 1
        plug.type_card("LIB0000101")
        wait_until(lambda: kiosk(daemon)["screen"] == "pin", 5, what="the PIN screen")
        code, out = status_cli(daemon, capsys)
        assert code == 0 and "online" in out
    finally:
        daemon.stop()


def test_a_flapping_sensor_is_reported_and_the_rest_keeps_working(tmp_path):
    daemon = sim_daemon(tmp_path / "state", extra="flap_edges = 6\nflap_window_s = 1.0")
    try:
        daemon.start()
        place_hold(daemon, "H1", 0, 1)
        stop = threading.Event()

        def flap():
            is_open = False
            while not stop.is_set():
                is_open = not is_open
                daemon.simulator.set_door(3, is_open)
                stop.wait(0.01)
            daemon.simulator.set_door(3, False)
        flapper = threading.Thread(target=flap)
        flapper.start()
        try:
            wait_until(lambda: ("sensor_flapping", 3) in alarms(daemon), 5,
                       what="the flapping alarm")
            assert pickup(daemon, 0) == [1]    # other doors serve patrons meanwhile
            assert check_health(daemon) == []
            status = get(daemon.port, "/api/status")
            assert {"alarm": "sensor_flapping", "compartment": 3} in status["state"]["alarms"]
        finally:
            stop.set()
            flapper.join()
        wait_until(lambda: ("sensor_flapping", 3) not in alarms(daemon), 5,
                   what="the flapping alarm to clear once the sensor is quiet")
        events = [r["type"] for r in daemon.controller.call(
            lambda l: l.store.outbox_batch(limit=100000))]
        assert events.count("door.closed") + events.count("door.opened") < 40, \
            "a flapping sensor flooded the outbox"
    finally:
        daemon.stop()


def test_broker_gone_for_an_hour(tmp_path, monkeypatch, capsys):
    link_module = pytest.importorskip("bibbox.central.link")
    from tests.brokers import Broker
    monkeypatch.setattr(link_module.CentralLink, "reconnect_max_s", 1.0)
    broker = Broker(tmp_path / "broker")          # not started: the broker is gone
    clock = FakeClock()
    daemon = sim_daemon(tmp_path / "state", clock=clock, mqtt_url=broker.url)
    try:
        daemon.start()
        wait_until(lambda: daemon.link.health()["last_error"], 10,
                   what="the link to report its connection error")
        depth0 = daemon.link.health()["outbox_depth"]
        collected = 0
        for minute in range(60):                 # an hour on the injected clock
            clock.advance(60)
            daemon.controller.wake()
            if minute % 10 == 0:
                number = 1 + (minute // 10) % 6
                place_hold(daemon, f"H{minute}", minute // 10 % 4, number)
                assert pickup(daemon, minute // 10 % 4) == [number]
                collected += 1
        code, out = status_cli(daemon, capsys)
        assert code == 3 and "DISCONNECTED" in out
        assert check_health(daemon) == []
        outbox = daemon.controller.call(lambda l: l.store.outbox_depth())
        assert outbox > depth0 + 4 * collected    # kept, waiting for the broker
        broker.start()
        wait_until(lambda: daemon.link.health()["subscribed"], 20, what="the link to reconnect")
        wait_until(lambda: daemon.controller.call(lambda l: l.store.outbox_depth()) == 0, 20,
                   what="the outbox to drain")
        code, out = status_cli(daemon, capsys)
        assert code == 0 and "connected" in out
    finally:
        daemon.stop()
        broker.stop()
