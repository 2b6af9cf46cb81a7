"""The staff page, ``/staff``: loading, unloading, the compartment overview,
the audit log and (for admins) staff accounts.

Pages (HTML; every one needs a login):

- ``GET  /staff/``            compartment overview, live (long poll)
- ``GET  /staff/load``        loading, keyboard and scanner first
- ``GET  /staff/unload``      what must come out
- ``GET  /staff/audit``       audit log (filters: from, to, compartment, kind,
  actor; ``before`` pages back); ``GET /staff/audit.csv`` the same as CSV
- ``GET  /staff/accounts``    admin only: staff accounts; POST
  ``/staff/accounts/{add,remove,unlock,end-sessions}``
- ``GET|POST /staff/login``, ``POST /staff/logout``, ``GET /staff/lang/<da|en>``

JSON API (``/staff/api``; answers ``{"ok": true, ...}`` or
``{"ok": false, "error": code, "message": text}``):

- ``GET  state?version=N&wait=S``  the tiles; long-polled like the kiosk
- ``GET  announced``, ``GET unload``, ``GET holds?ids=a,b``
- ``POST item {barcode}``      is this an item? (and which announced hold)
- ``POST patron {card}``       hash a card number at once: an opaque token
- ``POST propose {size, patron | hold_id}``
- ``POST load {draft, items+patron | hold_id, size, compartment, fp, pickup_days}``
- ``POST open {compartment, reason, purpose, fp}``, ``POST removed {compartment, reason, fp}``
- ``POST cancel {hold_id, reason}``, ``POST move {hold_id, to, fp}``
- ``POST service {compartment, out_of_service, reason, fp}``, ``POST alarm/clear {alarm, compartment}``
- ``GET  login-token``, ``POST login {name, password}``, ``GET me``

Security: a server-side session (see :mod:`web.accounts`) whose random id
travels in an HttpOnly, SameSite=Strict cookie, ``Secure`` except for
plain http from loopback on a *simulated* locker (the demo).  Every POST
needs the CSRF token (form field ``csrf`` or header ``X-CSRF-Token``,
HMAC of the session id): 400 without.  The login form has its own
double-submit token.  Routes are refused by default: an endpoint is public
only if listed in ``PUBLIC`` and admin-only if listed in ``ADMIN``.  Roles:
*staff* may do every locker operation (load, unload, open a door with a
reason, out of service, clear an alarm: the people at the locker are the
ones who fix a jam); *admin* may also manage staff accounts.

Every state-changing API call carries ``idem`` (a key per submit): a
replay answers the first answer and runs nothing.  Commands naming a
compartment carry ``fp``, the fingerprint of the compartment as the page
showed it (state, holds, alarms, service); if it changed meanwhile the
command is refused with ``stale`` and nothing happens.  Loading a new hold
uses ``S-<draft>`` as hold id, so a retry can never make a second hold.

Privacy: a typed or scanned card number is hashed in the request that
brings it and never stored, logged or echoed; the page gets an opaque
token that stands for the hash for a few hours.  Patrons appear only as
pseudonyms (``P-1a2b3c4d``).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import OrderedDict

from flask import (Blueprint, Response, abort, current_app, g, jsonify, make_response,
                   redirect, render_template, request, stream_with_context, url_for)
from markupsafe import Markup

from bibbox.locker.domain.errors import CardFormatError, CommandError
from bibbox.locker.domain.identity import CardNumber, pseudonym

from bibbox.web.accounts import (AccountError, Accounts, ROLES, check_name, check_password_text,
                       load_or_create_secret)
from bibbox.web.app import is_loopback

log = logging.getLogger("bibbox.staff")

staff = Blueprint("staff", __name__, url_prefix="/staff")

LONG_POLL_S = 15.0
AUDIT_PAGE = 200
LANGS = ("da", "en")
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "static", "staff.i18n.json"), encoding="utf-8") as _fh:
    STRINGS = json.load(_fh)
try:
    from zoneinfo import ZoneInfo
    LOCAL_TZ = ZoneInfo("Europe/Copenhagen")
except Exception:   # no tz database: show UTC
    LOCAL_TZ = dt.timezone.utc

PUBLIC = {"staff.login", "staff.login_api", "staff.login_token", "staff.set_language"}
ADMIN = {"staff.accounts", "staff.account_add", "staff.account_remove",
         "staff.account_unlock", "staff.account_end_sessions"}

# Audit kinds for the filter: a kind is a set of audit actions.
AUDIT_KINDS = OrderedDict([
    ("login", ("login", "logout", "login_failed", "login_locked")),
    ("loading", ("loaded", "loading_failed", "hold_placed")),
    ("unloading", ("removed",)),
    ("open", ("unlock", "opening_abandoned", "door_jammed")),
    ("pickup", ("collected",)),
    ("service", ("out_of_service", "in_service")),
    ("alarm", ("alarm_raised", "alarm_cleared", "door_jammed")),
    ("holds", ("hold_cancelled", "hold_moved")),
    ("accounts", ("staff_added", "staff_removed", "staff_password", "staff_unlocked",
                  "staff_sessions_ended")),
])

_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ITEM_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.-]{3,31}$")
CPR_RE = re.compile(r"^(\d{2})(\d{2})(\d{2})-?\d{4}$")
MAX_ITEMS = 50


# -- per-app state -----------------------------------------------------------------
class _Tokens:
    """Opaque tokens standing for patron hashes, per staff member, for a
    few hours (in memory: a restart means scanning the card again)."""

    def __init__(self, ttl_s=4 * 3600, max_size=20_000):
        self.ttl_s, self.max_size = ttl_s, max_size
        self._lock = threading.Lock()
        self._items = OrderedDict()

    def put(self, patron_hash, owner):
        token = "T" + secrets.token_urlsafe(18)
        with self._lock:
            self._items[token] = (patron_hash, owner, time.monotonic() + self.ttl_s)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
        return token

    def get(self, token, owner):
        with self._lock:
            entry = self._items.get(token) if isinstance(token, str) else None
        if entry is None or entry[1] != owner or entry[2] < time.monotonic():
            return None
        return entry[0]


class _Idempotency:
    """Answers by (staff name, idem key): a replay gets the first answer,
    a replay while the first is still running gets ``in_progress``."""

    def __init__(self, max_size=5000):
        self.max_size = max_size
        self._lock = threading.Lock()
        self._done = OrderedDict()
        self._running = set()

    def run(self, key, fn):
        with self._lock:
            if key in self._done:
                body, status = self._done[key]
                return dict(body, replayed=True), status
            if key in self._running:
                return None, 409
            self._running.add(key)
        try:
            body, status = fn()
        finally:
            with self._lock:
                self._running.discard(key)
        if status < 500:
            with self._lock:
                self._done[key] = (body, status)
                while len(self._done) > self.max_size:
                    self._done.popitem(last=False)
        return body, status


class StaffState:
    def __init__(self, app):
        ext = app.extensions["bibbox"]
        cfg, controller = ext["cfg"], ext["controller"]
        self.cfg, self.controller = cfg, controller
        self.secret = load_or_create_secret(cfg.locker.state_dir)
        self.accounts = Accounts.for_state_dir(cfg.locker.state_dir, clock=controller.clock,
                                               secret=self.secret)
        self.tokens = _Tokens()
        self.view_cache = None      # (state version, JSON text, view)
        self.idem = _Idempotency()
        self._readers = threading.local()

    def reader(self):
        """A read connection to the locker database for this thread."""
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self.controller.locker.store.reader()
            self._readers.conn = conn
        return conn

    def hasher(self):
        daemon = current_app.extensions["bibbox"].get("daemon")
        if daemon is not None:
            return daemon.hasher
        return self.controller.locker.hasher


@staff.record_once
def _setup(state):
    app = state.app
    st = StaffState(app)
    app.extensions["bibbox"]["staff"] = st
    if not app.secret_key:
        app.secret_key = st.secret


def _st() -> StaffState:
    return current_app.extensions["bibbox"]["staff"]


# -- language ----------------------------------------------------------------------
def _lang():
    lang = request.cookies.get("bibbox-lang")
    if lang in LANGS:
        return lang
    default = _st().cfg.locker.language
    return default if default in LANGS else "da"


def t(key, lang=None, **params):
    lang = lang or getattr(g, "lang", None) or "da"
    text = STRINGS.get(lang, {}).get(key) or STRINGS["en"].get(key) or key
    if params:
        try:
            text = text.format(**params)
        except (KeyError, IndexError, ValueError):
            pass
    return text


@staff.app_template_filter("staff_time")
def _fmt_time(ts):
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


@staff.context_processor
def _template_globals():
    user = getattr(g, "user", None)
    return {"t": t, "lang": getattr(g, "lang", "da"), "user": user,
            "csrf": _csrf_token(user.id) if user else "",
            "locker_name": _st().cfg.locker.name, "locker_id": _st().cfg.locker.id}


# -- transport security -----------------------------------------------------------------
def _is_https():
    if request.is_secure:
        return True
    return is_loopback(request.remote_addr) and \
        request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _cookie_secure():
    """Secure, except plain http from loopback on a simulated locker."""
    if _is_https():
        return True
    return not (_st().cfg.locker.simulated and is_loopback(request.remote_addr))


def _cookie_name():
    return "__Host-bibbox-staff" if _cookie_secure() else "bibbox-staff"


def _client_address():
    """The staff device's address; behind a reverse proxy on loopback, the
    last X-Forwarded-For entry (the one the proxy itself added)."""
    addr = request.remote_addr or ""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and is_loopback(addr):
        addr = forwarded.split(",")[-1].strip() or addr
    return addr[:64]


def _csrf_token(session_id):
    return hmac.new(_st().secret, b"csrf\x00" + session_id.encode(),
                    hashlib.sha256).hexdigest()


def _login_token(nonce):
    return hmac.new(_st().secret, b"login\x00" + nonce.encode(),
                    hashlib.sha256).hexdigest()


def _same(sent, expected):
    """Constant-time comparison that takes any text a client may send."""
    return bool(sent) and hmac.compare_digest(sent.encode("utf-8", "replace"),
                                              expected.encode("ascii"))


def _sent_csrf():
    return request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""


def _is_api():
    return request.path.startswith("/staff/api/") or request.path.endswith(".csv")


# -- the gate: every request -----------------------------------------------------------
@staff.before_request
def _gate():
    g.lang = _lang()
    g.user = None
    st = _st()
    sid = request.cookies.get(_cookie_name())
    if sid:
        g.user = st.accounts.session(sid)
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC:
        return None
    if g.user is None:
        if _is_api() or request.method != "GET":
            return _fail("login_required", 401)
        return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    if endpoint in ADMIN and g.user.role != "admin":
        if _is_api():
            return _fail("forbidden", 403)
        abort(403)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        sent = _sent_csrf()
        if not _same(sent, _csrf_token(g.user.id)):
            return _fail("csrf", 400)
    return None


@staff.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'")
    response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if _is_https():
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _fail(code, status=400, message=None, **params):
    body = {"ok": False, "error": code,
            "message": message or t("err_" + code, **params), "params": params}
    if _is_api() or request.is_json or request.method != "GET":
        return jsonify(body), status
    return make_response(message or t("err_" + code, **params), status)


@staff.errorhandler(CommandError)
def _command_error(exc):
    status = 404 if exc.code.startswith("unknown") else 400
    if exc.code == "timeout":
        status = 503
    if exc.code == "stale":
        status = 409
    key = "err_" + exc.code
    params = dict(getattr(exc, "params", {}))
    if "state" in params:
        params["state"] = t("state_" + params["state"])
    message = t(key, **params) if key in STRINGS["en"] else str(exc)
    return jsonify(ok=False, error=exc.code, message=message,
                   detail=str(exc)), status


def _audit(actor, action, *, reason="", detail="", compartment=None):
    """Write one audit row on the controller thread (never fails a request)."""
    def write(locker):
        with locker.store.unit() as unit:
            unit.audit(actor, action, compartment=compartment, reason=reason, detail=detail)
    try:
        _st().controller.call(write)
    except Exception:
        log.exception("could not write the audit row %s for %s", action, actor)


def _set_session_cookie(response, session_id):
    response.set_cookie(_cookie_name(), session_id, httponly=True, samesite="Strict",
                        secure=_cookie_secure(), path="/")


def _clear_session_cookie(response):
    for name in ("__Host-bibbox-staff", "bibbox-staff"):
        if name in request.cookies:
            response.delete_cookie(name, path="/", secure=name.startswith("__Host-"),
                                   httponly=True, samesite="Strict")


def _set_login_cookie(response, nonce):
    response.set_cookie("bibbox-login", nonce, httponly=True, samesite="Strict",
                        secure=_cookie_secure(), path="/staff", max_age=3600)


def _check_login_token(sent):
    nonce = request.cookies.get("bibbox-login", "")
    return bool(nonce) and _same(sent, _login_token(nonce))


def _safe_next(target):
    if isinstance(target, str) and target.startswith("/staff") and "//" not in target \
            and "\\" not in target and "\n" not in target and "\r" not in target:
        return target
    return url_for("staff.overview")


def _do_login(name, password):
    """(LoginResult, response-status).  Audits every attempt."""
    st = _st()
    address = _client_address()
    old = request.cookies.get(_cookie_name())
    result = st.accounts.login(name, password, address)
    if result.session is not None:
        if old:
            st.accounts.logout(old)        # a new id at every login
        _audit(result.session.name, "login", reason="password", detail=f"from {address}")
        return result, 200
    who = result.account or "anonymous"
    detail = f"from {address}" + ("" if result.account else "; unknown account")
    _audit(who, "login_locked" if result.code == "locked" else "login_failed",
           detail=detail)
    return result, (429 if result.code == "locked" else 401)


def _login_message(result):
    if result.code == "locked":
        return t("err_locked", minutes=max(1, math.ceil(result.retry_after_s / 60)))
    return t("err_bad_credentials")


# -- login pages ------------------------------------------------------------------------
@staff.route("/login", methods=["GET", "POST"])
def login():
    st = _st()
    message, status = "", 200
    name = ""
    if request.method == "POST":
        if not _check_login_token(request.form.get("csrf", "")):
            return _fail("csrf", 400)
        name = request.form.get("name", "")[:64]
        result, status = _do_login(name, request.form.get("password", ""))
        if result.session is not None:
            response = redirect(_safe_next(request.form.get("next")))
            _set_session_cookie(response, result.session.id)
            return response
        message = _login_message(result)
    insecure = (not _is_https() and _cookie_secure()
                and (request.host.split(":")[0] not in ("localhost", "127.0.0.1", "[::1]")))
    nonce = secrets.token_urlsafe(24)
    response = make_response(render_template(
        "staff/login.html", page="login", message=message, name=name,
        next=_safe_next(request.values.get("next")), insecure=insecure,
        no_accounts=st.accounts.count() == 0, state_dir=st.cfg.locker.state_dir,
        login_csrf=_login_token(nonce)), status)
    _set_login_cookie(response, nonce)
    return response


@staff.get("/api/login-token")
def login_token():
    nonce = secrets.token_urlsafe(24)
    response = jsonify(ok=True, csrf=_login_token(nonce))
    _set_login_cookie(response, nonce)
    return response


@staff.post("/api/login")
def login_api():
    if not _check_login_token(_sent_csrf()):
        return _fail("csrf", 400)
    data = request.get_json(silent=True) or {}
    result, status = _do_login(str(data.get("name", ""))[:64], data.get("password", ""))
    if result.session is None:
        return jsonify(ok=False, error=result.code, message=_login_message(result)), status
    response = jsonify(ok=True, name=result.session.name, role=result.session.role,
                       csrf=_csrf_token(result.session.id))
    _set_session_cookie(response, result.session.id)
    return response


@staff.post("/logout")
def logout():
    _st().accounts.logout(g.user.id)
    _audit(g.user.name, "logout", detail=f"from {_client_address()}")
    response = redirect(url_for("staff.login"))
    _clear_session_cookie(response)
    return response


@staff.get("/lang/<code>")
def set_language(code):
    if code not in LANGS:
        abort(404)
    response = redirect(_safe_next(request.args.get("next")))
    response.set_cookie("bibbox-lang", code, samesite="Strict", secure=_cookie_secure(),
                        path="/staff", max_age=365 * 86400)
    return response


@staff.get("/api/me")
def me():
    return jsonify(ok=True, name=g.user.name, role=g.user.role, csrf=_csrf_token(g.user.id))


# -- the view of the locker ---------------------------------------------------------------
def _fingerprint(comp, holds):
    """What the page must have seen of a compartment to act on it."""
    basis = repr((comp["state"], comp.get("out_of_service"), tuple(comp.get("alarms") or ()),
                  tuple(sorted((h.id, h.state.value) for h in holds))))
    return hashlib.blake2b(basis.encode(), digest_size=6).hexdigest()


def _tile(comp, holds, opening):
    state = comp["state"]
    if state == "free" and any(h.state.value == "cancelled" for h in holds):
        state = "unload"
    return {
        "n": comp["number"], "size": comp["size"], "state": state,
        "door": comp["door"], "lock": comp["lock"], "alarms": comp["alarms"],
        "oos": comp.get("out_of_service"), "deadline": comp.get("deadline"),
        "holds": [{"id": h.id, "pickup": h.pickup_number, "state": h.state.value,
                   "items": len(h.items), "patron": pseudonym(h.patron_hash),
                   "deadline": h.deadline} for h in sorted(holds, key=lambda h: h.id)],
        "opening": ({"purpose": opening.purpose.value, "seen_open": opening.seen_open,
                     "actor": opening.actor} if opening is not None else None),
        "fp": _fingerprint(comp, holds),
    }


def _snapshot(locker, board):
    """On the controller thread: publish what is pending, then build tiles
    from that snapshot plus the holds (one pass over each)."""
    locker.flush()
    state = board.get("state")
    by_comp = {}
    for hold in locker.holds.values():
        if hold.compartment is not None:
            by_comp.setdefault(hold.compartment, []).append(hold)
    tiles = [_tile(c, by_comp.get(c["number"], []), locker.openings.get(c["number"]))
             for c in state["compartments"]]
    return {"version": state["version"], "tiles": tiles, "alarms": state["alarms"],
            "reader_online": state.get("reader_online"),
            "sizes": list(locker.cfg.holds.sizes)}


def _html_safe_json(value):
    """JSON that may also sit inside <script type="application/json">."""
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("'", "\\u0027").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))


STRINGS_JSON = {lang: _html_safe_json(texts) for lang, texts in STRINGS.items()}


def _view_json():
    """The tiles as HTML-safe JSON text, built once per state version (every
    change of holds, doors, alarms or openings makes a new version).  Days
    left are computed by the page from ``deadline`` and ``now``."""
    st = _st()
    controller = st.controller

    def build(locker):
        locker.flush()
        cached = st.view_cache
        if cached is not None and cached[0] == controller.board.get("state")["version"]:
            return None
        return _snapshot(locker, controller.board)
    view = controller.call(build)
    if view is None:
        cached = st.view_cache
        return cached[1], cached[2]
    text = _html_safe_json(view)
    st.view_cache = (view["version"], text, view)
    return text, view


def _view_response():
    text, view = _view_json()
    now = _st().controller.clock.wall()
    body = '{"ok":true,"now":%s,%s' % (json.dumps(now), text[1:])
    return current_app.response_class(body, mimetype="application/json")


def _check_fresh(locker, board, number, fp):
    """Refuse (``stale``) when compartment ``number`` is not as the page saw it."""
    if fp is None:
        return
    if not isinstance(fp, str):
        raise CommandError("bad_argument", "fp must be text")
    locker.flush()
    comp = next((c for c in board.get("state")["compartments"] if c["number"] == number),
                None)
    if comp is None:
        raise CommandError("unknown_compartment", f"there is no compartment {number!r}")
    if _fingerprint(comp, locker.holds_in(number)) != fp:
        exc = CommandError("stale", f"compartment {number} changed since the page showed it")
        exc.params = {"n": number, "state": comp["state"]}
        raise exc


# -- pages ------------------------------------------------------------------------------------
def _boot(**extra):
    st = _st()
    data = {"lang": g.lang, "user": g.user.name, "role": g.user.role,
            "csrf": _csrf_token(g.user.id), "now": st.controller.clock.wall(),
            "sizes": list(st.cfg.holds.sizes), "pickup_days": st.cfg.holds.pickup_days}
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
    return _page("staff/overview.html", "overview")


@staff.get("/load")
def load_page():
    announced = _st().controller.call(lambda l: l.announced_holds())
    return _page("staff/load.html", "load", announced=announced)


@staff.get("/unload")
def unload_page():
    unload = _st().controller.call(lambda l: l.unload_list())
    return _page("staff/unload.html", "unload", unload=unload)


# -- audit --------------------------------------------------------------------------------
def _day_start(text):
    try:
        day = dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).timestamp()


def _audit_filters(args):
    filters, errors = {}, []
    since, until = args.get("from", "").strip(), args.get("to", "").strip()
    if since:
        filters["since"] = _day_start(since)
        if filters["since"] is None:
            errors.append(t("err_bad_date"))
    if until:
        start = _day_start(until)
        if start is None:
            errors.append(t("err_bad_date"))
        else:
            day = dt.date.fromisoformat(until) + dt.timedelta(days=1)
            filters["until"] = dt.datetime(day.year, day.month, day.day,
                                           tzinfo=LOCAL_TZ).timestamp()
    comp = args.get("compartment", "").strip()
    if comp:
        if comp.isdigit() and len(comp) <= 6:
            filters["compartment"] = int(comp)
        else:
            errors.append(t("err_bad_compartment"))
    kind = args.get("kind", "").strip()
    if kind:
        if kind in AUDIT_KINDS:
            filters["actions"] = AUDIT_KINDS[kind]
        elif re.fullmatch(r"[a-z_]{1,40}", kind):
            filters["actions"] = (kind,)
        else:
            errors.append(t("err_bad_kind"))
    actor = args.get("actor", "").strip()
    if actor:
        filters["actor"] = actor[:64]
    before = args.get("before", "").strip()
    if before.isdigit():
        filters["before"] = int(before)
    return filters, errors


def _audit_query(conn, filters, limit):
    sql, params = ("SELECT id, ts, actor, action, compartment, patron, reason, detail "
                   "FROM audit WHERE 1=1"), []
    if "since" in filters:
        sql += " AND ts>=?"
        params.append(filters["since"])
    if "until" in filters:
        sql += " AND ts<?"
        params.append(filters["until"])
    if "compartment" in filters:
        sql += " AND compartment=?"
        params.append(filters["compartment"])
    if "actions" in filters:
        sql += " AND action IN (%s)" % ",".join("?" * len(filters["actions"]))
        params.extend(filters["actions"])
    if "actor" in filters:
        sql += " AND actor=?"
        params.append(filters["actor"])
    if "before" in filters:
        sql += " AND id<?"
        params.append(filters["before"])
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return conn.execute(sql, params).fetchall()


@staff.get("/audit")
def audit():
    filters, errors = _audit_filters(request.args)
    rows = [] if errors else _audit_query(_st().reader(), filters, AUDIT_PAGE + 1)
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    older = url_for("staff.audit", before=rows[-1]["id"], **args) if more else None
    return render_template("staff/audit.html", page="audit", rows=rows, errors=errors,
                           kinds=list(AUDIT_KINDS), args=request.args, older=older,
                           csv_url=url_for("staff.audit_csv", **args),
                           csv_excel_url=url_for("staff.audit_csv", sep="semicolon", **args)
                           ), (400 if errors else 200)


def _csv_cell(value):
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text          # never a formula in a spreadsheet
    return text


@staff.get("/audit.csv")
def audit_csv():
    filters, errors = _audit_filters(request.args)
    if errors:
        return _fail("bad_filter", 400, message="; ".join(errors))
    delimiter = ";" if request.args.get("sep") == "semicolon" else ","
    st = _st()
    _audit(g.user.name, "audit_export", detail=request.query_string.decode()[:200])

    def generate():
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
        out.write("\ufeff")
        writer.writerow(["id", "time", "actor", "action", "compartment", "patron",
                         "reason", "detail"])
        conn = st.reader()
        page_filters = dict(filters)
        while True:
            rows = _audit_query(conn, page_filters, 1000)
            for r in rows:
                when = dt.datetime.fromtimestamp(r["ts"], LOCAL_TZ).isoformat(
                    timespec="seconds")
                writer.writerow([r["id"], when, *map(_csv_cell, (
                    r["actor"], r["action"], r["compartment"], r["patron"], r["reason"],
                    r["detail"]))])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(rows) < 1000:
                break
            page_filters["before"] = rows[-1]["id"]

    stamp = dt.datetime.fromtimestamp(st.controller.clock.wall(), LOCAL_TZ).strftime(
        "%Y%m%d-%H%M")
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="bibbox-audit-{st.cfg.locker.id}-'
                             f'{stamp}.csv"'})


# -- accounts (admin) ----------------------------------------------------------------------
@staff.get("/accounts")
def accounts():
    st = _st()
    rows = [(a, st.accounts.session_count(a.name)) for a in st.accounts.list()]
    return render_template("staff/accounts.html", page="accounts", rows=rows,
                           done=request.args.get("done", ""),
                           error=request.args.get("error", ""), roles=ROLES)


def _account_action(fn, done):
    try:
        fn()
    except AccountError as exc:
        return redirect(url_for("staff.accounts", error=exc.code))
    return redirect(url_for("staff.accounts", done=done))


@staff.post("/accounts/add")
def account_add():
    st = _st()
    name = request.form.get("name", "").strip().lower()
    role = request.form.get("role", "staff")
    password = request.form.get("password", "")

    def add():
        check_name(name)
        if password != request.form.get("password2", ""):
            raise AccountError("password_mismatch", "the passwords differ")
        check_password_text(password)
        st.accounts.add(name, password, role)
        _audit(g.user.name, "staff_added", detail=f"{name} ({role})")
    return _account_action(add, "added")


@staff.post("/accounts/remove")
def account_remove():
    st = _st()
    name = request.form.get("name", "")

    def remove():
        if name == g.user.name:
            raise AccountError("remove_self", "you cannot remove yourself")
        st.accounts.remove(name)
        _audit(g.user.name, "staff_removed", detail=name)
    return _account_action(remove, "removed")


@staff.post("/accounts/unlock")
def account_unlock():
    st = _st()
    name = request.form.get("name", "")

    def unlock():
        st.accounts.require(name)
        st.accounts.unlock(name=name)
        _audit(g.user.name, "staff_unlocked", detail=name)
    return _account_action(unlock, "unlocked")


@staff.post("/accounts/end-sessions")
def account_end_sessions():
    st = _st()
    name = request.form.get("name", "")

    def end():
        st.accounts.require(name)
        st.accounts.end_sessions(name)
        _audit(g.user.name, "staff_sessions_ended", detail=name)
    return _account_action(end, "ended")


# -- JSON API: reading -----------------------------------------------------------------------
@staff.get("/api/state")
def api_state():
    version = request.args.get("version", type=int)
    if version is not None:
        wait = min(max(request.args.get("wait", LONG_POLL_S, type=float), 0.0), LONG_POLL_S)
        _st().controller.board.wait_newer("state", version, timeout=wait)
    return _view_response()


@staff.get("/api/announced")
def api_announced():
    return jsonify(ok=True, holds=_st().controller.call(lambda l: l.announced_holds()))


@staff.get("/api/unload")
def api_unload():
    return jsonify(ok=True, unload=_st().controller.call(lambda l: l.unload_list()))


def _hold_status(locker, hold_id):
    hold = locker.holds.get(hold_id) or locker.store.hold(hold_id)
    if hold is None:
        return {"hold_id": hold_id, "state": "unknown"}
    number = hold.compartment
    opening = locker.openings.get(number) if number is not None else None
    door = locker.doors.get(number) if number is not None else None
    return {"hold_id": hold.id, "state": hold.state.value, "compartment": number,
            "pickup_number": hold.pickup_number, "deadline": hold.deadline,
            "items": len(hold.items), "patron": pseudonym(hold.patron_hash),
            "door": door.state.value if door else None,
            "opening": ({"purpose": opening.purpose.value, "seen_open": opening.seen_open,
                         "fired": opening.fired} if opening else None),
            "alarms": sorted(a.kind.value for a in locker.alarms.values()
                             if number is not None and a.compartment == number)}


@staff.get("/api/holds")
def api_holds():
    ids = [i for i in request.args.get("ids", "").split(",") if i][:50]
    if not all(_ID_RE.match(i) for i in ids):
        raise CommandError("bad_argument", "ids must be hold ids")
    holds = _st().controller.call(lambda l: [_hold_status(l, i) for i in ids])
    return jsonify(ok=True, holds=holds)


# -- JSON API: input checks -------------------------------------------------------------------
def _ean_ok(digits):
    """The GS1 check digit of an EAN-8/UPC/EAN-13/GTIN-14."""
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        return False
    total = sum(int(d) * (3 if i % 2 == 0 else 1)
                for i, d in enumerate(reversed(digits[:-1])))
    return (10 - total % 10) % 10 == int(digits[-1])


def _looks_like_cpr(text):
    m = CPR_RE.match(text)
    if not m:
        return False
    day, month = int(m.group(1)), int(m.group(2))
    return 1 <= day <= 31 and 1 <= month <= 12


def _is_patron(hasher, text):
    """Does ``text`` read as a card of a patron we know?"""
    try:
        patron_hash = hasher.patron(CardNumber.parse(text))
    except CardFormatError:
        return False
    conn = _st().reader()
    return bool(conn.execute("SELECT 1 FROM patrons WHERE patron_hash=?",
                             (patron_hash,)).fetchone() or
                conn.execute("SELECT 1 FROM holds WHERE patron_hash=? LIMIT 1",
                             (patron_hash,)).fetchone())


def _check_item(text):
    """A clean item barcode, or CommandError (never echoing a card number)."""
    if not isinstance(text, str):
        raise CommandError("not_item", "an item barcode is text")
    barcode = text.strip()
    if barcode.startswith("]") and len(barcode) > 3:     # an AIM id the scanner kept
        barcode = barcode[3:]
    if _looks_like_cpr(barcode):
        raise CommandError("looks_like_card", "that looks like a CPR number, not an item")
    if not ITEM_RE.match(barcode):
        raise CommandError("not_item", "that is not an item barcode")
    if barcode.isdigit() and len(barcode) == 13 and not _ean_ok(barcode):
        raise CommandError("not_item", "the barcode's check digit is wrong")
    if _is_patron(_st().hasher(), barcode):
        raise CommandError("looks_like_card", "that is a patron's card, not an item")
    return barcode


def _item_lookup(locker, barcode):
    found = {"announced": None, "in_locker": None}
    for hold in locker.holds.values():
        if any(i.barcode == barcode for i in hold.items):
            if hold.state.value == "announced" and found["announced"] is None:
                found["announced"] = {
                    "hold_id": hold.id, "pickup_number": hold.pickup_number,
                    "size": hold.size, "patron": pseudonym(hold.patron_hash),
                    "items": [i.as_dict() for i in hold.items]}
            elif hold.compartment is not None:
                found["in_locker"] = {"hold_id": hold.id, "compartment": hold.compartment,
                                      "state": hold.state.value}
    return found


def _body():
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise CommandError("bad_request", "the body must be a JSON object")
    return data


@staff.post("/api/item")
def api_item():
    barcode = _check_item(_body().get("barcode"))
    found = _st().controller.call(lambda l: _item_lookup(l, barcode))
    if found["in_locker"]:
        exc = CommandError("item_in_locker", "that item is in the locker already")
        exc.params = {"n": found["in_locker"]["compartment"]}
        raise exc
    return jsonify(ok=True, barcode=barcode, announced=found["announced"])


_ISBN_PREFIXES = ("977", "978", "979")


@staff.post("/api/patron")
def api_patron():
    data = _body()
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
    if card.value.isdigit() and len(card.value) == 13 and \
            card.value.startswith(_ISBN_PREFIXES) and _ean_ok(card.value):
        raise CommandError("looks_like_item", "that is an item barcode, not a card")
    patron_hash = _st().hasher().patron(card)
    del card
    size = data.get("size")
    controller = _st().controller
    proposal, here = controller.call(lambda l: (
        l.propose_compartment(size or None, patron_hash),
        sorted({h.compartment for h in l.holds.values()
                if h.patron_hash == patron_hash and h.compartment is not None})))
    token = _st().tokens.put(patron_hash, g.user.name)
    return jsonify(ok=True, patron=token, pseudonym=pseudonym(patron_hash),
                   proposal=proposal, compartments=here)


def _patron_hash(token):
    patron_hash = _st().tokens.get(token, g.user.name)
    if patron_hash is None:
        raise CommandError("patron_expired", "scan the patron's card again")
    return patron_hash


@staff.post("/api/propose")
def api_propose():
    data = _body()
    size = data.get("size") or None
    hold_id = data.get("hold_id")
    patron_hash = _patron_hash(data["patron"]) if data.get("patron") else None

    def propose(locker):
        ph, sz = patron_hash, size
        if hold_id is not None:
            hold = locker.holds.get(hold_id) if isinstance(hold_id, str) else None
            if hold is None:
                raise CommandError("unknown_hold", f"there is no active hold {hold_id!r}")
            ph, sz = hold.patron_hash, size or hold.size
        number = locker.propose_compartment(sz, ph)
        return {"compartment": number,
                "size": locker.compartments[number].size if number else None}
    return jsonify(ok=True, **_st().controller.call(propose))


# -- JSON API: commands -------------------------------------------------------------------
def command(fn):
    """A state-changing API call: JSON body, idempotency key, errors as JSON."""
    @functools.wraps(fn)
    def wrapper():
        data = _body()
        key = data.get("idem")
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise CommandError("bad_request", "idem must be a key of 8-64 letters or digits")

        def run():
            try:
                result = fn(data)
            except CommandError as exc:
                response, status = _command_error(exc)
                return response.get_json(), status
            return dict({"ok": True}, **result), 200
        body, status = _st().idem.run((g.user.name, key), run)
        if body is None:
            return _fail("in_progress", 409)
        return jsonify(body), status
    return wrapper


def _int(value, name):
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        raise CommandError("bad_argument", f"{name} must be a whole number")
    return value


def _reason(data, required=True):
    reason = data.get("reason")
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        if required:
            raise CommandError("reason_required", "a reason is required")
        return None
    if not isinstance(reason, str) or len(reason) > 200:
        raise CommandError("bad_argument", "the reason is text of at most 200 characters")
    return reason.strip()


@staff.post("/api/load")
@command
def api_load(data):
    actor = g.user.name
    draft = data.get("draft")
    hold_id = data.get("hold_id")
    size = data.get("size") or None
    compartment = data.get("compartment")
    if compartment not in (None, ""):
        compartment = _int(compartment, "compartment")
    else:
        compartment = None
    days = data.get("pickup_days")
    if days in (None, ""):
        days = None
    elif isinstance(days, bool) or not isinstance(days, (int, float)):
        raise CommandError("bad_argument", "pickup days must be 1-60")
    fp = data.get("fp") if compartment is not None else None
    items = patron_hash = None
    if hold_id is None:
        if not isinstance(draft, str) or not _KEY_RE.match(draft):
            raise CommandError("bad_request", "draft must be a key of 8-64 letters or digits")
        hold_id = "S-" + draft
        raw = data.get("items")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ITEMS:
            raise CommandError("no_items", "scan at least one item")
        barcodes = []
        for text in raw:
            barcode = _check_item(text)
            if barcode not in barcodes:
                barcodes.append(barcode)
        items = [{"barcode": b} for b in barcodes]
        patron_hash = _patron_hash(data.get("patron"))
    elif not isinstance(hold_id, str) or not _ID_RE.match(hold_id):
        raise CommandError("bad_argument", "hold_id must be a hold id")
    controller = _st().controller

    def load(locker):
        existing = locker.holds.get(hold_id)
        if existing is not None and existing.state.value in ("loading", "ready"):
            return dict(_hold_status(locker, hold_id), replayed=True)
        if compartment is not None:
            _check_fresh(locker, controller.board, compartment, fp)
        for b in (items or []):
            clash = _item_lookup(locker, b["barcode"])["in_locker"]
            if clash:
                exc = CommandError("item_in_locker", "that item is in the locker already")
                exc.params = {"n": clash["compartment"]}
                raise exc
        if existing is not None:   # announced (by central, or back after a jammed door)
            result = locker.load_hold(actor, hold_id=hold_id, size=size,
                                      compartment=compartment, pickup_days=days)
        else:
            result = locker.load_hold(actor, hold_id=hold_id, patron_hash=patron_hash,
                                      items=items, size=size, compartment=compartment,
                                      pickup_days=days)
        return dict(_hold_status(locker, result["hold_id"]), **result)
    return controller.call(load)


def _compartment_arg(data, key="compartment"):
    return _int(data.get(key), key)


@staff.post("/api/open")
@command
def api_open(data):
    number = _compartment_arg(data)
    reason = _reason(data)
    purpose = data.get("purpose") or "staff"
    if purpose not in ("staff", "unloading"):
        raise CommandError("bad_argument", "purpose must be staff or unloading")
    actor, controller = g.user.name, _st().controller

    def run(locker):
        _check_fresh(locker, controller.board, number, data.get("fp"))
        return locker.open_compartment(number, actor, reason, purpose)
    return controller.call(run)


@staff.post("/api/removed")
@command
def api_removed(data):
    number = _compartment_arg(data)
    reason = _reason(data, required=False) or "unloaded"
    actor, controller = g.user.name, _st().controller

    def run(locker):
        _check_fresh(locker, controller.board, number, data.get("fp"))
        return locker.confirm_removed(number, actor, reason)
    return controller.call(run)


@staff.post("/api/cancel")
@command
def api_cancel(data):
    hold_id = data.get("hold_id")
    if not isinstance(hold_id, str) or not _ID_RE.match(hold_id):
        raise CommandError("bad_argument", "hold_id must be a hold id")
    reason = _reason(data)
    actor = g.user.name
    return _st().controller.call(lambda l: l.cancel_hold(hold_id, actor, reason))


@staff.post("/api/move")
@command
def api_move(data):
    hold_id = data.get("hold_id")
    if not isinstance(hold_id, str) or not _ID_RE.match(hold_id):
        raise CommandError("bad_argument", "hold_id must be a hold id")
    to = _compartment_arg(data, "to")
    actor, controller = g.user.name, _st().controller

    def run(locker):
        _check_fresh(locker, controller.board, to, data.get("fp"))
        return locker.move_hold(hold_id, to, actor)
    return controller.call(run)


@staff.post("/api/service")
@command
def api_service(data):
    number = _compartment_arg(data)
    out = data.get("out_of_service")
    if not isinstance(out, bool):
        raise CommandError("bad_argument", "out_of_service must be true or false")
    reason = _reason(data) if out else None
    actor, controller = g.user.name, _st().controller

    def run(locker):
        _check_fresh(locker, controller.board, number, data.get("fp"))
        return locker.set_out_of_service(number, reason, actor)
    return controller.call(run)


@staff.post("/api/alarm/clear")
@command
def api_clear_alarm(data):
    kind = data.get("alarm")
    number = data.get("compartment")
    number = None if number in (None, "", 0) else _int(number, "compartment")
    actor = g.user.name
    return _st().controller.call(lambda l: l.clear_alarm(kind, number, actor))
