"""Loans on collection, check-ins on unloading, and the loan queue, against
the test library system (pysip2) -- never a mock of our own client."""

import json

import pytest

from bibbox.locker.domain.model import Hold, HoldState, Item
from tests.library.acs import Library, SipServer
from tests.library.loan_rig import LibraryRig


@pytest.fixture
def rig(tmp_path, sip_server):
    rig = LibraryRig(tmp_path, sip_server.port)
    rig.start()
    rig.start_worker()
    yield rig
    rig.close()


def place(rig, hold_id, card, compartment, items, *, state=HoldState.READY, days=7):
    hold = Hold(id=hold_id, patron_hash=rig.patron_hash(card),
                items=tuple(Item(barcode, title) for barcode, title in items),
                pickup_number="4711", deadline=rig.clock.wall() + days * 86400,
                state=state, compartment=compartment)
    return rig.locker.place_hold(hold)


def events(rig, type_):
    return [json.loads(p) for t, p in rig.outbox() if t == type_]


def db_bytes(path):
    """The database and its WAL, as bytes (what a stolen SD card holds)."""
    out = b""
    for suffix in ("", "-wal"):
        try:
            out += (path.parent / (path.name + suffix)).read_bytes()
        except FileNotFoundError:
            pass
    return out


def test_collection_lends_each_item_with_its_due_date(rig, library):
    place(rig, "H1", "L0001", 1, [("I1001", "Kongens Fald"), ("I1002", "Fra Piazza")])
    rig.collect("L0001", "1234", 1)
    collected = events(rig, "hold.collected")
    assert collected[0]["loans"] == "queued"
    made = rig.until(lambda: len(events(rig, "loan.made")) == 2 and events(rig, "loan.made"),
                     "both loans made")
    assert [(e["item"], e["due"]) for e in made] == [("I1001", "2027-02-01"),
                                                      ("I1002", "2027-02-01")]
    assert library.loans == {"I1001": "L0001", "I1002": "L0001"}
    assert rig.loans_waiting() == 0
    # the receipt on the screen shows the due dates
    assert {i["barcode"]: i["due"] for i in rig.kiosk["items"]} == {
        "I1001": "2027-02-01", "I1002": "2027-02-01"}
    # a loan made online goes without the no-block flag, with its own date
    assert [(item, no_block) for item, _, no_block, _ in library.checkouts] == [
        ("I1001", False), ("I1002", False)]


def test_the_sealed_identity_rests_sealed_and_goes_with_the_acknowledgement(
        tmp_path, sip_server, library):
    rig = LibraryRig(tmp_path, sip_server.port)     # the worker not started yet
    try:
        rig.start()
        place(rig, "H1", "0101901234", 1, [("I1004", "Ærø rundt")])
        rig.collect("0101901234", "5555", 1)
        row = rig.store.conn.execute("SELECT * FROM loans").fetchone()
        assert row["sealed"] and b"0101901234" not in row["sealed"]
        assert rig.unsealer.unseal(row["sealed"]).value == "0101901234"
        assert b"0101901234" not in db_bytes(tmp_path / "bibbox.db")
        rig.start_worker()
        rig.until(lambda: events(rig, "loan.made"), "the loan")
        assert rig.store.conn.execute("SELECT count(*) FROM loans").fetchone()[0] == 0
        assert library.loans == {"I1004": "0101901234"}
    finally:
        rig.close()


def test_a_refused_checkout_is_an_event_and_a_staff_alarm(rig, library):
    # I1003 is on hold for another patron: the library system refuses
    place(rig, "H1", "L0001", 1, [("I1003", "Den Kroniske Uskyld")])
    rig.collect("L0001", "1234", 1)
    failed = rig.until(lambda: events(rig, "loan.failed"), "the refusal")
    assert failed[0]["reason"] == "refused" and failed[0]["item"] == "I1003"
    assert failed[0]["message"] == "Materialet er reserveret til en anden"
    assert {"alarm": "loan_failed", "compartment": None} in rig.state["alarms"]
    assert rig.loans_waiting() == 0 and library.loans == {}


def test_loans_drain_in_order_after_an_outage(tmp_path):
    library = Library()
    server = SipServer(library).start()
    port = server.port
    rig = LibraryRig(tmp_path, port)
    try:
        rig.start()
        place(rig, "H1", "L0001", 1, [("I1001", "a"), ("I1002", "b")])
        place(rig, "H2", "L0004", 2, [("I2000", "c")])
        rig.collect("L0001", "1234", 1)
        rig.collect("L0004", "4444", 2)
        server.stop()                          # the library system goes away
        rig.start_worker()
        rig.until(lambda: rig.kiosk["library_online"] is False, "offline seen")
        assert events(rig, "library.status") == [{"online": False}]
        assert rig.loans_waiting() == 3 and library.loans == {}
        server = SipServer(library, port=port).start()   # and comes back
        rig.until(lambda: len(events(rig, "loan.made")) == 3, "the drain")
        assert [c[0] for c in library.checkouts] == ["I1001", "I1002", "I2000"]
        assert all(no_block for _, _, no_block, _ in library.checkouts)  # sent after failing
        assert library.loans == {"I1001": "L0001", "I1002": "L0001", "I2000": "L0004"}
        assert rig.loans_waiting() == 0
        assert rig.kiosk["library_online"] is True
        assert events(rig, "library.status")[-1] == {"online": True}
    finally:
        rig.close()
        server.stop()


class DyingLibrary(Library):
    """Lends the first checkout, then dies before it can answer."""

    def __init__(self, **kw):
        super().__init__(**kw)
        import threading
        self.dying, self.killed = True, threading.Event()

    def checkout(self, req, ctx):
        reply = super().checkout(req, ctx)
        if self.dying:
            self.dying = False
            self.killed.set()
            import time
            time.sleep(5)        # the server is stopped meanwhile: never answered
        return reply


def test_server_killed_mid_checkout_makes_the_loan_exactly_once(tmp_path):
    library = DyingLibrary(repeat_checkout_refused=True)
    server = SipServer(library).start()
    port = server.port
    rig = LibraryRig(tmp_path, port)
    try:
        rig.start()
        place(rig, "H1", "L0001", 1, [("I1001", "Kongens Fald")])
        rig.collect("L0001", "1234", 1)
        rig.start_worker()
        assert library.killed.wait(10)
        server.stop()
        assert library.loans == {"I1001": "L0001"}     # lent, but never answered
        rig.until(lambda: rig.kiosk["library_online"] is False, "the outage")
        assert rig.loans_waiting() == 1
        server = SipServer(library, port=port).start()
        made = rig.until(lambda: events(rig, "loan.made"), "the loan settled")
        rig.run()
        assert len(events(rig, "loan.made")) == 1 and made[0]["item"] == "I1001"
        assert events(rig, "loan.failed") == []
        assert library.loans == {"I1001": "L0001"}
        assert len(library.checkouts) == 1             # lent once in effect
        assert rig.loans_waiting() == 0
    finally:
        rig.close()
        server.stop()


def test_a_loan_waiting_past_its_bound_is_dropped_with_its_identity(tmp_path):
    library = Library()
    server = SipServer(library).start()
    rig = LibraryRig(tmp_path, server.port, max_wait_s=3600)
    try:
        rig.start()
        place(rig, "H1", "L0001", 1, [("I1001", "Kongens Fald")])
        rig.collect("L0001", "1234", 1)
        server.stop()
        rig.start_worker()
        rig.until(lambda: rig.kiosk["library_online"] is False, "the outage")
        rig.clock.advance(3601)
        rig.worker.wake()
        failed = rig.until(lambda: events(rig, "loan.failed"), "the drop")
        assert failed[0]["reason"] == "expired" and failed[0]["item"] == "I1001"
        assert rig.store.conn.execute("SELECT count(*) FROM loans").fetchone()[0] == 0
        assert {"alarm": "loan_failed", "compartment": None} in rig.state["alarms"]
        assert library.loans == {}
    finally:
        rig.close()


def test_expired_holds_taken_out_are_checked_in(rig, library):
    place(rig, "H1", "L0001", 3, [("I1001", "Kongens Fald")], days=1)
    rig.advance(2 * 86400)
    assert rig.locker.holds["H1"].state is HoldState.EXPIRED
    rig.locker.confirm_removed(3, "staff:anna", "unloaded")
    rig.until(lambda: events(rig, "item.checked_in"), "the check-in")
    assert library.checkins == [("I1001", "BIBBOX1")]
    assert rig.loans_waiting() == 0


def test_the_kiosk_says_when_the_library_system_cannot_be_reached(tmp_path):
    library = Library()
    server = SipServer(library).start()
    rig = LibraryRig(tmp_path, server.port)
    try:
        rig.start()
        place(rig, "H1", "L0001", 1, [("I1001", "Kongens Fald")])
        assert rig.kiosk["library_online"] is True
        server.stop()
        rig.card("L0001")
        rig.pin("1234")
        assert rig.kiosk["screen"] == "denied"
        assert rig.kiosk["message"] == "service_unavailable"
        rig.until(lambda: rig.kiosk["library_online"] is False, "the kiosk told")
        assert rig.state["library_online"] is False
        assert events(rig, "library.status") == [{"online": False}]
    finally:
        rig.close()
