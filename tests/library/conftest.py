"""Fixtures: the test library system (pysip2) over TCP, TLS and FBS HTTPS."""

import pytest

from tests.library.acs import FbsServer, Library, SipServer, make_ca, server_context


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def library():
    return Library()


@pytest.fixture
def sip_server(library):
    server = SipServer(library, login_required=True).start()
    yield server
    server.stop()


@pytest.fixture
def tls_server(library, test_ca):
    ca, cert, key = test_ca
    server = SipServer(library, tls_context=server_context(cert, key),
                       login_required=True).start()
    yield server
    server.stop()


@pytest.fixture
def fbs_server(test_ca):
    ca, cert, key = test_ca
    server = FbsServer(Library(fbs=True), tls_context=server_context(cert, key)).start()
    yield server
    server.stop()
