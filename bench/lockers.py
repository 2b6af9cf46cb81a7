"""Simulated lockers of any size for the benchmarks: a configuration file
with ``doors`` compartments on Kerong KR-CU16 boards (16 locks a board, at
most ``boards_per_bus`` boards on one RS485 bus, as many buses as needed),
accepted by ``config.parse`` and run by ``bibbox demo --config FILE`` (the
simulator answers every bus byte for byte on a pseudo-terminal).
"""

from __future__ import annotations

import os

LOCKS_PER_BOARD = 16


def locker_toml(doors, *, boards_per_bus=10, poll_s=0.08, idle_poll_s=0.9, locker_id=None):
    """The text of a simulated locker configuration with ``doors`` doors."""
    boards = -(-doors // LOCKS_PER_BOARD)
    buses = -(-boards // boards_per_bus)
    out = [f'[locker]\nid = "{locker_id or f"bench-{doors}"}"\n'
           f'name = "Bench locker ({doors} doors)"\nstate_dir = "./state"\n'
           'simulated = true\n\n[hardware]\npin_factory = "mock"\n\n'
           '[reader]\nframing = "barcode"\nport = "sim"\nsuffix = "\\r"\n\n'
           '[timing]\npulse_s = 0.5\ndoor_held_open_s = 120\n\n'
           '[holds]\nsizes = ["S", "M", "L"]\n']
    for b in range(buses):
        on_bus = list(range(min(boards_per_bus, boards - b * boards_per_bus)))
        out.append(f'[[buses]]\nname = "rs485-{b}"\nkind = "kerong"\n'
                   f'port = "/dev/bibbox-locks-{b}"\nbaudrate = 19200\npoll_s = {poll_s}\n'
                   f'idle_poll_s = {idle_poll_s}\n'
                   f'timeout_s = 0.1\nretries = 2\nhook_open_level = 0\nboards = {on_bus}\n')
    for i in range(doors):
        board = i // LOCKS_PER_BOARD
        out.append(f'[[compartments]]\nnumber = {i + 1}\nsize = "{"SML"[i % 3]}"\n'
                   f'bus = "rs485-{board // boards_per_bus}"\nboard = {board % boards_per_bus}\n'
                   f'lock = {i % LOCKS_PER_BOARD}\n')
    return "\n".join(out)


def write_locker(doors, directory, **kwargs):
    """Write the configuration of a ``doors``-door locker into ``directory``;
    returns its path."""
    path = os.path.join(directory, f"locker-{doors}.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(locker_toml(doors, **kwargs))
    return path
