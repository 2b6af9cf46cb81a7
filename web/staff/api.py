"""The staff JSON API (``/staff/api``): reading holds and items, patrons,
proposals, and the commands (load, open, removed, cancel, move, service,
clear an alarm).  Answers ``{"ok": true, ...}`` or ``{"ok": false,
"error": code, "message": text}``.

Every command carries ``idem`` (a key per submit): a replay answers the
first answer and runs nothing.  Commands naming a compartment carry ``fp``
(see :mod:`bibbox.locker.app.staff`).  Loading a new hold uses
``S-<draft>`` as hold id, so a retry can never make a second hold.

With a library system, an item no hold here names is looked up there
(``library_loading`` in the app's extensions, see
:mod:`bibbox.locker.app.library_loading`): its hold is announced with its
patron, so no card is scanned at loading.

Privacy: a typed or scanned card number is hashed in the request that
brings it and never stored, logged or echoed; the page gets an opaque
token that stands for the hash for a few hours.
"""

from __future__ import annotations

import functools

from flask import current_app, g, jsonify, request

from bibbox.locker.app.staff import refused
from bibbox.locker.domain.errors import CardFormatError, CommandError
from bibbox.locker.domain.identity import CardNumber, pseudonym
from bibbox.locker.domain.patterns import HOLD_ID_RE, MAX_ITEMS
from bibbox.web.http import json_body as body
from bibbox.web.staff.checks import (check_hold_id, check_item, check_key,
                                     looks_like_isbn, reason_of, whole_number)
from bibbox.web.staff.common import command_error, fail, service, st, staff


def _item(text):
    return check_item(text, service().card_is_known_patron)


# -- reading --------------------------------------------------------------------------------
@staff.get("/api/announced")
def api_announced():
    return jsonify(ok=True, holds=service().announced())


@staff.get("/api/unload")
def api_unload():
    return jsonify(ok=True, unload=service().unload_list())


@staff.get("/api/holds")
def api_holds():
    ids = [i for i in request.args.get("ids", "").split(",") if i][:50]
    if not all(HOLD_ID_RE.match(i) for i in ids):
        raise CommandError("bad_argument", "ids must be hold ids")
    return jsonify(ok=True, holds=service().hold_statuses(ids))


@staff.post("/api/item")
def api_item():
    barcode = _item(body().get("barcode"))
    found = service().item_lookup(barcode)
    loading = current_app.extensions["bibbox"].get("library_loading")
    if loading is not None and not found["announced"] and not found["in_locker"]:
        # a library system: its hold for this item, announced with its patron
        if loading.announce_item(barcode) is not None:
            found = service().item_lookup(barcode)
    if found["in_locker"]:
        raise refused("item_in_locker", "that item is in the locker already",
                      n=found["in_locker"]["compartment"])
    return jsonify(ok=True, barcode=barcode, announced=found["announced"])


@staff.post("/api/patron")
def api_patron():
    data = body()
    text = data.get("card")
    data["card"] = None
    try:
        if not isinstance(text, str):
            raise CardFormatError("card number must be text")
        card = CardNumber.parse(text)
    except CardFormatError:
        raise CommandError("bad_card", "that is not a card number") from None
    finally:
        text = None
    if looks_like_isbn(card.value):
        raise CommandError("looks_like_item", "that is an item barcode, not a card")
    patron_hash = service().hash_card(card)
    del card
    proposal, here = service().patron_proposal(patron_hash, data.get("size"))
    token = st().tokens.put(patron_hash, g.user.name)
    return jsonify(ok=True, patron=token, pseudonym=pseudonym(patron_hash),
                   proposal=proposal, compartments=here)


def _patron_hash(token):
    patron_hash = st().tokens.get(token, g.user.name)
    if patron_hash is None:
        raise CommandError("patron_expired", "scan the patron's card again")
    return patron_hash


@staff.post("/api/propose")
def api_propose():
    data = body()
    patron_hash = _patron_hash(data["patron"]) if data.get("patron") else None
    return jsonify(ok=True, **service().propose(size=data.get("size") or None,
                                                patron_hash=patron_hash,
                                                hold_id=data.get("hold_id")))


# -- commands ---------------------------------------------------------------------------------
def command(fn):
    """A state-changing API call: JSON body, idempotency key, errors as JSON."""
    @functools.wraps(fn)
    def wrapper():
        data = body()
        key = check_key(data.get("idem"), "idem")

        def run():
            try:
                result = fn(data)
            except CommandError as exc:
                response, status = command_error(exc)
                return response.get_json(), status
            return dict({"ok": True}, **result), 200
        answer, status = st().idem.run((g.user.name, key), run)
        if answer is None:
            return fail("in_progress", 409)
        return jsonify(answer), status
    return wrapper


def _compartment(data, key="compartment"):
    return whole_number(data.get(key), key)


@staff.post("/api/load")
@command
def api_load(data):
    hold_id = data.get("hold_id")
    compartment = data.get("compartment")
    compartment = None if compartment in (None, "") else whole_number(compartment,
                                                                      "compartment")
    days = data.get("pickup_days")
    if days in (None, ""):
        days = None
    elif isinstance(days, bool) or not isinstance(days, (int, float)):
        raise CommandError("bad_argument", "pickup days must be 1-60")
    items = patron_hash = None
    if hold_id is None:
        hold_id = "S-" + check_key(data.get("draft"), "draft")
        raw = data.get("items")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ITEMS:
            raise CommandError("no_items", "scan at least one item")
        barcodes = []
        for text in raw:
            barcode = _item(text)
            if barcode not in barcodes:
                barcodes.append(barcode)
        items = [{"barcode": b} for b in barcodes]
        patron_hash = _patron_hash(data.get("patron"))
    else:
        check_hold_id(hold_id)
    return service().load(g.user.name, hold_id=hold_id, items=items,
                          patron_hash=patron_hash, size=data.get("size") or None,
                          compartment=compartment, pickup_days=days,
                          fp=data.get("fp") if compartment is not None else None)


@staff.post("/api/open")
@command
def api_open(data):
    number = _compartment(data)
    reason = reason_of(data)
    purpose = data.get("purpose") or "staff"
    if purpose not in ("staff", "unloading"):
        raise CommandError("bad_argument", "purpose must be staff or unloading")
    return service().open(g.user.name, number, reason, purpose, data.get("fp"))


@staff.post("/api/collected")
@command
def api_collected(data):
    """The patron staff opened a door for (on the phone) took the items."""
    number = _compartment(data)
    return service().mark_collected(g.user.name, number, reason_of(data), data.get("fp"))


@staff.post("/api/removed")
@command
def api_removed(data):
    number = _compartment(data)
    reason = reason_of(data, required=False) or "unloaded"
    return service().removed(g.user.name, number, reason, data.get("fp"))


@staff.post("/api/cancel")
@command
def api_cancel(data):
    hold_id = check_hold_id(data.get("hold_id"))
    return service().cancel(g.user.name, hold_id, reason_of(data))


@staff.post("/api/move")
@command
def api_move(data):
    hold_id = check_hold_id(data.get("hold_id"))
    to = _compartment(data, "to")
    return service().move(g.user.name, hold_id, to, data.get("fp"))


@staff.post("/api/service")
@command
def api_service(data):
    number = _compartment(data)
    out = data.get("out_of_service")
    if not isinstance(out, bool):
        raise CommandError("bad_argument", "out_of_service must be true or false")
    reason = reason_of(data) if out else None
    return service().set_out_of_service(g.user.name, number, reason, data.get("fp"))


@staff.post("/api/alarm/clear")
@command
def api_clear_alarm(data):
    number = data.get("compartment")
    number = None if number in (None, "", 0) else whole_number(number, "compartment")
    return service().clear_alarm(g.user.name, data.get("alarm"), number)
