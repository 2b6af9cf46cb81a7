"""The composition root: bootstrap (the only builder of adapters), CLI, systemd, selftest."""
