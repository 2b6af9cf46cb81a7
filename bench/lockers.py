"""Simulated lockers of any size for the benchmarks (``import lockers``).

The generator lives in tests/lockers.py, where the 200-door tests use it
too; this module only makes it importable from the bench scripts."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.lockers import LOCKS_PER_BOARD, locker_toml, write_locker  # noqa: E402,F401
