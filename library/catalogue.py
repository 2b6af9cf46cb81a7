"""Loading by item: what the library system says of an item staff scan,
and the check-in that marks its hold as waiting at the locker.

:meth:`LibraryCatalogue.receive` asks 17 (item information: title, hold
status, pickup date), then checks the item in at the locker's own location
(09 with ``AP`` = ``library.location``), so the library system marks the
hold as waiting here; the hold's patron comes back as ``CY`` (in 10, or in
18 where the library system sends it).  The patron's card is returned as a
:class:`CardNumber` for the caller to hash at once; it is never kept or
logged here.  Calls block and are serialised (one connection): run them off
the controller thread.
"""

from __future__ import annotations

import threading

from bibbox.locker.domain.free_text import MASK_IT, clean
from bibbox.locker.domain.identity import CardNumber
from bibbox.locker.domain.model import ItemForLoading
from bibbox.library.sip2 import ReplyError

HELD = "08"    # circulation status: waiting on the hold shelf


class LibraryCatalogue:
    """The domain's ``Catalogue`` port over a LibraryClient."""

    def __init__(self, client):
        self.client = client
        self._lock = threading.Lock()

    def receive(self, barcode: str) -> ItemForLoading:
        with self._lock:
            info = self.client.item_information(barcode)
            if not info.title and info.circulation_status == "01":
                raise ReplyError("the library system does not know this item", "18")
            checkin = self.client.checkin(barcode)
        patron = checkin.hold_patron or info.hold_patron
        card = CardNumber(self.client.patron_number(patron)) if patron else None
        try:
            title = clean(info.title or checkin.title, "title", policy=MASK_IT, max_len=200)
        except ValueError:
            title = ""
        return ItemForLoading(barcode=barcode, title=title,
                              on_hold=info.circulation_status == HELD or bool(patron),
                              pickup_date=info.hold_pickup_date, patron=card)

    def close(self):
        self.client.close()
