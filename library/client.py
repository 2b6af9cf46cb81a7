"""The SIP2 client: one method per message, over either transport.

:class:`LibraryClient` builds each request with :mod:`bibbox.library.sip2`,
hands it to a transport (``exchange(text, expect)``) and returns the parsed
reply from :mod:`bibbox.library.replies`.  The FBS dialect's differences
(institution ``DK-<agency>``, the 63 summary, ``LN:`` patron numbers) are
taken from :mod:`bibbox.library.fbs` when ``fbs`` is true.  Calls block:
run them off the controller thread.
"""

from __future__ import annotations

from bibbox.library import fbs as fbs_dialect
from bibbox.library import replies, sip2

#: 63's summary for a patron check: hold items listed (position 0).
HOLDS_SUMMARY = "Y" + " " * 9


class LibraryClient:
    """``institution`` is AO (for FBS the agency, made ``DK-<agency>``);
    ``terminal_password`` is AC (a value from the secrets)."""

    def __init__(self, transport, *, institution, terminal_password="", location="",
                 language=sip2.DANISH, fbs=False):
        self.transport, self.fbs = transport, fbs
        self.institution = fbs_dialect.institution(institution) if fbs else institution
        self.terminal_password, self.location = terminal_password, location
        self.language = language

    def status(self) -> replies.AcsStatus:
        """99 -> 98 (and, on plain SIP2, the 93 login when connecting)."""
        return self.transport.exchange(sip2.sc_status(), "98")

    def patron_status(self, card, pin, *, date=None) -> replies.PatronStatus:
        """23 -> 24."""
        return self.transport.exchange(sip2.patron_status(
            self.institution, card, pin, self.terminal_password, date=date,
            language=self.language), "24")

    def patron_information(self, card, pin, *, summary=None,
                           date=None) -> replies.PatronInformation:
        """63 -> 64; FBS gets its own summary (``YYYYYYYYY``)."""
        if summary is None:
            summary = fbs_dialect.PATRON_SUMMARY if self.fbs else HOLDS_SUMMARY
        return self.transport.exchange(sip2.patron_information(
            self.institution, card, pin, self.terminal_password, summary=summary,
            date=date, language=self.language), "64")

    def checkout(self, card, item, *, pin=None, no_block=False, date=None,
                 fee_acknowledged=None) -> replies.CheckoutReply:
        """11 -> 12.  A loan queued offline: ``no_block=True`` and ``date``
        the original transaction date (18 characters)."""
        return self.transport.exchange(sip2.checkout(
            self.institution, card, item, self.terminal_password, pin=pin,
            no_block=no_block, date=date, fee_acknowledged=fee_acknowledged), "12")

    def checkin(self, item, *, location=None, no_block=False, date=None,
                return_date=None) -> replies.CheckinReply:
        """09 -> 10, at ``location`` (default: the locker's location code)."""
        return self.transport.exchange(sip2.checkin(
            self.institution, item, location or self.location, self.terminal_password,
            no_block=no_block, date=date, return_date=return_date), "10")

    def item_information(self, item, *, date=None) -> replies.ItemInformation:
        """17 -> 18."""
        return self.transport.exchange(sip2.item_information(
            self.institution, item, self.terminal_password, date=date), "18")

    def reported_holds(self, reply) -> frozenset | None:
        """The item ids of the patron's holds ready for pickup that a 64
        reply lists in AS (FBS: the first ``%``-part of each), or None when
        the reply does not report them: not a 64, or a hold count above
        zero with fewer AS fields than holds (the library system only
        counts them, or cut the list short: 63 asks for no range)."""
        counts = getattr(reply, "counts", None)
        if not counts:
            return None
        listed = [v for v in reply.hold_items if v.strip()]
        if len(listed) < counts[0]:
            return None
        if self.fbs:
            listed = [fbs_dialect.item_parts(v)[0] for v in listed]
        return frozenset(v.strip() for v in listed if v.strip())

    def patron_number(self, reply_value: str) -> str:
        """A patron id from a reply, without FBS's ``LN:`` prefix."""
        return fbs_dialect.patron_number(reply_value) if self.fbs else reply_value

    def close(self):
        self.transport.close()
