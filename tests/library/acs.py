"""The test library system now lives in the package
(:mod:`bibbox.library.testserver`, also run by ``bibbox demo --ils``); the
tests keep their own data, ``library.json``, beside this file."""

from pathlib import Path

from bibbox.library import testserver
from bibbox.library.testserver import (FbsServer, RawServer, SipServer,  # noqa: F401
                                       make_ca, now18, server_context)

DATA = Path(__file__).with_name("library.json")


class Library(testserver.Library):
    """:class:`bibbox.library.testserver.Library` on the tests' data."""

    def __init__(self, path=DATA, **options):
        super().__init__(path, **options)
