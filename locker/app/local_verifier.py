"""The ``local`` verifier: patrons checked against the list in the store.

Meant for the demo and for sites without a central system.  It implements
the :class:`~bibbox.locker.domain.ports.Verifier` port and uses the store
only through :class:`~bibbox.locker.domain.ports.Store`; the list is filled
by :func:`bibbox.locker.domain.patrons.import_patrons`.
"""

from __future__ import annotations

import datetime as dt

from bibbox.locker.domain.calendar import DEFAULT_ZONE, local_date, zone

from bibbox.locker.domain.identity import Pin, constant_time_equal
from bibbox.locker.domain.patrons import ACCEPTED, BLOCKED, UNKNOWN, WRONG_PIN, Verdict
from bibbox.locker.domain.ports import Clock, Hasher, Store


class LocalVerifier:
    """Checks cards against the patron list imported into the store.

    Meant for the demo and for sites without a central system.  Loans get
    the library's normal loan period (one month by default)."""

    def __init__(self, store: Store, hasher: Hasher, clock: Clock, loan_days=30,
                 timezone=DEFAULT_ZONE):
        self.store, self.hasher, self.clock = store, hasher, clock
        self.loan_days = loan_days
        self.tz = zone(timezone)

    def verify(self, patron_hash, pin: Pin, done, *, card=None):
        """``card`` is not needed: the list is keyed by the patron hash."""
        row = self.store.patron(patron_hash)
        if row is None:
            return done(Verdict(UNKNOWN))
        if not constant_time_equal(row["pin_hash"], self.hasher.pin(patron_hash, pin)):
            return done(Verdict(WRONG_PIN))
        if row["block_reason"]:
            return done(Verdict(BLOCKED, reason=row["block_reason"]))
        today = local_date(self.clock.wall(), self.tz)
        return done(Verdict(ACCEPTED, default_due=(
            today + dt.timedelta(days=self.loan_days)).isoformat()))
