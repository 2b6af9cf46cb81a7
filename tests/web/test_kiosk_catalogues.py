"""The kiosk's language catalogues (web/static/i18n/<code>.json).

Every language has every text the page uses, with the same placeholders, and
no catalogue has a text that no one uses.  "Used" is read from the page's own
sources: a key named in kiosk.js or kiosk.html, or ``group.code`` where the
page looks texts up by ``group`` and lists ``code`` among the codes it knows.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from bibbox.locker.domain import config as config_mod
from bibbox.web.app import create_app
from tests.domain_helpers import Rig

WEB = pathlib.Path(__file__).resolve().parents[2] / "web"
CATALOGUES = WEB / "static" / "i18n"
PLURAL = re.compile(r"_(zero|one|two|few|many|other)$")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
GROUPS = ("denied_title", "denied_help", "door", "notice")


def load(code):
    return json.loads((CATALOGUES / f"{code}.json").read_text(encoding="utf-8"))


def codes():
    return sorted(p.stem for p in CATALOGUES.glob("*.json"))


def texts(catalogue):
    """``{base key: {variant key: text}}`` without the ``_`` description keys."""
    out = {}
    for key, value in catalogue.items():
        if not key.startswith("_"):
            out.setdefault(PLURAL.sub("", key), {})[key] = value
    return out


def used_keys():
    source = (WEB / "static" / "kiosk.js").read_text(encoding="utf-8") + \
        (WEB / "templates" / "kiosk.html").read_text(encoding="utf-8")
    literals = set(re.findall(r'"([a-z_.]+)"', source))          # "key" and data-i18n="key"
    literals |= set(re.findall(r"\b([a-z_]+): true\b", source))  # { wrong_pin: true, ... }
    return literals


def test_the_six_languages_are_there_and_describe_themselves():
    assert set(codes()) >= {"da", "en", "de", "pl", "uk", "ar"}
    assert set(config_mod.LANGUAGES) <= set(codes())
    for code in codes():
        catalogue = load(code)
        assert catalogue["_name"] and catalogue["_dir"] in ("ltr", "rtl"), code
    assert load("ar")["_dir"] == "rtl"
    assert load("da")["_name"] == "Dansk" and load("uk")["_name"] == "Українська"


@pytest.mark.parametrize("code", codes())
def test_every_language_has_every_text_with_the_same_placeholders(code):
    danish, other = texts(load("da")), texts(load(code))
    assert sorted(set(danish) - set(other)) == [], f"{code} misses these texts"
    assert sorted(set(other) - set(danish)) == [], f"{code} has texts Danish lacks"
    for base, variants in other.items():
        if len(variants) > 1 or base not in variants:
            assert base + "_other" in variants, f"{code}: {base} needs an _other form"
        want = set().union(*(set(PLACEHOLDER.findall(t)) for t in danish[base].values()))
        for key, text in variants.items():
            assert isinstance(text, str) and text.strip(), f"{code}: {key} is empty"
            assert "<" not in text, f"{code}: {key} holds markup"
            got = set(PLACEHOLDER.findall(text))
            # a plural form may spell its number out ("one minute"), never add one
            assert got <= want and (got == want or PLURAL.search(key)), (code, key, got)


def test_no_catalogue_has_a_text_no_one_uses():
    literals = used_keys()
    unused = []
    for base in texts(load("da")):
        group, _, code = base.partition(".")
        if code:
            used = bool({group, group + "."} & literals) and code in literals
        else:
            used = base in literals
        if not used:
            unused.append(base)
    assert unused == [], unused


def test_a_missing_text_fails_the_check(tmp_path):
    """The check above is not vacuous: a catalogue without a key differs."""
    danish = texts(load("da"))
    broken = dict(load("de"))
    del broken["idle_title"]
    assert set(danish) - set(texts(broken)) == {"idle_title"}


def test_arabic_by_default_is_right_to_left(tmp_path):
    rig = Rig(tmp_path, locker={"language": "ar"})
    rig.start()
    app = create_app(controller=rig.controller, cfg=rig.cfg, parts=("kiosk",))
    html = app.test_client().get("/").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html
    for name in ("Dansk", "English", "Deutsch", "Polski", "Українська", "العربية"):
        assert f">{name}</button>" in html


def test_help_texts_are_free_text_without_cpr_numbers():
    base = {"locker": {"id": "t"}, "compartments": [
        {"number": 1, "size": "M", "relay_pin": 5, "door_pin": 6}]}
    cfg = config_mod.parse({**base, "locker": {"id": "t", "help_phone": "33 12 34 56",
                                               "help_hours": "Man-fre 10-19"}})
    assert cfg.locker.help_phone == "33 12 34 56"
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.parse({**base, "locker": {"id": "t", "help_phone": "010170-9999"}})
    assert "locker.help_phone" in str(err.value) and "010170" not in str(err.value)
