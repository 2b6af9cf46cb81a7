"""The staff page's texts (web/static/staff.i18n.json): every key in Danish
and in English, none empty, and the same {placeholders} in both, so no
page falls back to a key or loses a number in one language."""

import re

from bibbox.web.staff.common import STRINGS


def test_danish_and_english_have_the_same_texts():
    assert set(STRINGS) == {"da", "en"}
    assert set(STRINGS["da"]) == set(STRINGS["en"]), \
        set(STRINGS["da"]) ^ set(STRINGS["en"])
    for key, danish in STRINGS["da"].items():
        english = STRINGS["en"][key]
        assert danish.strip() and english.strip(), key
        assert set(re.findall(r"\{(\w+)\}", danish)) == set(re.findall(r"\{(\w+)\}", english)), key
