"""The ESC/POS receipt printer, byte for byte over a real pseudo-terminal
(issue 12, item 7).  The test plays the printer on the pty's master side."""

from __future__ import annotations

import os
import queue
import select
import termios
import tty

import pytest

from bibbox.hal.receipt_printer import (CODE_PAGE_865, FEED_AND_CUT, INIT, PAPER_STATUS,
                                        ReceiptPrinter, encode_receipt)

RECEIPT = {"title": "Bibboksen", "date": "21.12.2026",
           "lines": ["Kaffe og kage", "Afleveres senest 05.01.2027", "Blåbær på ø"]}


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def read_until(fd, end, timeout=10.0):
    data = b""
    while not data.endswith(end):
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"the printer got {data!r}, not yet {end!r}"
        data += os.read(fd, 4096)
    return data


def test_encoding_is_init_code_page_text_and_cut():
    data = encode_receipt(RECEIPT)
    assert data.startswith(INIT + CODE_PAGE_865)
    assert data.endswith(FEED_AND_CUT) and FEED_AND_CUT == b"\x1bd\x04\x1dV\x01"
    assert "Blåbær på ø\n".encode("cp865") in data
    assert b"\x86" in data and b"\x91" in data and b"\x9b" in data   # å æ ø in CP865


def test_a_receipt_goes_out_byte_for_byte_and_the_paper_is_asked(pty_pair):
    master, path = pty_pair
    statuses = queue.Queue()
    printer = ReceiptPrinter(path, on_status=lambda ok, why: statuses.put((ok, why))).start()
    try:
        printer.print_receipt(RECEIPT)          # returns at once: a worker prints
        got = read_until(master, PAPER_STATUS)
        assert got == encode_receipt(RECEIPT) + PAPER_STATUS
        os.write(master, b"\x12")               # paper present
        assert statuses.get(timeout=10) == (True, "")
        printer.print_receipt(RECEIPT)
        read_until(master, PAPER_STATUS)
        os.write(master, b"\x72")               # paper end: bits 5 and 6
        assert statuses.get(timeout=10) == (False, "paper_out")
    finally:
        printer.stop()


def test_a_missing_printer_is_reported_and_nothing_blocks(tmp_path):
    statuses = queue.Queue()
    printer = ReceiptPrinter(str(tmp_path / "no-such-printer"),
                             on_status=lambda ok, why: statuses.put((ok, why))).start()
    try:
        printer.print_receipt(RECEIPT)
        ok, why = statuses.get(timeout=10)
        assert ok is False and why.startswith("missing")
    finally:
        printer.stop()
