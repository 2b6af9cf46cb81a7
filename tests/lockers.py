"""Simulated lockers of any size, for the scale tests and the benchmarks: a
configuration file with ``doors`` compartments on Kerong KR-CU16 boards (16
locks a board, at most ``boards_per_bus`` boards on one RS485 bus, as many
buses as needed), accepted by ``config.parse`` and run by ``bibbox demo
--config FILE`` (the simulator answers every bus byte for byte on a
pseudo-terminal).  With ``rows``, every door also has a place in the
cabinet's front (``rows`` doors a column, numbered top to bottom, then the
next column to the right), so the kiosk and the staff page draw the front.

The benchmarks import this module as ``lockers`` (bench/lockers.py).
"""

from __future__ import annotations

import os

LOCKS_PER_BOARD = 16


def locker_toml(doors, *, boards_per_bus=10, poll_s=0.08, idle_poll_s=0.9, timeout_s=0.1,
                pulse_s=0.5, locker_id=None, rows=None, item_sensors=False, state_dir="./state",
                kiosk_port=None):
    """The text of a simulated locker configuration with ``doors`` doors
    (``item_sensors``: the boards' IR item sensors on).  The tests give the
    buses a longer ``timeout_s``: on a loaded machine the simulator may
    answer late, and a board taken for silent changes doors."""
    boards = -(-doors // LOCKS_PER_BOARD)
    buses = -(-boards // boards_per_bus)
    web = f'[web]\nkiosk_port = {kiosk_port}\n\n' if kiosk_port else ""
    out = [f'[locker]\nid = "{locker_id or f"bench-{doors}"}"\n'
           f'name = "Bench locker ({doors} doors)"\nstate_dir = "{state_dir}"\n'
           f'simulated = true\n\n[hardware]\npin_factory = "mock"\n\n{web}'
           '[reader]\nframing = "barcode"\nport = "sim"\nsuffix = "\\r"\n\n'
           f'[timing]\npulse_s = {pulse_s}\ndoor_held_open_s = 120\n\n'
           '[holds]\nsizes = ["S", "M", "L"]\n']
    for b in range(buses):
        on_bus = list(range(min(boards_per_bus, boards - b * boards_per_bus)))
        out.append(f'[[buses]]\nname = "rs485-{b}"\nkind = "kerong"\n'
                   f'port = "/dev/bibbox-locks-{b}"\nbaudrate = 19200\npoll_s = {poll_s}\n'
                   f'idle_poll_s = {idle_poll_s}\ntimeout_s = {timeout_s}\nretries = 2\nhook_open_level = 0\nboards = {on_bus}\n'
                   f'item_sensors = {"true" if item_sensors else "false"}\n')
    for i in range(doors):
        board = i // LOCKS_PER_BOARD
        place = f'column = {i // rows + 1}\nrow = {i % rows + 1}\n' if rows else ""
        out.append(f'[[compartments]]\nnumber = {i + 1}\nsize = "{"SML"[i % 3]}"\n{place}'
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


def demo_locker(directory, doors, *, clock=None, **kwargs):
    """A started ``bibbox demo`` daemon of a ``doors``-door locker (config
    and state under ``directory``, the web on a free port): the demo's
    patrons and holds, every door on a simulated board.  Stop it after."""
    from bibbox.daemon.cli import demo_daemon
    config = write_locker(doors, str(directory), **kwargs)
    daemon = demo_daemon(os.path.join(str(directory), "state"), port=0, clock=clock,
                         config=config)
    daemon.start()
    return daemon


def place_ready_hold(daemon, hold_id, card, compartment, *, pickup, days=7):
    """Put a ready hold (one item) into ``compartment`` for the patron with
    ``card``, as loading would."""
    from bibbox.locker.domain.identity import CardNumber
    from bibbox.locker.domain.model import Hold, HoldState, Item

    def place(locker):
        hold = Hold(id=hold_id, patron_hash=locker.hasher.patron(CardNumber.parse(card)),
                    items=(Item(f"{hold_id}-1", f"Bog {hold_id}"),), pickup_number=pickup,
                    deadline=locker.clock.wall() + days * 86400, state=HoldState.READY,
                    compartment=compartment)
        return locker.place_hold(hold, actor="test")
    return daemon.controller.call(place)
