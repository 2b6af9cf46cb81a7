"""The staff blueprint itself and what every part of the page shares: the
per-app state, texts and languages, the CSRF token, errors as JSON.

Routes are refused by default: an endpoint is public only if listed in
``PUBLIC`` and admin-only if listed in ``ADMIN`` (the gate in
:mod:`bibbox.web.staff.auth` enforces both).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os

from flask import Blueprint, current_app, g, jsonify, make_response, request

from bibbox.locker.app.staff import StaffService
from bibbox.locker.domain.errors import CommandError
from bibbox.web.staff.memory import Idempotency, PatronTokens, PollSlots

staff = Blueprint("staff", __name__, url_prefix="/staff")

PUBLIC = {"staff.login", "staff.login_api", "staff.login_token", "staff.set_language"}
ADMIN = {"staff.accounts", "staff.account_add", "staff.account_remove",
         "staff.account_unlock", "staff.account_end_sessions"}

LANGS = ("da", "en")
WEB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(WEB_DIR, "static", "staff.i18n.json"), encoding="utf-8") as _fh:
    STRINGS = json.load(_fh)
try:
    from zoneinfo import ZoneInfo
    LOCAL_TZ = ZoneInfo("Europe/Copenhagen")
except Exception:   # no tz database: show UTC
    LOCAL_TZ = dt.timezone.utc


# Staff long polls waiting at once, in all and per session: waitress serves
# with 8 worker threads (bibbox.web.serving), a waiting poll holds one, and
# the kiosk and the staff pages must keep the rest.
LONG_POLLS_TOTAL = 4
LONG_POLLS_PER_SESSION = 2


# -- per-app state -----------------------------------------------------------------
class StaffState:
    """The staff page's state in one app: the configuration, the staff use
    cases, the accounts and the page's secret (both made by the daemon and
    handed to ``create_app``), and what it keeps in memory."""

    def __init__(self, app):
        ext = app.extensions["bibbox"]
        self.cfg = ext["cfg"]
        self.service = StaffService(ext["controller"])
        self.accounts = ext["staff_accounts"]
        self.secret = ext["staff_secret"]
        self.tokens = PatronTokens()
        self.idem = Idempotency()
        self.polls = PollSlots(LONG_POLLS_TOTAL, LONG_POLLS_PER_SESSION)
        self.view_cache = None      # (state version, JSON text, view)


@staff.record_once
def _setup(state):
    app = state.app
    st = StaffState(app)
    app.extensions["bibbox"]["staff"] = st
    if not app.secret_key:
        app.secret_key = st.secret


def st() -> StaffState:
    return current_app.extensions["bibbox"]["staff"]


def service() -> StaffService:
    return st().service


# -- language ----------------------------------------------------------------------
def request_language():
    lang = request.cookies.get("bibbox-lang")
    if lang in LANGS:
        return lang
    default = st().cfg.locker.language
    return default if default in LANGS else "da"


def t(key, lang=None, **params):
    """The text ``key`` in the page's language (English, else the key)."""
    lang = lang or getattr(g, "lang", None) or "da"
    text = STRINGS.get(lang, {}).get(key) or STRINGS["en"].get(key) or key
    if params:
        try:
            text = text.format(**params)
        except (KeyError, IndexError, ValueError):
            pass
    return text


def local_time(ts):
    return dt.datetime.fromtimestamp(ts, LOCAL_TZ)


@staff.app_template_filter("staff_time")
def _fmt_time(ts):
    if ts is None:
        return ""
    return local_time(ts).strftime("%Y-%m-%d %H:%M:%S")


@staff.context_processor
def _template_globals():
    user = getattr(g, "user", None)
    return {"t": t, "lang": getattr(g, "lang", "da"), "user": user,
            "csrf": csrf_token(user.id) if user else "",
            "locker_name": st().cfg.locker.name, "locker_id": st().cfg.locker.id}


# -- tokens ----------------------------------------------------------------------------
def csrf_token(session_id):
    """The CSRF token of a session: HMAC of its id with the page's secret."""
    return hmac.new(st().secret, b"csrf\x00" + session_id.encode(),
                    hashlib.sha256).hexdigest()


# -- answers -----------------------------------------------------------------------------
def is_api():
    return request.path.startswith("/staff/api/") or request.path.endswith(".csv")


def fail(code, status=400, message=None, **params):
    """A refusal: JSON for the API and every POST, plain text for a page."""
    body = {"ok": False, "error": code,
            "message": message or t("err_" + code, **params), "params": params}
    if is_api() or request.is_json or request.method != "GET":
        return jsonify(body), status
    return make_response(message or t("err_" + code, **params), status)


@staff.errorhandler(CommandError)
def command_error(exc):
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


def audit(actor, action, *, reason="", detail="", compartment=None):
    """Write one audit row (never fails a request)."""
    service().record_audit(actor, action, reason=reason, detail=detail,
                           compartment=compartment)
