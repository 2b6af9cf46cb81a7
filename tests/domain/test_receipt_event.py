"""receipt.issued (issue 12, item 7): once per pickup, items with titles and
due dates, the patron by keyed hash and never a card number; valid against
docs/asyncapi.yaml."""

from __future__ import annotations

import json

from bibbox.central import wire
from tests.central_helpers import Contract
from tests.domain.test_door_left_open import open_alices_doors, rig  # noqa: F401
from tests.domain_helpers import ALICE_CARD


def receipts(rig):
    return [json.loads(wire.event(r, "test-1")) for r in rig.store.outbox_batch(limit=1000)
            if r["type"] == "receipt.issued"]


def test_one_receipt_event_when_the_doors_close(rig):
    open_alices_doors(rig)
    rig.door(1, False)
    assert receipts(rig) == []                     # door 3 still open
    rig.door(3, False)
    [event] = receipts(rig)
    Contract.load().validate("Event", event)
    data = event["data"]
    assert data["patron_hash"] == rig.patron_hash(ALICE_CARD)
    assert data["compartments"] == [1, 3]
    assert [(i["title"], bool(i["due"])) for i in data["items"]] == [("Kaffe", True),
                                                                    ("Te", True)]
    raw = json.dumps(event)
    assert ALICE_CARD not in raw and "0101901234" not in raw
    rig.card(ALICE_CARD)                           # reopen and close: no second receipt
    rig.fire_all()
    rig.door(1, True)
    rig.door(1, False)
    rig.advance(rig.cfg.timing.door_open_timeout_s + 1)
    assert len(receipts(rig)) == 1


def test_the_receipt_event_when_the_close_countdown_ends(rig):
    open_alices_doors(rig)
    rig.door(1, False)
    rig.advance(rig.cfg.timing.close_door_s + 1)
    [event] = receipts(rig)
    assert event["data"]["compartments"] == [1]
    assert [i["title"] for i in event["data"]["items"]] == ["Kaffe", "Te"]
    Contract.load().validate("Event", event)
