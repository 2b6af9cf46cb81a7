"""The Flask application: kiosk, simulator and staff blueprints.

:func:`create_app` takes everything it needs; nothing is global.  The
kiosk answers on loopback only (checked per request as well as by the
address it is served on); the ``/sim`` surface exists only in simulation.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask, jsonify, request

from bibbox.locker.domain.errors import BibboxError, CommandError

log = logging.getLogger("bibbox.web")
MAX_BODY_BYTES = 64 * 1024


def is_loopback(address):
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def json_body(required=()):
    """The request's JSON object, or a CommandError naming what is wrong."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise CommandError("bad_request", "the body must be a JSON object")
    missing = [k for k in required if k not in data]
    if missing:
        raise CommandError("bad_request", "missing field(s): " + ", ".join(missing))
    return data


def create_app(*, controller, cfg, simulator=None, parts=("kiosk", "sim")):
    """Build the app.  ``parts`` names the blueprints to mount: ``kiosk``
    (+ its API), ``sim`` (only with a simulator; refused otherwise) and
    ``staff``."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["bibbox"] = {"controller": controller, "cfg": cfg,
                                "simulator": simulator}

    @app.errorhandler(CommandError)
    def command_error(exc):
        status = 404 if exc.code.startswith("unknown") else 400
        if exc.code == "timeout":
            status = 503
        return jsonify(ok=False, error=exc.code, message=str(exc)), status

    @app.errorhandler(BibboxError)
    def bibbox_error(exc):
        log.error("request failed: %s", exc)
        return jsonify(ok=False, error="internal", message=str(exc)), 500

    @app.errorhandler(413)
    def too_large(exc):
        return jsonify(ok=False, error="too_large", message="request too large"), 413

    @app.after_request
    def headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    if "kiosk" in parts:
        from bibbox.web.kiosk import kiosk
        app.register_blueprint(kiosk)
    if "sim" in parts:
        from bibbox.web.sim import sim_blueprint
        app.register_blueprint(sim_blueprint(simulator))
    if "staff" in parts:
        from bibbox.web.staff import staff  # issue 3
        app.register_blueprint(staff)
    return app
