"""SQLite persistence: the only SQL in Bibbox."""

from .store import Store

__all__ = ["Store"]
