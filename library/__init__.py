"""The library-system adapters: SIP2 (plain, over TCP or TLS) and FBS's
HTTPS dialect of it.  May import ``bibbox.locker.app`` and
``bibbox.locker.domain`` only (see tests/test_layers.py)."""
