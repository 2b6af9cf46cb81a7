"""Our codec against pysip2 (an independent SIP2 2.00 implementation):
every request we build decodes there, every reply it encodes parses here."""

import logging

import pysip2
import pytest

from bibbox.library import replies, sip2
from bibbox.locker.domain.errors import BibboxError
from bibbox.locker.domain.identity import CardNumber, Pin

D = "20260105    101500"


def theirs(data):
    return pysip2.decode_message(data, encoding="utf-8")


def test_requests_decode_in_pysip2_with_checksum():
    card, pin = CardNumber.parse("L0001"), Pin.parse("1234")
    cases = {
        sip2.login("u", "p", "LOC"): pysip2.LoginRequest,
        sip2.sc_status(): pysip2.SCStatusRequest,
        sip2.patron_status("DK-1", card, pin, "tp", date=D): pysip2.PatronStatusRequest,
        sip2.patron_information("DK-1", card, pin, summary="Y", date=D):
            pysip2.PatronInformationRequest,
        sip2.checkout("DK-1", card, "I1", no_block=True, date=D): pysip2.CheckoutRequest,
        sip2.checkin("DK-1", "I1", "BIBBOX1", date=D): pysip2.CheckinRequest,
        sip2.item_information("DK-1", "I1", date=D): pysip2.ItemInformationRequest,
    }
    for seq, (text, model) in enumerate(cases.items()):
        decoded = theirs(sip2.frame(text, seq))
        assert isinstance(decoded.message, model)
        assert decoded.sequence_number == seq and decoded.checksum
    m = theirs(sip2.frame(sip2.patron_status("DK-1", card, pin, date=D))).message
    assert (m.language, m.patron_identifier, m.patron_password) == ("009", "L0001", "1234")
    m = theirs(sip2.frame(sip2.checkout("DK-1", card, "I1", no_block=True, date=D))).message
    assert (m.no_block, m.transaction_date, m.item_identifier) == ("Y", D, "I1")
    assert isinstance(theirs(sip2.resend_frame()).message, pysip2.RequestACSResend)
    assert sip2.resend_frame() == b"97AZFEF5\r"


def ours(model, seq=None):
    data = pysip2.encode_message(model, encoding="utf-8", sequence_number=seq,
                                 checksum=seq is not None)
    return replies.parse(data)


def test_replies_encoded_by_pysip2_parse():
    r = ours(pysip2.LoginResponse(ok="1"), 3)
    assert isinstance(r, replies.LoginReply) and r.ok
    r = ours(pysip2.ACSStatusResponse(
        online_status="Y", checkin_ok="Y", checkout_ok="Y", acs_renewal_policy="N",
        status_update_ok="N", offline_ok="Y", timeout_period="030", retries_allowed="003",
        date_time_sync=D, protocol_version="2.00", institution_id="DK-1",
        supported_messages="YYYNYNYYNNYNNNNN"), 1)
    assert r.online and "patron information" in r.supported_messages()
    flags = " " * 4 + "Y" + " " * 6 + "Y" + "  "
    r = ours(pysip2.PatronStatusResponse(
        patron_status=flags, language="009", transaction_date=D, institution_id="DK-1",
        patron_identifier="L1", personal_name="A", valid_patron="Y",
        valid_patron_password="N", fee_amount="12.50", screen_message=("a", "b")))
    assert r.card_lost and r.excessive_fees and not r.charge_denied and not r.excessive_fines
    assert r.valid_pin is False and str(r.fee_amount) == "12.50"
    assert r.screen_messages == ("a", "b")
    r = ours(pysip2.PatronInformationResponse(
        patron_status=" " * 14, language="009", transaction_date=D, hold_items_count="0002",
        overdue_items_count="0000", charged_items_count="0001", fine_items_count="0000",
        recall_items_count="0000", unavailable_holds_count="0000", institution_id="DK-1",
        patron_identifier="L1", personal_name="A", fee_limit="220.00",
        hold_items=("I1", "I2"), charged_items=("I3",)), 7)
    assert r.counts == (2, 0, 1, 0, 0, 0) and r.hold_items == ("I1", "I2")
    assert str(r.fee_limit) == "220.00" and r.charged_items == ("I3",)
    r = ours(pysip2.CheckoutResponse(
        ok="1", renewal_ok="N", magnetic_media="U", desensitize="Y", transaction_date=D,
        institution_id="DK-1", patron_identifier="L1", item_identifier="I1",
        title_identifier="Kongens Fald", due_date="20260201"))
    assert r.ok and r.due_date == "20260201" and r.title == "Kongens Fald"
    r = ours(pysip2.CheckinResponse(
        ok="1", resensitize="Y", magnetic_media="N", alert="N", transaction_date=D,
        institution_id="DK-1", item_identifier="I1", permanent_location="Hoved",
        sort_bin="3"), 2)
    assert r.ok and r.permanent_location == "Hoved" and r.sort_bin == "3"
    r = ours(pysip2.ItemInformationResponse(
        circulation_status="08", security_marker="00", fee_type="01", transaction_date=D,
        hold_queue_length="1", hold_pickup_date=D, item_identifier="I1",
        title_identifier="Ærø"))
    assert r.circulation_status == "08" and r.hold_pickup_date == D and r.title == "Ærø"
    assert isinstance(ours(pysip2.RequestSCResend(), 0), replies.ResendRequest)


def test_checkin_extension_fields_and_unknown_and_repeated_fields():
    text = ("101YNN" + D + "AODK-1|ABI1|AQHoved|CYL0001|DAAnna|ZZfuture|ZZagain|"
            "AFone|AFtwo|")
    r = replies.parse(sip2.frame(text, 4))
    assert r.hold_patron == "L0001" and r.hold_patron_name == "Anna"
    assert r.extra == {"ZZ": ["future", "again"]} and r.screen_messages == ("one", "two")
    assert "L0001" not in repr(r) and "Anna" not in repr(r)


@pytest.mark.parametrize("data, reason", [
    (b"", "no message code"),
    (b"garbage\r", "no message code"),
    (b"9\r", "no message code"),
    (b"942\r", "ok must be 0 or 1"),
    (b"24" + b" " * 14 + b"009" + D.encode()[:10] + b"\r", "truncated"),
    (b"24" + b"X" * 14 + b"009" + D.encode() + b"AOx|\r", "patron status"),
    (b"12" + b"1NNN" + b"2026-01-05    10150" + b"AO|\r", "transaction date"),
    (b"94" + b"1" + b"AO" + b"x" * 9000 + b"\r", "longer than"),
    (b"941|x|\r", "identifier"),
    (b"24" + b" " * 14 + b"009" + D.encode() + b"BVlots|\r", "fee amount"),
    (b"94\xff\xfe\r", "not valid text"),
])
def test_bad_replies_raise_precise_errors(data, reason):
    with pytest.raises(sip2.ReplyError) as info:
        replies.parse(data)
    assert reason in str(info.value)
    assert isinstance(info.value, BibboxError) and isinstance(info.value, ValueError)


def test_checksum_and_wrong_type():
    good = sip2.frame("941", 1)
    assert replies.parse(good, expect="94").ok
    bad = good[:-5] + (b"0000" if good[-5:-1] != b"0000" else b"0001") + b"\r"
    with pytest.raises(sip2.ChecksumError):
        replies.parse(bad)
    with pytest.raises(sip2.WrongReplyType) as info:
        replies.parse(good, expect="24")
    assert info.value.expected == "24"
    with pytest.raises(sip2.ReplyError):
        replies.parse(b"11YN" + D.encode() + b"\r")       # a request, not a reply
    assert isinstance(replies.parse(sip2.resend_frame().replace(b"97", b"96", 1)[:2]
                                    + b"\r", expect="24"), replies.ResendRequest)


def test_redact_hides_every_personal_field():
    card = "0101901234"
    text = (f"64              009{D}000000000000000000000000AODK-1|AA{card}|AEAnna Andersen|"
            f"ACterm|AD1234|CY{card}|DAAnna|CNuser|COpw|BDStreet 1|BEa@b.dk|BF12345678|"
            "AJKongens Fald|")
    out = sip2.redact(sip2.frame(text, 1))
    for secret in (card, "Anna", "term", "1234", "user", "pw", "Street", "a@b.dk",
                   "12345678"):
        assert secret not in out
    assert "AJKongens Fald" in out and "AODK-1" in out
    assert card not in sip2.redact("garbled 010190-1234 tail")     # CPR-shaped anywhere


def test_a_logged_bad_reply_is_redacted(caplog):
    from bibbox.library.transport import log
    caplog.set_level(logging.DEBUG, logger=log.name)
    log.warning("x %s", sip2.redact(b"24XXAAL0001|AD1234|\r"))
    assert "L0001" not in caplog.text and "1234" not in caplog.text
