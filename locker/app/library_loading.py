"""Loading by scanning items only (a library system as verifier).

Staff scan an item; :meth:`LibraryLoading.announce_item` asks the library
system through the ``Catalogue`` port on the calling thread (a web request's,
never the controller's), hashes the hold's patron's card at once with the
site key, and announces a hold for it on the controller thread -- with the
title from the library system and a pickup number that is also the offline
pickup code.  The staff page then loads it like any announced hold.  When
the library system does not name the hold's patron, nothing is announced
and staff scan the patron's card as before.
"""

from __future__ import annotations

import logging
import uuid

from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.hold_specs import new_pickup_number

log = logging.getLogger("bibbox.library")


class LibraryLoading:
    """``catalogue``: the Catalogue port; ``controller``: the locker's."""

    def __init__(self, controller, catalogue):
        self.controller, self.catalogue = controller, catalogue

    def announce_item(self, barcode: str):
        """Ask the library system about ``barcode`` and announce its hold;
        the hold id, or None when the library system names no patron."""
        try:
            item = self.catalogue.receive(barcode)
        except CommandError:
            raise
        except Exception as exc:     # unreachable or an unusable answer: say so, no crash
            log.warning("item information for loading failed: %s", type(exc).__name__)
            raise CommandError("library_unavailable",
                               "the library system cannot tell about this item now") from None
        if item.patron is None:
            return None
        hasher = self.controller.locker.hasher
        patron_hash = hasher.patron(item.patron)
        hold_id = "L-" + uuid.uuid4().hex[:12]

        def announce(locker):
            taken = {h.pickup_number for h in locker.holds.values()}
            number = new_pickup_number(taken)
            locker.announce_hold(hold_id, patron_hash,
                                 [{"barcode": item.barcode, "title": item.title}],
                                 pickup_number=number,
                                 pickup_code_hash=hasher.pickup_code(hold_id, number),
                                 actor="library")
            return hold_id
        return self.controller.call(announce)
