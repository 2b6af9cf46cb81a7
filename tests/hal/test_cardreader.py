"""Framings of hal.cardreader: bytes in, card numbers and drop reasons out."""

import functools
import re

import pytest
from hypothesis import given, settings, strategies as st

from bibbox.hal.cardreader import (
    FRAMINGS, REASONS, BarcodeFraming, MagstripeFraming, Rdm6300Framing,
    make_framing)
from bibbox.locker.domain.errors import ConfigError
from bibbox.locker.domain.identity import CardNumber

CPR = "0101901234"


# -- frame builders (independent of the code under test) ---------------------

def rdm_frame(hex10, checksum_ok=True):
    xor = functools.reduce(lambda a, b: a ^ b, bytes.fromhex(hex10))
    if not checksum_ok:
        xor ^= 0x5A
    return b"\x02" + hex10.encode() + b"%02X" % xor + b"\x03"


def track2(cpr=CPR, nationality="208", more="=2512", lrc=False):
    content = f"1{nationality}1123{cpr}{more}".encode()
    frame = b";" + content + b"?"
    if lrc:
        value = functools.reduce(lambda a, b: a ^ (b & 0x0F), frame, 0)
        frame += bytes([0x30 | value])
    return frame


def values(cards):
    return [card.value for card in cards]


def feed_all(framing, *chunks, now=0.0):
    cards = []
    for chunk in chunks:
        cards += framing.feed(chunk, now)
    return values(cards), framing.take_garbled()


# -- barcode -----------------------------------------------------------------

@pytest.mark.parametrize("suffix", [b"\r", b"\n", b"\r\n", b"\x03", b"END", "\r"])
def test_barcode_reads_a_line_with_each_suffix(suffix):
    end = suffix.encode() if isinstance(suffix, str) else suffix
    framing = BarcodeFraming(suffix=suffix)
    assert feed_all(framing, b"ab12-34" + end, b"5678" + end) == (["AB12-34", "5678"], [])


@pytest.mark.parametrize("suffix", [b"\r", b"\n"])
def test_barcode_crlf_scanner_with_either_single_suffix(suffix):
    framing = BarcodeFraming(suffix=suffix)
    assert feed_all(framing, b"1234\r\n5678\r\n\r\n") == (["1234", "5678"], [])


def test_barcode_strips_aim_id_and_prefix_and_resyncs_on_prefix():
    framing = BarcodeFraming(prefix=b"\x1b")
    assert feed_all(framing, b"]C0ABCD1234\r", b"\x1b]e0A1B2C3\r",
                    b"noise\x1bWXYZ\r", b"NOPREFIX\r") == (
        ["ABCD1234", "A1B2C3", "WXYZ", "NOPREFIX"], [])


def test_barcode_keeps_aim_like_text_when_told_not_to_strip():
    framing = BarcodeFraming(strip_aim=False)
    assert feed_all(framing, b"]C01234\r") == ([], ["garbled"])


def test_barcode_cpr_with_dash_is_normalised():
    assert feed_all(BarcodeFraming(), b"010190-1234\r") == ([CPR], [])


@pytest.mark.parametrize("line", [b"\x1b", b"]C0", b"12\x003", b"\xff\xfe1234",
                                  b"ab", b"1" * 40])
def test_barcode_empty_or_unparseable_line_is_garbled(line):
    framing = BarcodeFraming(prefix=b"\x1b")
    assert feed_all(framing, line + b"\r") == ([], ["garbled"])


def test_barcode_overlong_line_is_dropped_up_to_its_end():
    framing = BarcodeFraming(max_len=8)
    assert feed_all(framing, b"12345678\r") == (["12345678"], [])
    assert feed_all(framing, b"123456789ABCDEFGHIJ\r", b"ABCD\r") == (["ABCD"], ["too long"])
    framing = BarcodeFraming(prefix=b"##", max_len=8)
    assert feed_all(framing, b"123456789AB#", b"#WXYZ\r") == (["WXYZ"], ["too long"])


def test_barcode_partial_line_is_dropped_after_a_pause():
    framing = BarcodeFraming(inter_char_timeout_s=0.3)
    assert framing.feed(b"1234", 10.0) == []
    assert values(framing.feed(b"5678\r", 10.5)) == ["5678"]
    assert framing.take_garbled() == ["timeout"]
    assert values(framing.feed(b"12", 11.0) + framing.feed(b"34\r", 11.2)) == ["1234"]


def test_idle_tick_reports_the_timeout_and_a_lone_lf_is_no_partial_frame():
    framing = BarcodeFraming()
    framing.feed(b"1234\r\n", 0.0)
    framing.feed(b"", 5.0)
    assert framing.take_garbled() == []
    framing.feed(b"12", 6.0)
    framing.feed(b"", 7.0)
    assert framing.take_garbled() == ["timeout"]


def test_reset_forgets_partial_frame_and_reasons():
    framing = Rdm6300Framing()
    framing.feed(b"\x02" + b"1" * 20, 0.0)
    framing.feed(b"\x0212", 0.0)
    framing.reset()
    assert framing.take_garbled() == []
    assert feed_all(framing, b"3456789012\x03") == ([], [])


# -- magstripe ---------------------------------------------------------------

def test_magstripe_returns_the_cpr():
    assert feed_all(MagstripeFraming(), track2()) == ([CPR], [])


def test_magstripe_skips_an_lrc_even_when_it_is_the_start_sentinel():
    for more in (f"={n:04}" for n in range(100)):
        frame = track2(more=more, lrc=True)
        if frame.endswith(b";"):
            break
    else:
        pytest.fail("no frame with LRC ';' found")
    framing = MagstripeFraming()
    assert feed_all(framing, frame + track2(), track2(lrc=True) + track2()) == ([CPR] * 4, [])


@pytest.mark.parametrize("frame", [
    track2(cpr="01019O1234"), track2(cpr="0101 01234"), track2(nationality="752"),
    b";1208112301019?", b";?"])
def test_bad_magstripe_is_garbled(frame):
    assert feed_all(MagstripeFraming(), frame) == ([], ["garbled"])


def test_magstripe_resyncs_on_start_sentinel_and_caps_length():
    framing = MagstripeFraming()
    assert feed_all(framing, b"xx?;12", track2()) == ([CPR], ["garbled"])
    assert feed_all(framing, b";" + b"1" * 41 + b"?", track2()) == ([CPR], ["too long"])


def test_magstripe_partial_frame_times_out():
    framing = MagstripeFraming(inter_char_timeout_s=0.2)
    frame = track2()
    assert framing.feed(frame[:12], 1.0) == []
    assert framing.feed(frame[12:], 2.0) == []
    assert framing.take_garbled() == ["timeout"]


# -- RDM6300 -----------------------------------------------------------------

def test_rdm6300_reads_upper_cased_hex():
    framing = Rdm6300Framing()
    assert feed_all(framing, rdm_frame("0a1b2c3d4e"), rdm_frame(CPR)) == (
        ["0A1B2C3D4E", CPR], [])


def test_rdm6300_bad_checksum_gives_no_card():
    assert feed_all(Rdm6300Framing(), rdm_frame("0A1B2C3D4E", checksum_ok=False)) == (
        [], ["checksum"])


def test_rdm6300_resyncs_after_noise_and_cut_frames():
    frame = rdm_frame("1122334455")
    assert feed_all(Rdm6300Framing(), b"\x03\xffjunk" + frame[:7] + frame) == (
        ["1122334455"], ["garbled"])


@pytest.mark.parametrize("body", [b"11223344", b"1122 3344556", b"11223344GG00"])
def test_rdm6300_malformed_body_is_garbled(body):
    assert feed_all(Rdm6300Framing(), b"\x02" + body + b"\x03") == ([], ["garbled"])


def test_rdm6300_overlong_frame_is_dropped():
    frame = rdm_frame("1122334455")
    assert feed_all(Rdm6300Framing(), frame[:-1] + b"00\x03" + frame) == (
        ["1122334455"], ["too long"])


def test_rdm6300_partial_frame_times_out():
    framing = Rdm6300Framing(inter_char_timeout_s=0.3)
    frame = rdm_frame("1122334455")
    framing.feed(frame[:5], 0.0)
    assert values(framing.feed(frame[5:], 0.4)) == []  # the tail is noise now
    assert framing.take_garbled() == ["timeout"]
    assert values(framing.feed(frame, 0.5)) == ["1122334455"]


# -- make_framing ------------------------------------------------------------

def test_make_framing_knows_every_kind_and_passes_options():
    assert FRAMINGS == ("barcode", "magstripe", "rdm6300")
    for kind in FRAMINGS:
        assert make_framing(kind, inter_char_timeout_s=0.5).inter_char_timeout_s == 0.5
    barcode = make_framing("barcode", suffix="\n", prefix="", strip_aim=False)
    assert feed_all(barcode, b"1234\n") == (["1234"], [])


def test_make_framing_rejects_unknown_kind_and_options():
    with pytest.raises(ValueError, match="barcode, magstripe, rdm6300") as caught:
        make_framing("wiegand")
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(ConfigError, match="suffix"):
        make_framing("rdm6300", suffix="\r")
    with pytest.raises(ConfigError):
        make_framing("barcode", suffix="")


# -- properties --------------------------------------------------------------

hex10 = st.text("0123456789ABCDEFabcdef", min_size=10, max_size=10)
cprs = st.text("0123456789", min_size=10, max_size=10)
barcode_data = st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz", min_size=4, max_size=32)


def noise_without(*excluded):
    return st.binary(max_size=80).map(
        lambda b: bytes(x for x in b if x not in excluded))


@st.composite
def rdm_case(draw):
    card = draw(hex10)
    return Rdm6300Framing(), rdm_frame(card), card.upper(), noise_without(0x02)


@st.composite
def magstripe_case(draw):
    cpr = draw(cprs)
    more = draw(st.text("0123456789=", max_size=15))
    frame = track2(cpr=cpr, more=more, lrc=draw(st.booleans()))
    return MagstripeFraming(), frame, cpr, noise_without(ord(";"))


@st.composite
def barcode_case(draw):
    data = draw(barcode_data)
    aim = draw(st.sampled_from([b"", b"]C0", b"]Q3"]))
    frame = b"\x1b" + aim + data.encode() + b"\r\n"
    return (BarcodeFraming(prefix=b"\x1b", suffix=b"\r\n"), frame,
            CardNumber.parse(data).value, noise_without(0x1b, 0x0d, 0x0a))


cases = st.one_of(rdm_case(), magstripe_case(), barcode_case())


@settings(max_examples=300)
@given(cases, st.data())
def test_a_frame_between_noise_is_found_exactly_once(case, data):
    framing, frame, card, noise = case
    stream = data.draw(noise) + frame + data.draw(noise)
    assert values(framing.feed(stream, 0.0)) == [card]


FRAMING_MAKERS = {kind: functools.partial(make_framing, kind) for kind in FRAMINGS}
FRAMING_MAKERS["barcode with prefix"] = functools.partial(
    BarcodeFraming, prefix=b"\x02", suffix=b"\x03", max_len=20)

WELL_FORMED = {
    "barcode": re.compile(r"[0-9A-Z-]{4,32}"),
    "barcode with prefix": re.compile(r"[0-9A-Z-]{4,32}"),
    "magstripe": re.compile(r"[0-9]{10}"),
    "rdm6300": re.compile(r"[0-9A-F]{10}"),
}

segments = st.lists(st.one_of(
    st.binary(max_size=40),
    hex10.map(rdm_frame),
    cprs.map(lambda cpr: track2(cpr=cpr)),
    barcode_data.map(lambda d: d.encode() + b"\r"),
    st.sampled_from([b"\x02", b"\x03", b";", b"?", b"\r", b"\n", b"]C0"])),
    max_size=12).map(b"".join)


@settings(max_examples=300)
@given(st.sampled_from(sorted(FRAMING_MAKERS)), segments,
       st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_any_bytes_never_raise_nor_yield_malformed_cards(kind, stream, gaps):
    framing = FRAMING_MAKERS[kind]()
    now, cards, reasons = 0.0, [], []
    for i, gap in enumerate(gaps):
        now += gap
        cards += framing.feed(stream[i::len(gaps)], now)
        reasons += framing.take_garbled()
    for card in cards:
        assert isinstance(card, CardNumber)
        assert CardNumber.parse(card.value) == card
        assert WELL_FORMED[kind].fullmatch(card.value)
    assert set(reasons) <= set(REASONS)


@settings(max_examples=300)
@given(st.sampled_from(sorted(FRAMING_MAKERS)), segments,
       st.lists(st.integers(0, 400), max_size=10))
def test_chunk_boundaries_do_not_matter(kind, stream, cuts):
    whole = FRAMING_MAKERS[kind]()
    expected = (values(whole.feed(stream, 0.0)), whole.take_garbled())
    cuts = sorted(set(cut % (len(stream) + 1) for cut in cuts))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    assert feed_all(FRAMING_MAKERS[kind](), *chunks) == expected
