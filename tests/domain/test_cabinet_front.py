"""Each compartment's place in the cabinet's front (issue 12, item 8):
``column``, ``row`` and ``rows`` in the configuration; ``check-config``
refuses overlaps and half-placed cabinets; the demo configurations carry
places; :func:`front` is what the kiosk and the staff page draw."""

import pathlib

import pytest

from bibbox.daemon.config_file import load as load_config
from bibbox.locker.domain import config
from bibbox.locker.domain.cabinet import front
from bibbox.locker.domain.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cabinet(*places):
    comps = []
    for i, place in enumerate(places, start=1):
        comp = {"number": i, "size": "S", "relay_pin": 4 + i, "door_pin": 16 + i}
        comp.update(place)
        comps.append(comp)
    return {"locker": {"id": "t"}, "compartments": comps}


def problems(data):
    with pytest.raises(ConfigError) as err:
        config.parse(data)
    return err.value.problems


def test_places_make_the_front():
    cfg = config.parse(cabinet({"column": 1, "row": 1}, {"column": 1, "row": 2},
                               {"column": 2, "row": 1, "rows": 2}))
    assert front(cfg.compartments) == {
        "columns": 2, "rows": 2,
        "doors": [{"n": 1, "column": 1, "row": 1, "rows": 1, "size": "S"},
                  {"n": 2, "column": 1, "row": 2, "rows": 1, "size": "S"},
                  {"n": 3, "column": 2, "row": 1, "rows": 2, "size": "S"}]}
    assert front(config.parse(cabinet({}, {})).compartments) is None   # no places: no front


def test_overlapping_doors_are_refused():
    found = problems(cabinet({"column": 1, "row": 1, "rows": 2}, {"column": 1, "row": 2}))
    assert any("compartments[1]: column 1, row 2 overlaps compartment 1" in p for p in found)


def test_a_half_placed_cabinet_and_a_half_place_are_refused():
    found = problems(cabinet({"column": 1, "row": 1}, {}))
    assert any("give every compartment a place" in p and ": 2" in p for p in found), found
    found = problems(cabinet({"column": 1, "row": 1}, {"column": 2}))
    assert any("compartments[1]: a place needs both column and row" in p for p in found)
    found = problems(cabinet({"column": 0, "row": 1}, {"column": 1, "row": 2}))
    assert any("compartments[0].column" in p for p in found), found


@pytest.mark.parametrize("name", ["demo.toml", "demo-48-rs485.toml"])
def test_the_demo_configurations_carry_places(name):
    cfg = load_config(str(ROOT / "config" / name))
    layout = front(cfg.compartments)
    assert layout is not None and len(layout["doors"]) == len(cfg.compartments)
    cells = [(d["column"], r) for d in layout["doors"]
             for r in range(d["row"], d["row"] + d["rows"])]
    assert len(cells) == len(set(cells))
