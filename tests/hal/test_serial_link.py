"""The lock buses' one exchange (:class:`bibbox.hal.serial_link.Link`) on a
real pseudo-terminal: a tty that takes a request in pieces, or wakes the
reader with nothing to read, costs no exchange and takes no bus down; a
tty whose other end is gone does."""

import os
import tty

import pytest

from bibbox.hal import serial_link
from bibbox.hal.kerong_protocol import request, status_reply
from bibbox.hal.serial_link import Link, open_serial

FRAME, REPLY = request(0, 0, 0x30), status_reply(0, 0, 0)


@pytest.fixture
def pty_pair():
    """(master fd, a Link on the slave through pyserial, as the buses open it)."""
    master, slave = os.openpty()
    tty.setraw(master)
    port = open_serial(os.ttyname(slave), 19200, 0.5)
    os.close(slave)
    link = Link(port, 0.5)
    yield master, link
    link.close()
    try:
        os.close(master)
    except OSError:
        pass


def read_request(master):
    """The request as the board would see it, however the pty split it."""
    seen = b""
    while len(seen) < len(FRAME):
        seen += os.read(master, 64)
    return seen


class StingyOs:
    """``os`` as the link sees it, but a write takes at most ``take`` bytes
    (none, with EAGAIN, the first time) and the first read after a wake-up
    finds nothing (EAGAIN): what a busy or spurious tty may do."""

    def __init__(self, take):
        self.take, self.writes, self.reads = take, 0, 0

    def write(self, fd, data):
        self.writes += 1
        if self.writes == 1:
            raise BlockingIOError("output queue full")
        return os.write(fd, bytes(data[:self.take]))

    def read(self, fd, size):
        self.reads += 1
        if self.reads == 1:
            raise BlockingIOError("woken with nothing to read")
        return os.read(fd, size)

    def __getattr__(self, name):
        return getattr(os, name)


def test_a_request_taken_in_pieces_and_a_spurious_wake_up_cost_nothing(pty_pair, monkeypatch):
    master, link = pty_pair
    stingy = StingyOs(take=2)
    monkeypatch.setattr(serial_link, "os", stingy)
    os.write(master, REPLY)                       # the board's answer is already waiting
    assert link.exchange(FRAME) == REPLY
    assert read_request(master) == FRAME          # the whole request, in order, once
    assert stingy.writes == 4 and stingy.reads >= 2


def test_a_port_whose_other_end_is_gone_fails_the_exchange(pty_pair):
    master, link = pty_pair
    os.close(master)
    with pytest.raises(OSError):
        link.exchange(FRAME)


def test_a_silent_board_costs_one_timeout_and_returns_nothing(pty_pair):
    master, link = pty_pair
    assert link.exchange(FRAME) == b""
    assert read_request(master) == FRAME


class FullOs(StingyOs):
    """A tty whose output queue never takes a byte."""

    def write(self, fd, data):
        self.writes += 1
        raise BlockingIOError("output queue full")


def test_a_port_that_takes_no_request_fails_the_exchange_after_its_timeout(pty_pair,
                                                                          monkeypatch):
    master, link = pty_pair
    full = FullOs(take=0)
    monkeypatch.setattr(serial_link, "os", full)
    with pytest.raises(OSError, match="took no more"):
        link.exchange(FRAME)
    assert full.writes >= 2                        # tried again until the timeout, then gave up
