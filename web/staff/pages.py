"""The live pages (overview, loading, unloading) and the tiles they show.

The tiles come from :meth:`StaffService.overview` and are turned into
HTML-safe JSON once per state version (every change of holds, doors,
alarms or openings makes a new version); pages embed that JSON, and
``GET /staff/api/state?version=N&wait=S`` long-polls it like the kiosk.
Days left are computed by the page from ``deadline`` and ``now``.
"""

from __future__ import annotations

import json

from flask import current_app, g, render_template, request
from markupsafe import Markup

from bibbox.locker.domain.cabinet import front
from bibbox.web.staff.common import STRINGS, csrf_token, service, st, staff

LONG_POLL_S = 15.0
# A poll over the bounds (``LONG_POLLS_*`` in common) answers at once with
# the current state and this ``retry_after`` (seconds).
POLL_RETRY_AFTER_S = 5


def html_safe_json(value):
    """JSON that may also sit inside <script type="application/json">."""
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("'", "\\u0027").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))


STRINGS_JSON = {lang: html_safe_json(texts) for lang, texts in STRINGS.items()}


def _view_json():
    """(the tiles as HTML-safe JSON text, the tiles), cached per state version."""
    state = st()
    cached = state.view_cache
    view = state.service.overview(unless_version=cached[0] if cached else None)
    if view is None:
        return cached[1], cached[2]
    text = html_safe_json(view)
    state.view_cache = (view["version"], text, view)
    return text, view


def _view_response(retry_after=None):
    text, view = _view_json()
    extra = "" if retry_after is None else ',"retry_after":%d' % retry_after
    body = '{"ok":true,"now":%s%s,%s' % (json.dumps(service().now()), extra, text[1:])
    return current_app.response_class(body, mimetype="application/json")


def _boot(**extra):
    cfg = st().cfg
    data = {"lang": g.lang, "user": g.user.name, "role": g.user.role,
            "csrf": csrf_token(g.user.id), "now": service().now(),
            "sizes": list(cfg.holds.sizes), "pickup_days": cfg.holds.pickup_days}
    data.update(extra)
    return data


def _page(template, page, **extra):
    """A live page: boot data, the texts and the tiles as JSON data blocks."""
    view_text, view = _view_json()
    return render_template(template, page=page, boot=_boot(**extra),
                           strings_json=Markup(STRINGS_JSON[g.lang]),
                           view_json=Markup(view_text), sizes=view["sizes"])


@staff.get("/")
def overview():
    return _page("staff/overview.html", "overview", front=front(st().cfg.compartments))


@staff.get("/load")
def load_page():
    return _page("staff/load.html", "load", announced=service().announced())


@staff.get("/unload")
def unload_page():
    return _page("staff/unload.html", "unload", unload=service().unload_list())


@staff.get("/api/state")
def api_state():
    """The tiles; with ``version``, once they are newer or after ``wait``
    seconds, unless over the long-poll bounds (then at once, with
    ``retry_after``: the page polls again that much later)."""
    version = request.args.get("version", type=int)
    if version is None:
        return _view_response()
    wait = min(max(request.args.get("wait", LONG_POLL_S, type=float), 0.0), LONG_POLL_S)
    if wait <= 0:
        return _view_response()
    polls = st().polls
    if not polls.acquire(g.user.id):
        return _view_response(retry_after=POLL_RETRY_AFTER_S)
    try:
        service().wait_for_change(version, wait)
    finally:
        polls.release(g.user.id)
    return _view_response()
