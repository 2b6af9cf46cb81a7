"""Who may use the staff page: the gate in front of every request, the
session cookie, CSRF, logins (with lockout), logout and the language.

A server-side session (see :mod:`bibbox.web.staff.accounts`) whose random
id travels in an HttpOnly, SameSite=Strict cookie, ``Secure`` except for
plain http from loopback on a *simulated* locker (the demo).  Every POST
needs the CSRF token (form field ``csrf`` or header ``X-CSRF-Token``, HMAC
of the session id): 400 without.  The login form has its own
double-submit token.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets

from flask import (abort, g, jsonify, make_response, redirect, render_template, request,
                   url_for)

from bibbox.web.http import is_loopback, json_body
from bibbox.web.staff.accounts import DEVICE_COOKIE_PREFIX, NAME_RE
from bibbox.web.staff.common import (ADMIN, LANGS, PUBLIC, audit, csrf_token, fail, is_api,
                                     request_language, st, staff, t)


# -- transport security -----------------------------------------------------------------
# Behind the reverse proxy (config ``web.trusted_proxy``), waitress itself puts
# the client's address and scheme into REMOTE_ADDR and wsgi.url_scheme
# (bibbox.web.serving.proxy_settings); from anyone else it drops the
# X-Forwarded-* headers.  So the request's own address and scheme are the
# client's: this module reads no forwarding header.
def is_https():
    return request.is_secure


def cookie_secure():
    """Secure, except plain http from loopback on a simulated locker."""
    if is_https():
        return True
    return not (st().cfg.locker.simulated and is_loopback(request.remote_addr))


def _cookie_name():
    return "__Host-bibbox-staff" if cookie_secure() else "bibbox-staff"


def client_address():
    """The staff device's address (the proxy's client, behind the proxy)."""
    return (request.remote_addr or "")[:64]


def _login_token(nonce):
    return hmac.new(st().secret, b"login\x00" + nonce.encode(),
                    hashlib.sha256).hexdigest()


def _same(sent, expected):
    """Constant-time comparison that takes any text a client may send."""
    return bool(sent) and hmac.compare_digest(sent.encode("utf-8", "replace"),
                                              expected.encode("ascii"))


def _sent_csrf():
    return request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""


# -- the gate: every request -----------------------------------------------------------
@staff.before_request
def _gate():
    g.lang = request_language()
    g.user = None
    sid = request.cookies.get(_cookie_name())
    if sid:
        g.user = st().accounts.session(sid)
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC:
        return None
    if g.user is None:
        if is_api() or request.method != "GET":
            return fail("login_required", 401)
        return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    if endpoint in ADMIN and g.user.role != "admin":
        if is_api():
            return fail("forbidden", 403)
        abort(403)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if not _same(_sent_csrf(), csrf_token(g.user.id)):
            return fail("csrf", 400)
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
    if is_https():
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


# -- cookies ------------------------------------------------------------------------------
def _set_session_cookie(response, session_id):
    response.set_cookie(_cookie_name(), session_id, httponly=True, samesite="Strict",
                        secure=cookie_secure(), path="/")


def _clear_session_cookie(response):
    for name in ("__Host-bibbox-staff", "bibbox-staff"):
        if name in request.cookies:
            response.delete_cookie(name, path="/", secure=name.startswith("__Host-"),
                                   httponly=True, samesite="Strict")


def _set_login_cookie(response, nonce):
    response.set_cookie("bibbox-login", nonce, httponly=True, samesite="Strict",
                        secure=cookie_secure(), path="/staff", max_age=3600)


def _device_cookie_name(name):
    return DEVICE_COOKIE_PREFIX + name


def _device_cookie(name):
    """The device cookie this browser holds for account ``name``, if any."""
    name = name.strip().lower() if isinstance(name, str) else ""
    return request.cookies.get(_device_cookie_name(name)) if NAME_RE.match(name) else None


def _set_device_cookie(response, name):
    """Make this browser a known device of account ``name`` (see
    :mod:`bibbox.web.staff.accounts`): kept a year, sent to /staff only."""
    token = request.cookies.get(_device_cookie_name(name))
    if not st().accounts.device_known(name, token):
        token = st().accounts.device_token(name)
    response.set_cookie(_device_cookie_name(name), token, httponly=True, samesite="Strict",
                        secure=cookie_secure(), path="/staff", max_age=365 * 86400)


def _check_login_token(sent):
    nonce = request.cookies.get("bibbox-login", "")
    return bool(nonce) and _same(sent, _login_token(nonce))


def _safe_next(target):
    if isinstance(target, str) and target.startswith("/staff") and "//" not in target \
            and "\\" not in target and "\n" not in target and "\r" not in target:
        return target
    return url_for("staff.overview")


# -- logging in ---------------------------------------------------------------------------
def _do_login(name, password):
    """(LoginResult, response-status).  Audits every attempt."""
    accounts = st().accounts
    address = client_address()
    old = request.cookies.get(_cookie_name())
    result = accounts.login(name, password, address, device=_device_cookie(name))
    if result.session is not None:
        if old:
            accounts.logout(old)        # a new id at every login
        audit(result.session.name, "login", reason="password", detail=f"from {address}")
        return result, 200
    who = result.account or "anonymous"
    detail = f"from {address}" + ("" if result.account else "; unknown account")
    audit(who, "login_locked" if result.code == "locked" else "login_failed", detail=detail)
    return result, (429 if result.code == "locked" else 401)


def _login_message(result):
    if result.code == "locked":
        return t("err_locked", minutes=max(1, math.ceil(result.retry_after_s / 60)))
    return t("err_bad_credentials")


@staff.route("/login", methods=["GET", "POST"])
def login():
    message, status = "", 200
    name = ""
    if request.method == "POST":
        if not _check_login_token(request.form.get("csrf", "")):
            return fail("csrf", 400)
        name = request.form.get("name", "")[:64]
        result, status = _do_login(name, request.form.get("password", ""))
        if result.session is not None:
            response = redirect(_safe_next(request.form.get("next")))
            _set_session_cookie(response, result.session.id)
            _set_device_cookie(response, result.session.name)
            return response
        message = _login_message(result)
    insecure = (not is_https() and cookie_secure()
                and (request.host.split(":")[0] not in ("localhost", "127.0.0.1", "[::1]")))
    nonce = secrets.token_urlsafe(24)
    response = make_response(render_template(
        "staff/login.html", page="login", message=message, name=name,
        next=_safe_next(request.values.get("next")), insecure=insecure,
        no_accounts=st().accounts.count() == 0, state_dir=st().cfg.locker.state_dir,
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
        return fail("csrf", 400)
    data = json_body()
    result, status = _do_login(str(data.get("name", ""))[:64], data.get("password", ""))
    if result.session is None:
        return jsonify(ok=False, error=result.code, message=_login_message(result)), status
    response = jsonify(ok=True, name=result.session.name, role=result.session.role,
                       csrf=csrf_token(result.session.id))
    _set_session_cookie(response, result.session.id)
    _set_device_cookie(response, result.session.name)
    return response


@staff.post("/logout")
def logout():
    st().accounts.logout(g.user.id)
    audit(g.user.name, "logout", detail=f"from {client_address()}")
    response = redirect(url_for("staff.login"))
    _clear_session_cookie(response)
    return response


@staff.get("/lang/<code>")
def set_language(code):
    if code not in LANGS:
        abort(404)
    response = redirect(_safe_next(request.args.get("next")))
    response.set_cookie("bibbox-lang", code, samesite="Strict", secure=cookie_secure(),
                        path="/staff", max_age=365 * 86400)
    return response


@staff.get("/api/me")
def me():
    return jsonify(ok=True, name=g.user.name, role=g.user.role, csrf=csrf_token(g.user.id))
