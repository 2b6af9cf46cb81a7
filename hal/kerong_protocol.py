"""The Kerong KR-CU16 frames: what goes over the wire and how a reply is
read (see :mod:`bibbox.hal.kerong` for the bus, ``firmware/README.md`` for
what is confirmed on hardware).  Pure functions, shared by the driver, the
byte-for-byte simulator and the tests."""

from __future__ import annotations

from typing import NamedTuple

from bibbox.hal.serial_link import REPLY_LEN

STX, ETX = 0x02, 0x03
CMD_STATUS, CMD_UNLOCK, REPLY_STATUS = 0x30, 0x31, 0x35


def checksum(data: bytes) -> int:
    """The low byte of the sum of ``data``."""
    return sum(data) & 0xFF


def request(board: int, lock: int, command: int) -> bytes:
    """The 5-byte request ``02 ADDR CMD 03 SUM``."""
    if not 0 <= board <= 15 or not 0 <= lock <= 15:
        raise ValueError(f"board {board} lock {lock} is not an address")
    body = bytes((STX, board << 4 | lock, command, ETX))
    return body + bytes((checksum(body),))


def status_reply(board: int, hooks: int, infrared: int, lock: int = 0) -> bytes:
    """The 9-byte status reply (for the simulator and tests)."""
    body = bytes((STX, board << 4 | lock, REPLY_STATUS, hooks & 0xFF, hooks >> 8 & 0xFF,
                  infrared & 0xFF, infrared >> 8 & 0xFF, ETX))
    return body + bytes((checksum(body),))


class BoardStatus(NamedTuple):
    """One status reply: bit ``i`` of ``hooks``/``infrared`` is lock ``i``.
    (A named tuple: one is made every poll, and a tuple is the cheapest.)"""
    board: int
    hooks: int
    infrared: int


def find_status(buffer: bytes, board: int) -> tuple[BoardStatus | None, str]:
    """The status reply of ``board`` in ``buffer``, or None and why not
    ("no reply", "garbage", "wrong checksum", "reply from board N")."""
    why = "garbage" if buffer else "no reply"
    at = buffer.find(STX)
    while 0 <= at <= len(buffer) - REPLY_LEN:
        frame = buffer[at:at + REPLY_LEN]
        if frame[2] == REPLY_STATUS and frame[7] == ETX:
            if checksum(frame[:8]) != frame[8]:
                why = "wrong checksum"
            elif frame[1] >> 4 != board:
                why = f"reply from board {frame[1] >> 4}"
            else:
                return BoardStatus(board, frame[3] | frame[4] << 8, frame[5] | frame[6] << 8), ""
        at = buffer.find(STX, at + 1)
    return None, why
