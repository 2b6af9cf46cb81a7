"""The one exception hierarchy of Bibbox.

Every error we raise derives from :class:`BibboxError` and, where it fits,
from a builtin too (the gpiozero pattern), so callers can catch either.
"""


class BibboxError(Exception):
    """Root of every Bibbox error."""


class ConfigError(BibboxError, ValueError):
    """The configuration is invalid.  ``problems`` lists every problem found,
    each as ``"key.path: what is wrong"``."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(
            "  - " + p for p in self.problems))


class SecretError(BibboxError, ValueError):
    """A secret (site key, password file) is missing, unreadable or weak."""


class HardwareError(BibboxError, RuntimeError):
    """A hardware adapter could not be set up or driven."""


class ReaderError(HardwareError):
    """The card reader port failed (unplugged, permission, bad URL)."""


class CardFormatError(BibboxError, ValueError):
    """A card read or typed card number could not be parsed.  The message
    never contains the card data itself."""


class StoreError(BibboxError, RuntimeError):
    """The database is unusable (corrupt, read-only, disk full, too new)."""


class CommandError(BibboxError, ValueError):
    """A command (from a page, the CLI or central) was refused.  ``code`` is a
    stable machine-readable reason, the message is for people."""

    def __init__(self, code, message):
        self.code = code
        super().__init__(message)


class CommandRefused(CommandError):
    """A command from central was refused before it ran: malformed, stale,
    unauthorised, unknown, a reused request id.  ``code`` is the stable
    reason sent back in the response, the message is for people."""

    def __init__(self, code, message):
        super().__init__(code, message)
