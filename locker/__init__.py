"""The locker itself, below every adapter (see docs/adr/0008-folders-are-layers.md).

- ``domain/``: the rules (compartments, holds, patron sessions, doors,
  alarms, views), typed messages and ports; no I/O;
- ``app/``: the controller thread that owns the state, and the use cases;
- ``store/``: SQLite, the only SQL in Bibbox.

The adapters (``bibbox.hal``, ``bibbox.web``, ``bibbox.central``) and the
composition root (``bibbox.daemon``) import from here, never the reverse.
"""

__version__ = "0.1.0"
