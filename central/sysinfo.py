"""Small facts about the machine for the heartbeat; each returns None when
it cannot be read (not a Pi, no permission) rather than raising."""

from __future__ import annotations

import shutil

THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp"


def disk_free_bytes(path):
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def cpu_temp_c(path=THERMAL_ZONE):
    """The SoC temperature in degrees Celsius, where the kernel exposes it."""
    try:
        with open(path) as fh:
            return round(int(fh.read().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None
