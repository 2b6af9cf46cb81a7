"""What a configuration library would cost the daemon in memory (ADR 2).

For each candidate, a fresh interpreter imports what the daemon imports
(bootstrap, Flask, waitress, paho, gpiozero, pyserial), then the candidate,
defines one model shaped like ``[hardware]`` plus a list of compartments,
and validates the demo configuration's data with it.  The figure is the
peak RSS (``VmHWM``) of that interpreter minus the peak RSS of the same
interpreter without the candidate (our own walker, ``config.parse``).
Baseline and candidates run interleaved, ``--rounds`` times; medians are
printed.  A candidate that is not installed is reported as such.

    pip install pydantic msgspec attrs cattrs   # only for this benchmark
    python bench/bench_config_libs.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

DAEMON_IMPORTS = """
import bibbox.daemon.bootstrap, bibbox.daemon.cli, flask, waitress, paho.mqtt.client
import gpiozero, serial, tomllib
from bibbox.daemon.cli import DEMO_CONFIG
from bibbox.daemon.config_file import load
cfg = load(DEMO_CONFIG)
data = tomllib.load(open(DEMO_CONFIG, "rb"))
"""

CANDIDATES = {
    "own walker (baseline)": "",
    "pydantic 2": """
import pydantic
class Hardware(pydantic.BaseModel, extra="forbid"):
    pin_factory: str = "auto"
    relay_active_high: bool = False
    door_closed_when_low: bool = True
    door_bounce_s: float = pydantic.Field(0.02, ge=0, le=0.5)
class Compartment(pydantic.BaseModel, extra="forbid"):
    number: int
    size: str
    relay_pin: int = pydantic.Field(ge=0, le=27)
    door_pin: int = pydantic.Field(ge=0, le=27)
class Doc(pydantic.BaseModel):
    hardware: Hardware = Hardware()
    compartments: list[Compartment]
Doc.model_validate({"hardware": data.get("hardware", {}), "compartments": data["compartments"]})
""",
    "msgspec": """
import msgspec
from typing import Annotated
class Hardware(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pin_factory: str = "auto"
    relay_active_high: bool = False
    door_closed_when_low: bool = True
    door_bounce_s: Annotated[float, msgspec.Meta(ge=0, le=0.5)] = 0.02
class Compartment(msgspec.Struct, forbid_unknown_fields=True):
    number: int
    size: str
    relay_pin: Annotated[int, msgspec.Meta(ge=0, le=27)]
    door_pin: Annotated[int, msgspec.Meta(ge=0, le=27)]
class Doc(msgspec.Struct):
    compartments: list[Compartment]
    hardware: Hardware = Hardware()
msgspec.convert({"hardware": data.get("hardware", {}), "compartments": data["compartments"]}, Doc)
""",
    "attrs + cattrs": """
import attrs, cattrs
@attrs.frozen
class Hardware:
    pin_factory: str = "auto"
    relay_active_high: bool = False
    door_closed_when_low: bool = True
    door_bounce_s: float = attrs.field(default=0.02, validator=[attrs.validators.ge(0), attrs.validators.le(0.5)])
@attrs.frozen
class Compartment:
    number: int
    size: str
    relay_pin: int = attrs.field(validator=[attrs.validators.ge(0), attrs.validators.le(27)])
    door_pin: int = attrs.field(validator=[attrs.validators.ge(0), attrs.validators.le(27)])
@attrs.frozen
class Doc:
    compartments: list[Compartment]
    hardware: Hardware = Hardware()
conv = cattrs.Converter(forbid_extra_keys=True)
conv.structure({"hardware": data.get("hardware", {}), "compartments": data["compartments"]}, Doc)
""",
}

REPORT = """
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]))
"""


def peak_kib(code):
    out = subprocess.run([sys.executable, "-c", DAEMON_IMPORTS + code + REPORT],
                         capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return None, last
    return int(out.stdout.split()[-1]), ""


def import_only(code):
    """The candidate's import lines alone (no model, no validation)."""
    return "\n".join(line for line in code.splitlines() if line.startswith("import "))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    runs = {(name, kind): [] for name in CANDIDATES for kind in ("import", "model")}
    errors = {}
    for _ in range(args.rounds):
        for name, code in CANDIDATES.items():      # interleaved with the baseline
            for kind, text in (("import", import_only(code)), ("model", code)):
                kib, error = peak_kib(text)
                if kib is None:
                    errors[name] = error
                else:
                    runs[name, kind].append(kib)
    base = statistics.median(runs["own walker (baseline)", "model"])
    print(f"peak RSS (VmHWM) of the daemon's import set with the demo configuration "
          f"validated, median of {args.rounds} interleaved runs; baseline {base / 1024:.1f} MiB")
    print(f"{'':24}{'+ import only':>15}{'+ model, validated':>20}")
    for name in CANDIDATES:
        if not runs[name, "model"]:
            print(f"{name:24}  not available ({errors.get(name)})")
            continue
        cells = [(statistics.median(runs[name, k]) - base) / 1024 for k in ("import", "model")]
        print(f"{name:24}{cells[0]:>+13.1f} MiB{cells[1]:>+16.1f} MiB")


if __name__ == "__main__":
    main()
