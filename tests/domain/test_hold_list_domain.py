"""The library system's hold list at pickup, in the domain (a verifier that
answers with ``Verdict.holds``): which holds open, and that the opening,
not the session, remembers which holds it granted."""

import json

from bibbox.locker.domain import patrons
from bibbox.locker.domain.identity import pseudonym
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, BOB_CARD, Rig


class Listing:
    """A verifier that accepts and reports ``holds`` as the patron's holds."""

    def __init__(self, holds):
        self.holds = holds

    def verify(self, patron_hash, pin, done, *, card=None):
        done(patrons.Verdict(patrons.ACCEPTED, default_due="2030-01-01", holds=self.holds))


def rig_with(tmp_path, listed, **kw):
    rig = Rig(tmp_path, **kw)
    rig.start()
    rig.locker.verifier = Listing(frozenset(listed))
    return rig


def opened(rig):
    return sorted(c["number"] for c in rig.kiosk["compartments"])


def test_a_hold_opens_only_when_every_item_is_listed(tmp_path):
    rig = rig_with(tmp_path, {"hb-0", "ha-0"})
    rig.place("hb", BOB_CARD, 2, titles=("X", "Y"))     # hb-0 and hb-1: one not listed
    rig.place("ha", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert opened(rig) == [1]
    assert rig.fire_all() == [1]


def test_a_listed_hold_of_another_card_opens_and_the_audit_names_both(tmp_path):
    rig = rig_with(tmp_path, {"hb-0"})
    rig.place("hb", BOB_CARD, 2)        # the library says: Alice's other card
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [2]
    rig.door(2, True)
    rig.door(2, False)
    assert [h.id for h in rig.locker.holds.values()] == []
    details = [r["detail"] for r in rig.store.audit_rows(action="collected")]
    assert details == [f"hold hb, loaded for {pseudonym(rig.patron_hash(BOB_CARD))}"]


def test_a_restart_with_the_door_open_collects_exactly_the_granted_holds(tmp_path):
    rig = rig_with(tmp_path, {"hb-0"})
    rig.place("hb", BOB_CARD, 2)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [2]
    rig.door(2, True)
    rig.store.close()
    again = Rig(tmp_path, clock=rig.clock)            # the daemon restarts, door open
    again.start(doors={1: "closed", 2: "open", 3: "closed", 4: "closed"})
    again.door(2, False)
    assert list(again.locker.holds) == []
    collected = [json.loads(p) for t, p in again.outbox() if t == "hold.collected"]
    assert [c["hold_id"] for c in collected] == ["hb"]


def test_a_list_naming_nothing_here_opens_the_cards_own_holds(tmp_path):
    rig = rig_with(tmp_path, set())
    rig.place("ha", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]


def test_openings_written_before_they_named_their_holds_still_read(tmp_path):
    """Schema 3 -> 4: an opening in flight across the upgrade reads with no
    holds (collection then falls back to the card's own holds)."""
    from bibbox.locker.store import sqlite
    from bibbox.locker.store.store import MIGRATIONS, Store
    path = tmp_path / "old.db"
    conn = sqlite.connect(str(path))
    sqlite.migrate(conn, MIGRATIONS[:3])
    conn.execute("INSERT INTO openings VALUES (2, 'pickup', 's1', 'p:abc', 'patron pickup', 1, 1)")
    conn.close()
    store = Store(path, clock=Rig(tmp_path).clock)
    [opening] = store.openings()
    assert (opening.compartment, opening.holds, opening.seen_open) == (2, (), True)
    store.close()
