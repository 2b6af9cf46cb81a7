"""Configuration of compartments on lock boards: every problem is listed
with its key path; GPIO stays the default; one locker may mix drivers."""

import pytest

from bibbox.locker.domain.buses import bus_map
from bibbox.locker.domain.config import parse
from bibbox.locker.domain.errors import ConfigError


def doc(compartments, buses=()):
    return {"locker": {"id": "t", "simulated": True}, "hardware": {"pin_factory": "mock"},
            "buses": list(buses), "compartments": list(compartments)}


KERONG = {"name": "rs", "kind": "kerong", "port": "/dev/ttyUSB0"}
MODBUS = {"name": "mb", "kind": "modbus", "port": "/dev/ttyUSB1", "baudrate": 9600}


def problems(data):
    with pytest.raises(ConfigError) as err:
        parse(data)
    return err.value.problems


def test_a_mixed_locker_is_valid_and_mapped():
    cfg = parse(doc([{"number": 1, "size": "S", "relay_pin": 5, "door_pin": 17},
                     {"number": 2, "size": "S", "bus": "rs", "board": 0, "lock": 0},
                     {"number": 3, "size": "S", "bus": "rs", "board": 1, "lock": 15},
                     {"number": 4, "size": "M", "bus": "mb", "unit": 1, "coil": 0, "input": 0}],
                    [KERONG, MODBUS]))
    assert [c.bus for c in cfg.compartments] == ["", "rs", "rs", "mb"]
    assert cfg.bus("rs").baudrate == 19200 and cfg.bus("rs").hook_open_level == 0
    lines = bus_map(cfg)
    assert "gpio: 1 compartment(s)" in lines
    assert "  board 1: lock 15->#3" in lines
    assert "  unit 1: coil 0/input 0->#4" in lines


def test_every_problem_is_listed_with_its_path():
    found = problems(doc(
        [{"number": 1, "size": "S"},                                        # no pins, no bus
         {"number": 2, "size": "S", "bus": "nowhere", "board": 0, "lock": 0},
         {"number": 3, "size": "S", "bus": "rs", "board": 10, "lock": 1},    # beyond the bus
         {"number": 4, "size": "S", "bus": "rs", "board": 0, "lock": 3},
         {"number": 5, "size": "S", "bus": "rs", "board": 0, "lock": 3},     # same channel
         {"number": 6, "size": "S", "bus": "rs", "board": 0, "lock": 16},    # no lock 16
         {"number": 7, "size": "S", "bus": "rs", "board": 0, "lock": 4, "coil": 2},
         {"number": 8, "size": "S", "bus": "mb", "unit": 1, "coil": 0},
         {"number": 9, "size": "S", "bus": "mb", "unit": 1, "coil": 0},      # same coil
         {"number": 10, "size": "S", "bus": "mb", "coil": 1}],               # no unit
        [dict(KERONG, boards=[0, 2]), MODBUS,
         {"name": "rs", "kind": "kerong", "port": "/dev/ttyUSB0"}]))         # name + port again
    expected = [
        "compartments[0].relay_pin: missing",
        "compartments[1].bus: unknown bus 'nowhere'",
        "compartments[2].board: board 10 is beyond the bus",
        "compartments[4].lock: bus 'rs' board 0 lock 3 is already used by compartments[3]",
        "compartments[5].lock: 16 is out of range",
        "compartments[6].coil: not used on kerong bus 'rs'",
        "compartments[8].coil: bus 'mb' unit 1 coil 0 is already used by compartments[7]",
        "compartments[9].unit: missing",
        "buses[2].name: bus 'rs' is already defined",
        "buses[2].port: /dev/ttyUSB0 is already used by buses[0]",
        "buses[0].boards: board 2 has no compartments",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in found), (text, found)


def test_a_bus_shared_with_the_card_reader_and_an_empty_bus_are_refused():
    data = doc([{"number": 1, "size": "S", "relay_pin": 5, "door_pin": 17}],
               [dict(KERONG, port="/dev/bibbox-reader")])
    found = problems(data)
    assert any(p.startswith("reader.port: /dev/bibbox-reader is already used by buses[0]")
               for p in found), found
    assert any(p.startswith("buses[0]: bus 'rs' has no compartments") for p in found), found


def test_gpio_fields_on_a_bus_and_bus_fields_on_gpio_are_refused():
    found = problems(doc([{"number": 1, "size": "S", "relay_pin": 5, "door_pin": 17,
                           "lock": 2},
                          {"number": 2, "size": "S", "bus": "rs", "board": 0, "lock": 0,
                           "relay_pin": 6}], [KERONG]))
    assert "compartments[0].lock: only for a compartment on a bus" in found
    assert "compartments[1].relay_pin: not used on kerong bus 'rs'" in found


ONE_DOOR = [{"number": 1, "size": "S", "bus": "rs", "board": 0, "lock": 0}]


def test_boards_at_rest_are_polled_seldom_by_default_and_the_map_says_so():
    bus = parse(doc(ONE_DOOR, [KERONG])).bus("rs")
    assert (bus.poll_s, bus.idle_poll_s) == (0.08, 0.9)
    assert bus.idle_poll_s <= 1.0            # a door forced while all is quiet: within a second
    cfg = parse(doc(ONE_DOOR, [dict(KERONG, poll_s=0.05, idle_poll_s=0.5)]))
    assert (cfg.bus("rs").poll_s, cfg.bus("rs").idle_poll_s) == (0.05, 0.5)
    assert any("poll every 0.05 s while a door moves, every 0.5 s at rest" in line
               for line in bus_map(cfg))


@pytest.mark.parametrize("bus, expected", [
    ({"idle_poll_s": 0}, "buses[0].idle_poll_s: 0.0 is out of range"),
    ({"idle_poll_s": 60}, "buses[0].idle_poll_s: 60.0 is out of range"),
    ({"idle_poll_s": "1s"}, "buses[0].idle_poll_s: "),
    ({"poll_s": 0.5, "idle_poll_s": 0.2}, "buses[0].idle_poll_s: 0.2 is shorter than poll_s 0.5"),
    ({"poll_s": 2.0}, "buses[0].idle_poll_s: 0.9 (the default) is shorter than poll_s 2"),
])
def test_a_bad_idle_poll_is_refused_with_its_path(bus, expected):
    found = problems(doc(ONE_DOOR, [dict(KERONG, **bus)]))
    assert any(p.startswith(expected) for p in found), found


def test_idle_poll_equal_to_poll_turns_the_pace_change_off():
    bus = parse(doc(ONE_DOOR, [dict(KERONG, poll_s=0.2, idle_poll_s=0.2)])).bus("rs")
    assert bus.poll_s == bus.idle_poll_s == 0.2
