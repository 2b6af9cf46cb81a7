"""The patron check end to end: the locker's verifier port, the SIP2 and
FBS adapters, the test library system."""

import threading
from decimal import Decimal

import pytest

from bibbox.library import fbs, replies
from bibbox.library.client import LibraryClient
from bibbox.library.transport import SipTransport
from bibbox.library.verifier import LibraryVerifier, screen_messages, verdict_for
from bibbox.locker.domain import patrons
from bibbox.locker.domain.identity import CardNumber, Pin
from tests.library.acs import Library, RawServer, SipServer

LOGIN = dict(user="locker1", password="sip-secret", location="BIBBOX1")


def ask(verifier, card, pin):
    """verify() through the port, waiting for done()."""
    answered, got = threading.Event(), []

    def done(verdict):
        got.append((verdict, threading.current_thread().name))
        answered.set()
    verifier.verify("hash", Pin.parse(pin), done,
                    card=None if card is None else CardNumber.parse(card))
    assert answered.wait(10), "done was never called"
    assert len(got) == 1
    return got[0]


def sip_verifier(port, **kw):
    return LibraryVerifier(LibraryClient(SipTransport(
        "127.0.0.1", port, tls=False, trusted_network=True, timeout_s=1, retries=1, **LOGIN),
        institution="DK-775100"), **kw)


@pytest.mark.parametrize("card, pin, outcome, reason", [
    ("L0001", "1234", patrons.ACCEPTED, ""),
    ("0101901234", "5555", patrons.ACCEPTED, ""),
    ("L0001", "9999", patrons.WRONG_PIN, ""),
    ("L0002", "2222", patrons.BLOCKED, "lost_card"),
    ("L0003", "3333", patrons.BLOCKED, "fees"),
    ("L0004", "4444", patrons.ACCEPTED, ""),
    ("X9999", "1234", patrons.UNKNOWN, ""),
])
def test_patron_check_against_the_library(sip_server, card, pin, outcome, reason):
    verifier = sip_verifier(sip_server.port)
    verdict, thread = ask(verifier, card, pin)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    assert thread == "bibbox-library-verifier"       # off the caller's thread
    verifier.close()


def test_fee_limit_from_configuration_when_the_library_sends_none():
    library = Library(send_fee_limit=False)
    server = SipServer(library).start()
    try:
        strict = sip_verifier(server.port, fee_limit_default=Decimal("100"))
        assert ask(strict, "L0004", "4444")[0].reason == "fees"          # 150 >= 100
        lenient = sip_verifier(server.port)                                # 200 default
        assert ask(lenient, "L0004", "4444")[0].outcome == patrons.ACCEPTED
        strict.close(), lenient.close()
    finally:
        server.stop()


def test_server_down_or_silent_or_garbled_is_unavailable():
    raw = RawServer([])
    port = raw.port
    raw.stop()
    assert ask(sip_verifier(port), "L0001", "1234")[0] == patrons.Verdict(
        patrons.UNAVAILABLE, reason="offline")
    silent = RawServer([None] * 10).start()
    assert ask(sip_verifier(silent.port), "L0001", "1234")[0].reason == "offline"
    garbled = RawServer([b"64nonsense\r"] * 3).start()
    verdict = ask(LibraryVerifier(LibraryClient(SipTransport(
        "127.0.0.1", garbled.port, tls=False, trusted_network=True, timeout_s=1),
        institution="X")), "L0001", "1234")[0]
    assert verdict == patrons.Verdict(patrons.UNAVAILABLE, reason="bad_answer")
    silent.stop(), garbled.stop()


def test_no_card_is_unavailable_without_asking():
    verifier = LibraryVerifier(client=None)
    assert ask(verifier, None, "1234")[0].reason == "no_card"


def test_fbs_patron_check(fbs_server, test_ca):
    verifier = LibraryVerifier(LibraryClient(fbs.FbsTransport(
        "127.0.0.1", "775100", port=fbs_server.port, ca_file=str(test_ca[0]), timeout_s=3,
        login="fbs-locker", password="fbs-secret"), institution="775100", fbs=True))
    accepted = ask(verifier, "L0001", "1234")[0]
    assert accepted.outcome == patrons.ACCEPTED
    assert accepted.holds == {"I1001", "I1002"}     # the item ids of FBS's %-parts
    assert ask(verifier, "L0003", "3333")[0].reason == "fees"
    fbs_server.mode = "error-input"
    assert ask(verifier, "L0001", "1234")[0].outcome == patrons.UNAVAILABLE
    verifier.close()


def reply(**kw):
    base = dict(code="64", flags=" " * 14, language="009", date="20260105    101500",
                valid_patron=True, valid_pin=True)
    base.update(kw)
    return replies.PatronInformation(**base)


def test_verdict_order_and_flags():
    assert verdict_for(reply(valid_patron=False, valid_pin=False)).outcome == patrons.UNKNOWN
    # a wrong PIN never reveals that the card is lost or owes fees
    assert verdict_for(reply(valid_pin=False, flags="    Y" + " " * 9)).outcome == \
        patrons.WRONG_PIN
    assert verdict_for(reply(valid_pin=None)).reason == "pin_not_checked"
    assert verdict_for(reply(flags=" " * 10 + "Y   ")).reason == "fees"
    assert verdict_for(reply(flags="Y" + " " * 13)).reason == "library"
    assert verdict_for(reply(fee_amount=Decimal("220"), fee_limit=Decimal("220.00"))
                       ).reason == "fees"
    assert verdict_for(reply(fee_amount=Decimal("219.99"), fee_limit=Decimal("220"))
                       ).outcome == patrons.ACCEPTED
    assert verdict_for(reply(fee_amount=Decimal("200"))).reason == "fees"


def test_the_holds_a_64_reports():
    plain, fbs_client = LibraryClient(None, institution="x"), \
        LibraryClient(None, institution="1", fbs=True)
    counts = (2, 0, 0, 0, 0, 0)
    assert plain.reported_holds(reply(counts=counts, hold_items=("I1", " I2 "))) == {"I1", "I2"}
    assert fbs_client.reported_holds(reply(counts=counts, hold_items=(
        "I1%20270101%20270115%Kongens Fald", "I2%%%"))) == {"I1", "I2"}
    # holds counted but not listed, or listed short of the count: not reported
    assert plain.reported_holds(reply(counts=counts)) is None
    assert plain.reported_holds(reply(counts=counts, hold_items=("I1",))) is None
    # no holds at all: reported, empty
    assert plain.reported_holds(reply(counts=(0,) * 6)) == frozenset()
    # a 24 reports no holds
    assert plain.reported_holds(replies.PatronStatus(
        code="24", flags=" " * 14, language="009", date="20260105    101500")) is None


def test_screen_messages_are_sanitised():
    r = reply(screen_messages=("Ring 010190-1234\x07 venligst", ""))
    assert screen_messages(r) == ["Ring [cpr removed] venligst"]


def test_the_locker_hands_the_card_to_the_verifier_and_forgets_it(tmp_path):
    """Through the domain: card read -> PIN -> verify(..., card=CardNumber)."""
    from bibbox.locker.domain import messages as msg
    from tests.domain_helpers import Rig
    rig = Rig(tmp_path)
    rig.start()
    rig.place("H1", "L0001", 1)
    seen = []

    class Recording:
        def verify(self, patron_hash, pin, done, *, card):
            seen.append((patron_hash, card))
            done(patrons.Verdict(patrons.WRONG_PIN))

    rig.locker.verifier = Recording()
    rig.controller.post(msg.CardRead(CardNumber.parse("L0001")))
    rig.controller.post(msg.PinEntered("1234"))
    rig.run()
    assert seen == [(rig.patron_hash("L0001"), "L0001")]
    assert isinstance(seen[0][1], CardNumber) and "L0001" not in repr(rig.locker.session)
    assert rig.locker.session.card == "L0001"     # kept for the next PIN after a wrong one
    rig.locker.verifier = type("Ok", (), {"verify": lambda self, h, p, done, *, card: done(
        patrons.Verdict(patrons.ACCEPTED))})()
    rig.controller.post(msg.PinEntered("1234"))
    rig.run()
    assert rig.locker.session.card is None         # answered: the card is dropped
