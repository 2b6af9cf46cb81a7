"""SerialCardReader on real pseudo-terminals (and pyserial's loop://).

The reader opens a symlink in tmp_path that points at a pty slave; the test
writes to the master.  Closing the master makes the slave path vanish (the
reader's read fails); repointing the symlink at a new pty makes it reappear.
"""

import functools
import logging
import os
import threading

import pytest
import serial
from hypothesis import HealthCheck, given, settings, strategies as st

from bibbox.hal.cardreader import (
    BarcodeFraming, MagstripeFraming, Rdm6300Framing, SerialCardReader)
from bibbox.locker.domain.errors import ReaderError

CPR = "0101901234"
WAIT_S = 5.0


def rdm_frame(hex10, checksum_ok=True):
    xor = functools.reduce(lambda a, b: a ^ b, bytes.fromhex(hex10))
    return (b"\x02" + hex10.encode() + b"%02X" % (xor if checksum_ok else xor ^ 1)
            + b"\x03")


BAD_CHECKSUM = rdm_frame("FFFFFFFFFF", checksum_ok=False)


class Pty:
    """A pty whose slave is reachable as ``link``; ``replace`` swaps in a new one."""

    def __init__(self, link):
        self.link, self.master, self.slave = link, None, None
        self.replace()

    def replace(self):
        self.close()
        self.master, self.slave = os.openpty()
        tmp = self.link.with_suffix(".new")
        os.symlink(os.ttyname(self.slave), tmp)
        os.replace(tmp, self.link)

    def write(self, data):
        os.write(self.master, data)

    def close_master(self):
        os.close(self.master)
        self.master = None

    def close(self):
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None


class Clock:
    """An injected monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Recorder:
    """Collects callbacks from the reader thread; waits for conditions."""

    def __init__(self):
        self.cards, self.garbled, self.online = [], [], []
        self._changed = threading.Condition()

    def _add(self, items, item):
        with self._changed:
            items.append(item)
            self._changed.notify_all()

    def on_card(self, card):
        self._add(self.cards, card.value)

    def on_garbled(self, reason):
        self._add(self.garbled, reason)

    def on_online(self, online):
        self._add(self.online, online)

    def wait(self, predicate):
        with self._changed:
            assert self._changed.wait_for(predicate, WAIT_S), "timed out waiting"


@pytest.fixture
def pty(tmp_path):
    pty = Pty(tmp_path / "reader")
    yield pty
    pty.close()


@pytest.fixture
def run_reader(pty):
    """Start a reader on the pty's link; it is stopped at teardown."""
    readers = []

    def run(framing=None, on_card=None, **options):
        events = Recorder()
        options.setdefault("reopen_min_s", 0.02)
        options.setdefault("reopen_max_s", 0.2)
        reader = SerialCardReader(
            str(pty.link), 9600, framing or Rdm6300Framing(), on_card or events.on_card,
            on_online=events.on_online, on_garbled=events.on_garbled, **options)
        readers.append(reader)
        reader.start()
        events.wait(lambda: events.online)
        return reader, events

    yield run
    for reader in readers:
        reader.stop()
    assert not [t for t in threading.enumerate() if t.name == "bibbox-reader"]


def test_card_is_delivered_and_stop_is_idempotent(pty, run_reader):
    reader, events = run_reader()
    assert events.online == [True] and reader.online
    pty.write(rdm_frame("0a1b2c3d4e"))
    events.wait(lambda: events.cards)
    assert events.cards == ["0A1B2C3D4E"] and events.garbled == []
    with pytest.raises(ReaderError):
        reader.start()
    reader.stop()
    reader.stop()
    assert not reader.online


def test_repeats_are_suppressed_within_a_sliding_window(pty, run_reader):
    clock = Clock()
    reader, events = run_reader(repeat_window_s=2.0, monotonic=clock)
    card = rdm_frame("1122334455")

    def write_then_sync(data, garbled_before):
        pty.write(data + BAD_CHECKSUM)  # the garbled frame marks "all read"
        events.wait(lambda: len(events.garbled) > garbled_before)

    write_then_sync(card * 3, 0)
    assert events.cards == ["1122334455"]
    for step, advance in enumerate([1.5, 1.5, 1.5]):  # each repeat slides it
        clock.now += advance
        write_then_sync(card, 1 + step)
    assert events.cards == ["1122334455"]
    clock.now += 2.5
    write_then_sync(card + rdm_frame("AABBCCDDEE") + card, 4)
    assert events.cards == ["1122334455"] * 2 + ["AABBCCDDEE", "1122334455"]


def test_garbled_input_reports_reasons_and_no_card(pty, run_reader):
    reader, events = run_reader()
    pty.write(BAD_CHECKSUM + b"\x02123\x03" + b"\x02" + b"1" * 20)
    events.wait(lambda: len(events.garbled) == 3)
    assert events.garbled == ["checksum", "garbled", "too long"]
    assert events.cards == []


def test_port_loss_goes_offline_and_back_when_the_path_reappears(pty, run_reader):
    reader, events = run_reader(framing=BarcodeFraming(suffix=b"\r\n"))
    pty.write(b"1234\r\n")
    events.wait(lambda: events.cards)
    pty.close_master()  # the slave's node vanishes, reads fail
    events.wait(lambda: events.online == [True, False])
    assert not reader.online
    pty.replace()
    events.wait(lambda: events.online == [True, False, True])
    pty.write(b"5678\r\n")
    events.wait(lambda: len(events.cards) == 2)
    assert events.cards == ["1234", "5678"]


def test_first_open_failing_reports_offline_then_online(tmp_path):
    events, link, pty = Recorder(), tmp_path / "later", None
    reader = SerialCardReader(str(link), 9600, MagstripeFraming(), events.on_card,
                              on_online=events.on_online, reopen_min_s=0.01,
                              reopen_max_s=0.05)
    reader.start()
    try:
        events.wait(lambda: events.online == [False])
        pty = Pty(link)
        events.wait(lambda: events.online == [False, True])
        pty.write(b";1208112301019012343=2512?")
        events.wait(lambda: events.cards == [CPR])
    finally:
        reader.stop()
        if pty is not None:
            pty.close()


def test_loop_url_and_a_failing_callback_do_not_kill_the_thread():
    ports, events, calls = [], Recorder(), []

    def open_loop(url, **options):
        ports.append(serial.serial_for_url(url, **options))
        return ports[-1]

    def on_card(card):
        calls.append(card)
        if len(calls) == 1:
            raise RuntimeError("callback bug")
        events.on_card(card)

    reader = SerialCardReader("loop://", 9600, BarcodeFraming(), on_card,
                              on_online=events.on_online, repeat_window_s=0,
                              open_port=open_loop)
    reader.start()
    try:
        events.wait(lambda: events.online)
        ports[0].write(b"1234\r1234\r")
        events.wait(lambda: events.cards)
        assert events.cards == ["1234"] and len(calls) == 2
    finally:
        reader.stop()


def without_stx_etx(noise):
    return noise.replace(b"\x02", b"").replace(b"\x03", b"")


frame_cards = st.text("0123456789ABCDEF", min_size=10, max_size=10)


def test_noisy_partial_repeated_stream(pty, run_reader):
    clock = Clock()
    reader, events = run_reader(monotonic=clock, repeat_window_s=2.0)
    sentinel = "5E5E5E5E5E"

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(card=frame_cards.filter(lambda c: c != sentinel),
           noise=st.lists(st.binary(max_size=30).map(without_stx_etx),
                          min_size=3, max_size=3),
           cut=st.integers(1, 13), repeats=st.integers(1, 4),
           chunk=st.integers(1, 20))
    def check(card, noise, cut, repeats, chunk):
        clock.now += 100  # forget the previous example's cards
        del events.cards[:]
        frame = rdm_frame(card)
        stream = (noise[0] + rdm_frame(card)[:cut] + noise[1] + frame * repeats
                  + noise[2] + rdm_frame(sentinel))
        for start in range(0, len(stream), chunk):
            pty.write(stream[start:start + chunk])
        events.wait(lambda: sentinel in events.cards)
        assert events.cards == [card, sentinel]

    check()


def test_card_data_never_reaches_logs(pty, run_reader, caplog):
    caplog.set_level(logging.DEBUG, logger="bibbox.reader")
    seen = []

    def leaky_callback(card):
        seen.append(card)
        raise ValueError(f"cannot handle {card.value}")

    reader, events = run_reader(framing=BarcodeFraming(max_len=16),
                                on_card=leaky_callback, monotonic=Clock())
    pty.write(b"]C0" + CPR.encode() + b"\x00\r"        # garbled
              + CPR.encode() * 3 + b"\r"               # too long
              + b"010190-1234\r" + CPR.encode() + b"\r"  # good, then repeat
              + b"\xff" + CPR.encode() + b"\r")        # garbled
    events.wait(lambda: len(events.garbled) == 3)
    pty.close_master()
    events.wait(lambda: events.online == [True, False])
    reader.stop()
    assert [card.value for card in seen] == [CPR]
    assert events.garbled == ["garbled", "too long", "garbled"]
    assert caplog.records
    for record in caplog.records:
        texts = [record.getMessage(), str(record.args), record.exc_text or ""]
        assert not any(CPR in text for text in texts), texts
    assert CPR not in caplog.text and CPR not in repr(seen) and CPR not in f"{seen[0]}"
