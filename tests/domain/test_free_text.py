"""The one free-text sanitiser: CPR-shaped text refused or masked, the rest tidied."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.free_text import (MASK, MASK_IT, REFUSE, CprInText, clean,
                                            contains_cpr)

CPR_FORMS = ["0101709999", "010170-9999", "010170 9999"]


@pytest.mark.parametrize("cpr", CPR_FORMS)
def test_staff_text_with_a_cpr_number_is_refused_naming_the_field(cpr):
    with pytest.raises(CprInText) as raised:
        clean(f"patron {cpr} on the phone", "reason", policy=REFUSE)
    assert raised.value.code == "cpr_in_text" and "reason" in str(raised.value)
    assert cpr not in str(raised.value)
    assert isinstance(raised.value, CommandError) and isinstance(raised.value, ValueError)


@pytest.mark.parametrize("cpr", CPR_FORMS)
def test_text_from_another_system_is_masked(cpr):
    assert clean(f"låner {cpr} ringede", "reason", policy=MASK_IT) == f"låner {MASK} ringede"


@pytest.mark.parametrize("text", ["ISBN 9788702173550", "rum 12 klemmer", "tlf 12345678",
                                  "01017099991", "BIB0004711", "kl. 10-16"])
def test_other_numbers_are_not_cpr_shaped(text):
    assert not contains_cpr(text)
    assert clean(text, "reason", policy=REFUSE) == text


def test_control_characters_line_breaks_and_spaces_are_tidied():
    assert clean("  door\r\n stuck\x00\x1b[31m  again\u2028 ", "reason", policy=REFUSE) == \
        "door stuck [31m again"


def test_lengths_and_types():
    with pytest.raises(CommandError, match="reason must be text of 1-10"):
        clean("x" * 11, "reason", policy=REFUSE, max_len=10)
    with pytest.raises(CommandError, match="reason must be text of 1-200"):
        clean("   ", "reason", policy=REFUSE)
    with pytest.raises(CommandError, match="reason must be text"):
        clean(["a"], "reason", policy=REFUSE)
    assert clean(None, "reason", policy=REFUSE, required=False) == ""


@given(st.text(max_size=300))
def test_nothing_cpr_shaped_survives_masking(text):
    try:
        out = clean(text, "reason", policy=MASK_IT, max_len=10_000, required=False)
    except CommandError:
        return
    assert not contains_cpr(out)


@given(st.integers(0, 9_999_999_999), st.text(max_size=20), st.text(max_size=20))
def test_every_ten_digit_number_in_any_text_is_caught(number, before, after):
    digits = f"{number:010d}"
    text = f"{before} {digits} {after}"
    assert contains_cpr(text)
    out = clean(text, "reason", policy=MASK_IT, max_len=10_000, required=False)
    assert digits not in out
