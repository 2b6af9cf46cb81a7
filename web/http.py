"""Request helpers shared by the app and its blueprints (kiosk, sim, staff):
who is asking and what they sent.  Imports nothing of ours but errors, so
``web/app.py`` and the blueprints need not import each other."""

from __future__ import annotations

import ipaddress

from flask import request

from bibbox.locker.domain.errors import CommandError

MAX_BODY_BYTES = 64 * 1024


def is_loopback(address):
    """Is ``address`` (text, maybe empty or junk) a loopback address?"""
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def json_body(required=()):
    """The request's JSON object, or CommandError ``bad_request`` naming what
    is wrong (also for a body nested too deep to parse: never a 500)."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        raise CommandError("bad_request", "the body is nested too deep") from None
    if not isinstance(data, dict):
        raise CommandError("bad_request", "the body must be a JSON object")
    missing = [k for k in required if k not in data]
    if missing:
        raise CommandError("bad_request", "missing field(s): " + ", ".join(missing))
    return data
