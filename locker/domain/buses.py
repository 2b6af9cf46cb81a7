"""Lock boards on serial buses: the facts the configuration checks, and the bus map.

A compartment is on GPIO pins (the default), or on a named bus
(``[[buses]]``): a Kerong KR-CU16 board and lock, or a Modbus unit and coil
(and optionally a discrete input for the door).  :func:`check_buses` lists
every problem with its key path; :func:`bus_map` is what ``bibbox
check-config`` prints.
"""

from __future__ import annotations

BUS_KINDS = ("kerong", "modbus")
KERONG_BOARDS = 10      # board numbers 0-9 (the high nibble of the address byte)
KERONG_LOCKS = 16       # locks 0-15 (the low nibble)
NO_CHANNEL = -1         # an unset pin, board, lock, unit, coil or input
# How often a board is asked for its doors: every POLL_S while it moves (a door
# of it opened, closed or was unlocked in the last few seconds, or is open), at
# rest every IDLE_POLL_S -- so a door forced while the locker is quiet is seen
# within a second.  At 19200 baud one Kerong exchange is 7.3 ms: 10 boards
# fit in 80 ms, so a moving door reaches the controller within 80 + 10 ms.
POLL_S, IDLE_POLL_S = 0.08, 0.9


def check_buses(sections, buses, compartments, problems):
    """Each compartment on one channel of one driver; buses that exist,
    addresses the bus has, no port shared, no board without compartments."""
    by_name, ports = {}, {}
    for i, bus in enumerate(buses):
        name, port = bus.get("name"), bus.get("port")
        if name is not None:
            if name in by_name:
                problems.append(f"buses[{i}].name: bus {name!r} is already defined at "
                                f"buses[{by_name[name][0]}]")
            else:
                by_name[name] = (i, bus)
        if port:
            if port in ports:
                problems.append(f"buses[{i}].port: {port} is already used by "
                                f"{ports[port]}: one port, one driver")
            else:
                ports[port] = f"buses[{i}] ({bus.get('kind', '?')})"
        if bus.get("item_sensors") and bus.get("kind") != "kerong":
            problems.append(f"buses[{i}].item_sensors: only kerong boards have item "
                            "sensors (use item_pin on GPIO compartments)")
        poll_s, idle_poll_s = bus.get("poll_s", POLL_S), bus.get("idle_poll_s", IDLE_POLL_S)
        if idle_poll_s < poll_s:
            default = "" if "idle_poll_s" in bus else " (the default)"
            problems.append(f"buses[{i}].idle_poll_s: {idle_poll_s:g}{default} is shorter than "
                            f"poll_s {poll_s:g}; a board at rest is polled no more often "
                            "than one that moves")
        for j, board in enumerate(bus.get("boards", [])):
            hi = KERONG_BOARDS - 1 if bus.get("kind") == "kerong" else 247
            lo = 0 if bus.get("kind") == "kerong" else 1
            if not isinstance(board, int) or isinstance(board, bool) or not lo <= board <= hi:
                problems.append(f"buses[{i}].boards[{j}]: expected a board number {lo}..{hi}")
    reader, keypad = sections.get("reader"), sections.get("keypad")
    for owner, port in (("reader.port", reader and reader.enabled and reader.port),
                        ("keypad.port", keypad and keypad.kind == "serial" and keypad.port)):
        if port and port in ports:
            problems.append(f"{owner}: {port} is already used by {ports[port]}: "
                            "one port, one driver")
    channels, used_boards = {}, {}
    for i, c in enumerate(compartments):
        path = f"compartments[{i}]"
        bus_name = c.get("bus", "")
        fields = {k for k in ("relay_pin", "door_pin", "board", "lock", "unit", "coil",
                              "input") if k in c}
        if not bus_name:
            for key in ("relay_pin", "door_pin"):
                if key not in c:
                    problems.append(f"{path}.{key}: missing (a GPIO compartment needs "
                                    "relay_pin and door_pin, or names a bus)")
            for key in sorted(fields - {"relay_pin", "door_pin"}):
                problems.append(f"{path}.{key}: only for a compartment on a bus")
            continue
        if bus_name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            problems.append(f"{path}.bus: unknown bus {bus_name!r} (known: {known})")
            continue
        index, bus = by_name[bus_name]
        kind = bus.get("kind")
        need = {"kerong": ("board", "lock"), "modbus": ("unit", "coil")}.get(kind, ())
        allowed = {"kerong": {"board", "lock"}, "modbus": {"unit", "coil", "input"}}.get(
            kind, set())
        for key in need:
            if key not in c:
                problems.append(f"{path}.{key}: missing (a compartment on {kind} bus "
                                f"{bus_name!r} needs {' and '.join(need)})")
        for key in sorted(fields - allowed):
            problems.append(f"{path}.{key}: not used on {kind} bus {bus_name!r}")
        if "item_pin" in c:
            problems.append(f"{path}.item_pin: only for a GPIO compartment (a kerong "
                            "board's own sensors: item_sensors = true on its bus)")
        if kind == "kerong" and c.get("board", 0) >= KERONG_BOARDS:
            problems.append(f"{path}.board: board {c['board']} is beyond the bus "
                            f"(KR-CU16 boards are 0..{KERONG_BOARDS - 1})")
        board = c.get("board") if kind == "kerong" else c.get("unit")
        if board is not None:
            used_boards.setdefault(bus_name, set()).add(board)
        channel_keys = (("lock",) if kind == "kerong" else ("coil", "input"))
        for key in channel_keys:
            if board is None or key not in c:
                continue
            channel = (bus_name, board, key if kind == "modbus" else "lock", c[key])
            if channel in channels:
                problems.append(f"{path}.{key}: {_channel_name(kind, channel)} is already "
                                f"used by {channels[channel]}")
            else:
                channels[channel] = path
    for name, (i, bus) in by_name.items():
        listed = set(b for b in bus.get("boards", []) if isinstance(b, int))
        used = used_boards.get(name, set())
        if not used:
            problems.append(f"buses[{i}]: bus {name!r} has no compartments")
        for board in sorted(listed - used):
            problems.append(f"buses[{i}].boards: board {board} has no compartments")
        if listed:
            for board in sorted(used - listed):
                problems.append(f"buses[{i}].boards: board {board} has compartments but "
                                "is not listed")


def _channel_name(kind, channel):
    bus, board, key, value = channel
    if kind == "kerong":
        return f"bus {bus!r} board {board} lock {value}"
    return f"bus {bus!r} unit {board} {key} {value}"


def board_id(bus, board):
    """The name of a board in alarms and health: ``"bus/board"``."""
    return f"{bus}/{board}"


def bus_map(cfg) -> list[str]:
    """One line per driver: GPIO compartments, then each bus with its boards
    and which compartment sits on which channel."""
    lines = []
    gpio = [c for c in cfg.compartments if not c.bus]
    if gpio:
        lines.append(f"gpio: {len(gpio)} compartment(s)")
        for c in gpio:
            item = f", item GPIO{c.item_pin}" if c.item_pin != NO_CHANNEL else ""
            lines.append(f"  #{c.number}: relay GPIO{c.relay_pin}, door GPIO{c.door_pin}{item}")
    for bus in cfg.buses:
        mine = [c for c in cfg.compartments if c.bus == bus.name]
        lines.append(f"bus {bus.name!r} ({bus.kind}) on {bus.port} @ {bus.baudrate}: "
                     f"{len(mine)} compartment(s), poll every {bus.poll_s:g} s while a "
                     f"door moves, every {bus.idle_poll_s:g} s at rest" +
                     (", IR item sensors" if bus.kind == "kerong" and bus.item_sensors else ""))
        by_board = {}
        for c in mine:
            by_board.setdefault(c.board if bus.kind == "kerong" else c.unit, []).append(c)
        for board in sorted(by_board):
            if bus.kind == "kerong":
                cells = ", ".join(f"{c.lock}->#{c.number}" for c in
                                  sorted(by_board[board], key=lambda c: c.lock))
                lines.append(f"  board {board}: lock {cells}")
            else:
                cells = ", ".join(
                    f"coil {c.coil}" + (f"/input {c.input}" if c.input != NO_CHANNEL else "")
                    + f"->#{c.number}" for c in sorted(by_board[board], key=lambda c: c.coil))
                lines.append(f"  unit {board}: {cells}")
    return lines
