"""The Flask application: kiosk, simulator and staff blueprints.

:func:`create_app` takes everything it needs; nothing is global.  The
kiosk answers on loopback only (checked per request as well as by the
address it is served on); the ``/sim`` surface exists only in simulation.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify

from bibbox.locker.domain.errors import BibboxError, CommandError
from bibbox.web.http import MAX_BODY_BYTES

log = logging.getLogger("bibbox.web")
__all__ = ["MAX_BODY_BYTES", "create_app"]


def create_app(*, controller, cfg, simulator=None, parts=("kiosk", "sim"),
               staff_accounts=None, staff_secret=None):
    """Build the app.  ``parts`` names the blueprints to mount: ``kiosk``
    (+ its API), ``sim`` (only with a simulator; refused otherwise) and
    ``staff``, which needs ``staff_accounts`` (a
    :class:`bibbox.web.staff.accounts.Accounts`) and ``staff_secret`` (its
    CSRF and session key, at least 16 bytes), both made by the daemon."""
    if "staff" in parts and (staff_accounts is None or not staff_secret):
        raise ValueError("the staff page needs staff_accounts and staff_secret")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["bibbox"] = {"controller": controller, "cfg": cfg,
                                "simulator": simulator, "staff_accounts": staff_accounts,
                                "staff_secret": staff_secret}

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

    @app.get("/favicon.ico")
    def favicon():
        """The locker icon, so a browser's automatic request finds it."""
        return app.send_static_file("favicon.svg")

    if "kiosk" in parts:
        from bibbox.web.kiosk import kiosk
        app.register_blueprint(kiosk)
    if "sim" in parts:
        from bibbox.web.sim import sim_blueprint
        app.register_blueprint(sim_blueprint(simulator))
    if "staff" in parts:
        from bibbox.web.staff import staff
        app.register_blueprint(staff)
    return app
