"""Staff open a door for a patron on the phone, the patron takes the items,
and staff mark the holds collected (issue 12, item 6): the holds leave the
locker, a hold.collected event says staff verified it, and the audit log
keeps who and the reason as typed."""

import json

import pytest

from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.model import HoldState
from tests.domain_helpers import ALICE_CARD, Rig


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    r.start()
    r.add_patron(ALICE_CARD, "1234")
    return r


def mark(rig, number, reason, actor="anna"):
    return rig.controller.call(lambda l: l.mark_collected(number, actor, reason))


def test_marking_the_holds_of_a_door_opened_for_a_patron_collected(rig):
    rig.place("h1", ALICE_CARD, 2)
    rig.controller.call(lambda l: l.open_compartment(2, "anna", "patron on the phone", "staff"))
    rig.fire_all()
    rig.door(2, True)
    with pytest.raises(CommandError, match="close door"):
        mark(rig, 2, "patron on the phone")
    rig.door(2, False)
    with pytest.raises(CommandError, match="reason"):
        mark(rig, 2, "   ")
    assert mark(rig, 2, "Låneren ringede") == ["h1"]
    assert rig.store.hold("h1").state is HoldState.COLLECTED
    assert rig.state["compartments"][1]["state"] == "free"
    collected = [json.loads(payload) for kind, payload in rig.outbox()
                 if kind == "hold.collected"]
    data = collected[-1].get("data", collected[-1])
    assert (data["hold_id"], data["verified_by"], data["loans"]) == ("h1", "staff", "none")
    row = [r for r in rig.store.audit_rows() if r["action"] == "collected_by_staff"][-1]
    assert (row["actor"], row["compartment"], row["reason"]) == ("anna", 2, "Låneren ringede")
    assert row["patron"].startswith("P-")
    with pytest.raises(CommandError, match="nothing ready"):
        mark(rig, 2, "again")
