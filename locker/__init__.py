"""Bibbox locker: the domain and the daemon.

The domain modules here (model, pickup, alarms, controller core) do no I/O
and import no adapter.  ``locker.store`` is the SQLite adapter the controller
is handed; ``locker.wiring`` is the one module that knows every adapter.
"""

__version__ = "0.1.0"
