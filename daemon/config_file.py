"""Reading the locker's TOML file: the one place the configuration touches disk."""

from __future__ import annotations

import sys

from bibbox.locker.domain.config import Config, parse_toml
from bibbox.locker.domain.errors import ConfigError


def load(path: str) -> Config:
    """Read and validate the TOML file at ``path``; ConfigError lists every problem."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not valid TOML: not UTF-8"]) from None
    return parse_toml(text, source=str(path))


def load_or_exit(path: str) -> Config:
    """:func:`load` for the command line: print the problems and exit 2."""
    try:
        return load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
