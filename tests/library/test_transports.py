"""Both transports against the test library system (pysip2), and against
a scripted server for replies no library system should send."""

import logging
import ssl
import time

import pytest

from bibbox.library import fbs, sip2
from bibbox.library.client import LibraryClient
from bibbox.library.transport import InsecureTransport, SipTransport
from bibbox.locker.domain.identity import CardNumber, Pin
from tests.library.acs import RawServer

LOGIN = dict(user="locker1", password="sip-secret", location="BIBBOX1")
D = "20260105    101500"


def tcp_client(server, **kw):
    options = dict(tls=False, trusted_network=True, timeout_s=2, retries=1, **LOGIN)
    options.update(kw)
    return LibraryClient(SipTransport("127.0.0.1", server.port, **options),
                         institution="DK-775100", location="BIBBOX1")


def test_every_message_over_tcp_with_login(sip_server, library):
    client = tcp_client(sip_server)
    card, pin = CardNumber.parse("L0001"), Pin.parse("1234")
    status = client.status()
    assert status.online and "patron information" in status.supported_messages()
    assert library.requests[0] == "93"            # logged in first, once
    info = client.patron_information(card, pin)
    assert info.valid_patron and info.valid_pin and info.hold_items == ("I1001", "I1002")
    assert client.patron_status(card, pin).valid_pin
    out = client.checkout(card, "I1001")
    assert out.ok and out.due_date == "20270201" and out.title == "Kongens Fald"
    assert not client.checkout(card, "I1003").ok      # on hold for someone else
    item = client.item_information("I1002")
    assert item.title == "Fra Piazza del Popolo" and item.circulation_status == "08"
    back = client.checkin("I1001")
    assert back.ok and library.checkins == [("I1001", "BIBBOX1")]
    assert library.requests.count("93") == 1          # the connection was reused
    client.close()


def test_wrong_login_is_a_clear_error(sip_server):
    client = tcp_client(sip_server, password="nope")
    with pytest.raises(sip2.LibraryError, match="refused the login"):
        client.status()


def test_plain_tcp_is_refused_unless_the_network_is_trusted():
    with pytest.raises(InsecureTransport):
        SipTransport("127.0.0.1", 1, tls=False)
    with pytest.raises(InsecureTransport):
        fbs.FbsTransport("127.0.0.1", "775100", tls=False)


def test_tls_with_the_test_ca_and_refusal_of_an_untrusted_certificate(tls_server, test_ca):
    ca = str(test_ca[0])
    client = LibraryClient(SipTransport("127.0.0.1", tls_server.port, ca_file=ca,
                                        timeout_s=3, retries=0, **LOGIN),
                           institution="DK-775100")
    assert client.status().online
    assert client.patron_information(CardNumber.parse("L0001"), Pin.parse("1234")).valid_pin
    untrusting = LibraryClient(SipTransport("127.0.0.1", tls_server.port, timeout_s=3,
                                            retries=0, **LOGIN), institution="DK-775100")
    with pytest.raises(sip2.LibraryUnavailable) as info:
        untrusting.status()
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


def checksummed(text, seq=1):
    return sip2.frame(text, seq)


def test_checksum_error_asks_for_a_resend_and_96_makes_us_resend():
    good = checksummed("941")
    bad = good[:-5] + (b"0000" if good[-5:-1] != b"0000" else b"0001") + b"\r"
    raw = RawServer([bad, good]).start()
    t = SipTransport("127.0.0.1", raw.port, tls=False, trusted_network=True, timeout_s=2)
    assert t.exchange(sip2.login("u", "p"), "94").ok
    assert raw.received[1] == b"97AZFEF5\r"
    raw2 = RawServer([b"96AZFEF6\r", good]).start()
    t2 = SipTransport("127.0.0.1", raw2.port, tls=False, trusted_network=True, timeout_s=2)
    assert t2.exchange(sip2.login("u", "p"), "94").ok
    assert raw2.received[0] == raw2.received[1]           # the same frame again
    raw.stop(), raw2.stop()


@pytest.mark.parametrize("answer, error", [
    (b"24garbage\r", sip2.ReplyError),
    (b"24" + b" " * 14 + b"009" + D.encode()[:8] + b"\r", sip2.ReplyError),     # truncated
    (b"941" + b"AF" + b"x" * 9000 + b"\r", sip2.ReplyError),                   # oversized
    (b"941\r", sip2.WrongReplyType),                                          # wrong type
])
def test_bad_replies_never_crash_and_are_logged_redacted(answer, error, caplog):
    caplog.set_level(logging.INFO, logger="bibbox.library")
    raw = RawServer([answer]).start()
    t = SipTransport("127.0.0.1", raw.port, tls=False, trusted_network=True, timeout_s=2,
                     checksums=False)
    with pytest.raises(error):
        t.exchange(sip2.patron_status("DK-1", CardNumber.parse("L0001"), Pin.parse("1234")),
                   "24")
    assert "L0001" not in caplog.text and "1234" not in caplog.text
    raw.stop()


def test_a_logged_reply_hides_the_patron(caplog):
    caplog.set_level(logging.INFO, logger="bibbox.library")
    raw = RawServer([b"24XXAAL0001|AEAnna|AD1234|\r"]).start()
    t = SipTransport("127.0.0.1", raw.port, tls=False, trusted_network=True, timeout_s=2)
    with pytest.raises(sip2.ReplyError):
        t.exchange(sip2.sc_status(), "24")
    assert "unparsable" in caplog.text
    assert "L0001" not in caplog.text and "Anna" not in caplog.text and "1234" not in caplog.text


def test_timeouts_retry_a_bounded_number_of_times_then_unavailable():
    raw = RawServer([None, None, None, None]).start()
    t = SipTransport("127.0.0.1", raw.port, tls=False, trusted_network=True,
                     timeout_s=0.3, retries=2)
    started = time.monotonic()
    with pytest.raises(sip2.LibraryUnavailable):
        t.exchange(sip2.sc_status(), "98")
    assert len(raw.received) == 3 and time.monotonic() - started < 3
    raw.stop()


def test_server_down_is_unavailable():
    raw = RawServer([])
    port = raw.port
    raw.stop()
    t = SipTransport("127.0.0.1", port, tls=False, trusted_network=True, timeout_s=0.5,
                     retries=1)
    with pytest.raises(sip2.LibraryUnavailable):
        t.exchange(sip2.sc_status(), "98")


def fbs_client(server, test_ca, **kw):
    options = dict(port=server.port, ca_file=str(test_ca[0]), timeout_s=3, retries=1,
                   login="fbs-locker", password="fbs-secret")
    options.update(kw)
    return LibraryClient(fbs.FbsTransport("127.0.0.1", "775100", **options),
                         institution="775100", fbs=True)


def test_fbs_dialect_every_message(fbs_server, test_ca):
    client = fbs_client(fbs_server, test_ca)
    card, pin = CardNumber.parse("L0001"), Pin.parse("1234")
    assert client.status().online
    info = client.patron_information(card, pin)
    assert info.valid_pin and client.patron_number(info.patron) == "L0001"
    assert info.patron == "LN:L0001"
    assert fbs.item_parts(info.hold_items[0])[0] == "I1001"
    assert fbs.item_parts(info.hold_items[0])[-1] == "Kongens Fald"
    assert str(info.fee_limit) == "200.00"
    assert client.patron_status(card, pin).valid_patron
    assert client.checkout(card, "I1001").ok
    assert client.checkin("I1001", location="BIBBOX1").ok
    assert client.item_information("I1002").title == "Fra Piazza del Popolo"
    assert {p for p, _ in fbs_server.posts} == {"/rest/sip2/DK-775100"}
    assert all(c == "keep-alive" for _, c in fbs_server.posts)


def test_fbs_error_and_error_input_and_bad_login(fbs_server, test_ca):
    client = fbs_client(fbs_server, test_ca)
    card, pin = CardNumber.parse("L0001"), Pin.parse("1234")
    fbs_server.mode = "error"
    with pytest.raises(fbs.FbsErrorReply, match="<error>"):
        client.patron_information(card, pin)
    fbs_server.mode = "error-input"
    with pytest.raises(fbs.FbsErrorReply, match="ERROR INPUT"):
        client.patron_information(card, pin)
    fbs_server.mode = "ok"
    with pytest.raises(sip2.LibraryError, match="refused the login"):
        fbs_client(fbs_server, test_ca, password="nope").status()


def test_fbs_refuses_entities_and_garbage():
    with pytest.raises(sip2.ReplyError, match="DOCTYPE"):
        fbs.unwrap(b'<!DOCTYPE x [<!ENTITY a "b">]><sip><response>&a;</response></sip>')
    with pytest.raises(sip2.ReplyError, match="not XML"):
        fbs.unwrap(b"<sip><response>")
    with pytest.raises(sip2.ReplyError, match="longer"):
        fbs.unwrap(b"x" * (fbs.MAX_REPLY_BYTES + 1))
    import xml.etree.ElementTree as ET
    root = ET.fromstring(fbs.envelope("23<&>", 'a"b', "p"))
    assert root.get("login") == 'a"b' and root.find("request").text == "23<&>"
