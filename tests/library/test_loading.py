"""Loading by scanning items only, against the test library system's FBS
dialect (which names the hold's patron, CY): no patron card at loading."""

import json

from bibbox.library import fbs
from bibbox.library.catalogue import LibraryCatalogue
from bibbox.library.client import LibraryClient
from bibbox.locker.app.library_loading import LibraryLoading
from bibbox.locker.domain.identity import CardNumber
from bibbox.locker.domain.model import HoldState
from bibbox.locker.domain.messages import PickupCodeEntered
from tests.domain_helpers import Rig, SilentCentral
from tests.library.loan_rig import sip_client


def fbs_catalogue(server, test_ca):
    return LibraryCatalogue(LibraryClient(fbs.FbsTransport(
        "127.0.0.1", "775100", port=server.port, ca_file=str(test_ca[0]), timeout_s=3,
        retries=1, login="fbs-locker", password="fbs-secret"),
        institution="775100", location="BIBBOX1", fbs=True))


def test_loading_by_item_alone_end_to_end(tmp_path, fbs_server, test_ca):
    rig = Rig(tmp_path, verifier={"offline_policy": "pickup-code"})
    rig.start()
    loading = LibraryLoading(rig.controller, fbs_catalogue(fbs_server, test_ca))
    hold_id = loading.announce_item("I1004")
    hold = rig.locker.holds[hold_id]
    # the patron the library system named, hashed with the site key; the
    # title from the library system; checked in at the locker's location
    assert hold.patron_hash == rig.hasher.patron(CardNumber.parse("0101901234"))
    assert [(i.barcode, i.title) for i in hold.items] == [("I1004", "Ærø rundt")]
    assert fbs_server.library.checkins == [("I1004", "BIBBOX1")]
    assert hold.state is HoldState.ANNOUNCED
    assert b"0101901234" not in (tmp_path / "bibbox.db").read_bytes() + \
        (tmp_path / "bibbox.db-wal").read_bytes()
    # staff load it like any announced hold
    result = rig.locker.load_hold("staff:anna", hold_id=hold_id)
    rig.fire_all()
    rig.door(result["compartment"], True)
    rig.door(result["compartment"], False)
    assert rig.locker.holds[hold_id].state is HoldState.READY
    # the pickup number the locker shows is the offline pickup code
    rig.locker.verifier = SilentCentral()
    rig.card("0101901234")
    rig.pin("1234")
    assert rig.kiosk["screen"] == "code"
    rig.controller.post(PickupCodeEntered(hold.pickup_number))
    rig.run()
    assert rig.fire_all() == [result["compartment"]]
    ready = [json.loads(p) for t, p in rig.outbox() if t == "hold.ready"]
    assert ready[0]["items"][0]["title"] == "Ærø rundt"


def test_without_the_hold_patron_the_card_path_stays(tmp_path, sip_server):
    rig = Rig(tmp_path)
    rig.start()
    loading = LibraryLoading(rig.controller, LibraryCatalogue(sip_client(sip_server.port)))
    # plain SIP2 from pysip2 names no hold patron: nothing announced
    assert loading.announce_item("I1001") is None
    assert rig.locker.announced_holds() == []
    assert sip_server.library.checkins == [("I1001", "BIBBOX1")]
