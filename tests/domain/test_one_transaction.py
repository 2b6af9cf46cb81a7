"""One store transaction per use case: a use case that changes a hold and
opens a door writes both in one unit, so a refused write leaves neither."""

import pytest

from bibbox.locker.domain.errors import StoreError
from bibbox.locker.domain.model import HoldState
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig


class RefusedOpening:
    """Makes ``Unit.put_opening`` fail as a full disk would, while set."""

    def __init__(self, monkeypatch):
        from bibbox.locker.store import store as store_mod
        self.refuse = False
        original = store_mod.Unit.put_opening

        def put_opening(unit, opening):
            if self.refuse:
                raise StoreError("cannot write to the database: database or disk is full")
            return original(unit, opening)

        monkeypatch.setattr(store_mod.Unit, "put_opening", put_opening)


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    r.start()
    r.add_patron(ALICE_CARD, ALICE_PIN)
    return r


def announce(rig, hold_id="C-1"):
    rig.controller.call(lambda l: l.announce_hold(
        hold_id, rig.patron_hash(ALICE_CARD), [{"barcode": "B1", "title": "Bog"}]))


def test_a_refused_opening_write_leaves_an_announced_hold_waiting(rig, tmp_path, monkeypatch):
    failing = RefusedOpening(monkeypatch)
    announce(rig)
    failing.refuse = True
    with pytest.raises(StoreError):
        rig.controller.call(lambda l: l.load_hold("anna", hold_id="C-1"))
    assert rig.store.hold("C-1").state is HoldState.ANNOUNCED
    assert rig.locker.holds["C-1"].state is HoldState.ANNOUNCED
    assert rig.locker.openings == {} and rig.relays.pulses == []
    failing.refuse = False
    rig.store.close()
    again = Rig(tmp_path, clock=rig.clock)      # a restart keeps nothing half-done
    again.start()
    assert again.locker.holds["C-1"].state is HoldState.ANNOUNCED
    result = again.controller.call(lambda l: l.cancel_hold("C-1", "anna"))
    assert result["changed"] is True             # not refused as busy


def test_a_refused_opening_write_stores_no_new_hold(rig, monkeypatch):
    failing = RefusedOpening(monkeypatch)
    failing.refuse = True
    with pytest.raises(StoreError):
        rig.controller.call(lambda l: l.load_hold(
            "anna", hold_id="N-1", patron_hash=rig.patron_hash(ALICE_CARD),
            items=[{"barcode": "B2"}]))
    assert rig.store.hold("N-1") is None and "N-1" not in rig.locker.holds
    assert rig.relays.pulses == []


def test_a_refused_hold_write_after_a_loading_jam_keeps_the_hold_loadable(rig, tmp_path,
                                                                          monkeypatch):
    """A loading door that never opened: the opening is dropped and the hold
    goes back to waiting in one unit; refused, both stay as they were."""
    from bibbox.locker.store import store as store_mod
    announce(rig)
    first = rig.controller.call(lambda l: l.load_hold("anna", hold_id="C-1"))
    rig.fire_all()
    original = store_mod.Unit.put_hold
    refuse = {"on": True}

    def put_hold(unit, hold):
        if refuse["on"]:
            raise StoreError("cannot write to the database: database or disk is full")
        return original(unit, hold)

    monkeypatch.setattr(store_mod.Unit, "put_hold", put_hold)
    rig.advance(rig.cfg.timing.door_open_timeout_s + 0.5)     # jammed; the write refused
    refuse["on"] = False
    stored = [o.compartment for o in rig.store.openings()]
    state = rig.store.hold("C-1").state
    assert (state, stored) in [(HoldState.LOADING, [first["compartment"]]),
                               (HoldState.ANNOUNCED, [])]
    rig.store.close()
    again = Rig(tmp_path, clock=rig.clock)
    again.start()
    assert again.locker.holds["C-1"].state is HoldState.ANNOUNCED
    assert again.controller.call(lambda l: l.cancel_hold("C-1", "anna"))["changed"]
