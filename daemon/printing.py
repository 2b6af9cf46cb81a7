"""The receipt printer in the daemon (``[printer]``, off by default).

:func:`build_printer` makes the ESC/POS printer (hal/receipt_printer.py) when
configured and feeds it every ``receipt.issued`` right after the commit that
wrote it (``Store.on_commit``, on the controller thread; printing only
queues).  The printer's status comes back as a typed message,
:class:`~bibbox.locker.domain.messages.PrinterStatus`, which raises or
clears the ``printer_offline`` alarm.  A receipt carries the locker's name,
the date, titles and due dates: never a card number or a patron hash.
"""

from __future__ import annotations

import datetime as dt
import json

from bibbox.locker.domain import messages as msg
from bibbox.locker.domain.model import EventType

WORDS = {"da": ("Afleveres senest", "Tak for besøget!"),
         "en": ("Return by", "Thank you for visiting!")}


def printed_receipt(cfg, data, wall_now):
    """The printer's receipt ({"title", "date", "lines"}) for the data of a
    ``receipt.issued`` event, in the locker's language (Danish or English)."""
    due_word, thanks = WORDS.get(cfg.locker.language, WORDS["da"])
    lines = []
    for item in data.get("items", []):
        lines.append(item.get("title") or item.get("barcode", ""))
        if item.get("due"):
            day = dt.date.fromisoformat(item["due"][:10])
            lines.append(f"  {due_word} {day:%d.%m.%Y}")
    lines += ["", thanks]
    return {"title": cfg.locker.name,
            "date": dt.datetime.fromtimestamp(wall_now).strftime("%d.%m.%Y %H:%M"),
            "lines": lines}


def build_printer(cfg, *, store, clock, post):
    """The :class:`ReceiptPrinter` when ``printer.enabled`` (not started), or None."""
    if not cfg.printer.enabled:
        return None
    from bibbox.hal.receipt_printer import ReceiptPrinter
    printer = ReceiptPrinter(cfg.printer.port, cfg.printer.baudrate,
                             on_status=lambda ok, reason: post(msg.PrinterStatus(ok, reason)))

    def print_receipts(events):
        for seq, _event_id, type_ in events:
            if type_ != EventType.RECEIPT_ISSUED.value:
                continue
            rows = store.outbox_batch(after_seq=seq - 1, limit=1)
            if rows and rows[0]["seq"] == seq:
                printer.print_receipt(printed_receipt(cfg, json.loads(rows[0]["payload"]),
                                                      clock.wall()))

    store.on_commit.append(print_receipts)
    return printer
