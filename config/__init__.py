"""Example configurations, one per kind of site; installed as package data
(``bibbox.config``) so ``bibbox demo`` finds ``demo.toml`` outside the source tree."""
