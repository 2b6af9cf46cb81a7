"""The domain: pure rules, no I/O, imports only the standard library and itself."""
