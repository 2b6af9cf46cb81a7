"""The patron hash in the contract (docs/asyncapi.yaml, PatronHash) is the
one the locker computes: the documented recipe, implemented here on its own,
the locker's KeyedHasher and ``bibbox patrons hash`` agree on every vector."""

from __future__ import annotations

import hashlib
import hmac
import io
import pathlib
import re

import pytest
import yaml

from bibbox.daemon.cli import main
from bibbox.locker.domain.identity import CardNumber, KeyedHasher

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())[
    "components"]["schemas"]["PatronHash"]
VECTORS = SCHEMA["x-test-vectors"]


def documented_normalisation(card: str) -> str:
    """Step 1 of the contract, written from its text."""
    text = re.sub(r"\s", "", card).upper()
    if re.fullmatch(r"\d{6}-\d{4}", text):
        text = text.replace("-", "")
    assert re.fullmatch(r"[0-9A-Z-]{4,32}", text)
    return text


def documented_hash(key: bytes, normalised: str) -> str:
    """Step 3 of the contract, written from its text."""
    return hmac.new(key, b"card\x00" + normalised.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["card"].strip() for v in VECTORS])
def test_the_documented_recipe_the_code_and_the_vector_agree(vector):
    key = bytes.fromhex(vector["key_hex"])
    assert documented_normalisation(vector["card"]) == vector["normalised"]
    assert documented_hash(key, vector["normalised"]) == vector["hash"]
    card = CardNumber.parse(vector["card"])
    assert card.value == vector["normalised"]
    assert KeyedHasher(key).patron(card) == vector["hash"]


def test_bibbox_patrons_hash_prints_the_vectors(tmp_path, monkeypatch, capsys):
    key_file = tmp_path / "site-key"
    key_file.write_text(VECTORS[0]["key_hex"] + "\n")
    key_file.chmod(0o600)
    config = tmp_path / "c.toml"
    config.write_text(f'[locker]\nid = "t"\nstate_dir = "{tmp_path}/state"\n'
                      f'[secrets]\nsite_key_file = "{key_file}"\n'
                      '[[compartments]]\nnumber = 1\nsize = "S"\nrelay_pin = 5\ndoor_pin = 17\n')
    monkeypatch.delenv("BIBBOX_SITE_KEY", raising=False)
    monkeypatch.delenv("BIBBOX_SITE_KEY_FILE", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(
        "".join(v["card"] + "\n" for v in VECTORS) + "not a card!\n"))
    code = main(["patrons", "hash", "--config", str(config)])
    out = capsys.readouterr()
    assert out.out.split() == [v["hash"] for v in VECTORS]
    assert code == 1 and out.err.strip() == (
        f"line {len(VECTORS) + 1}: card number must be 4-32 letters or digits")
