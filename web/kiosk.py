"""The patron's touch-screen kiosk: one page and a small JSON API.

- ``GET /``: the page.
- ``GET /api/kiosk?version=N``: the kiosk view, long-polled: answers as soon
  as it differs from version N, or after ``LONG_POLL_S``.
- ``POST /api/kiosk/pin`` ``{"pin": "1234"}``: the PIN typed on the pad.
- ``POST /api/kiosk/action`` ``{"action": "cancel"|"extend"|"pickup_number"|"pin_typed"}``
  (``pickup_number``: the idle screen's way in without the card; refused
  unless ``verifier.pickup_number_with_pin`` is on; ``pin_typed``: the PIN
  is typed in full and OK not yet pressed, so a lock bus can keep its wire
  free for the unlock; it carries no digits).
- ``POST /api/kiosk/number`` ``{"number": "4711"}``: the pickup number.

Loopback only.  The PIN is handed to the controller and never logged.

The page's texts are the catalogues in ``web/static/i18n/<code>.json``, one
per language (``_name``: the language named in itself, ``_dir``: ``ltr`` or
``rtl``); every catalogue in that folder is offered, so a library adds a
language by adding a file.  The page embeds them as JSON data.
"""

import json
import os

from flask import Blueprint, current_app, jsonify, render_template, request

from bibbox.locker.domain import free_text
from bibbox.locker.domain.cabinet import front
from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.messages import (KIOSK_ACTIONS, KioskAction, PickupCodeEntered,
                                           PickupNumberEntered, PinEntered)
from bibbox.locker.domain.pickup_numbers import MAX_NUMBER_LEN

from bibbox.web.http import is_loopback, json_body

LONG_POLL_S = 20.0
CATALOGUE_DIR = os.path.join(os.path.dirname(__file__), "static", "i18n")
FIRST_LANGUAGES = ("da", "en")      # then the others by code
kiosk = Blueprint("kiosk", __name__)


def catalogues():
    """Every kiosk catalogue: ``{code: {key: text}}``, Danish and English
    first.  Read on each page load, so a new file needs no restart."""
    codes = sorted((name[:-5] for name in os.listdir(CATALOGUE_DIR)
                    if name.endswith(".json")),
                   key=lambda c: (c not in FIRST_LANGUAGES,
                                  FIRST_LANGUAGES.index(c) if c in FIRST_LANGUAGES else 0, c))
    out = {}
    for code in codes:
        with open(os.path.join(CATALOGUE_DIR, code + ".json"), encoding="utf-8") as fh:
            out[code] = json.load(fh)
    return out


def help_contact(cfg):
    """The library's phone number and opening hours for the help box, as
    free text (masked if CPR-shaped, normalised)."""
    return {key: free_text.clean(getattr(cfg.locker, key), f"locker.{key}",
                                 policy=free_text.MASK_IT, max_len=200, required=False)
            for key in ("help_phone", "help_hours")}


def _controller():
    return current_app.extensions["bibbox"]["controller"]


@kiosk.before_request
def loopback_only():
    if not is_loopback(request.remote_addr):
        return jsonify(ok=False, error="forbidden",
                       message="the kiosk answers on loopback only"), 403
    return None


@kiosk.get("/")
def page():
    cfg = current_app.extensions["bibbox"]["cfg"]
    texts = catalogues()
    language = cfg.locker.language if cfg.locker.language in texts else "da"
    return render_template("kiosk.html", language=language,
                           direction=texts[language].get("_dir", "ltr"),
                           locker_name=cfg.locker.name,
                           simulated=cfg.locker.simulated,
                           languages=[(code, t.get("_name", code), t.get("_dir", "ltr"))
                                      for code, t in texts.items()],
                           catalogues=texts, help=help_contact(cfg),
                           front=front(cfg.compartments))


@kiosk.get("/api/kiosk")
def view():
    board = _controller().board
    version = request.args.get("version", type=int)
    if version is None:
        return jsonify(board.get("kiosk"))
    wait = min(request.args.get("wait", LONG_POLL_S, type=float), LONG_POLL_S)
    return jsonify(board.wait_newer("kiosk", version, timeout=max(0.0, wait)))


@kiosk.post("/api/kiosk/pin")
def pin():
    data = json_body(required=("pin",))
    text = data["pin"]
    if not isinstance(text, str) or len(text) > 16:
        raise CommandError("bad_pin", "the PIN must be text of at most 16 characters")
    _controller().post(PinEntered(text))
    return jsonify(ok=True)


@kiosk.post("/api/kiosk/code")
def pickup_code():
    """The pickup code from the patron's message (central offline)."""
    data = json_body(required=("code",))
    if not isinstance(data["code"], str) or len(data["code"]) > 16:
        raise CommandError("bad_code", "the pickup code must be text of at most 16 characters")
    _controller().post(PickupCodeEntered(data["code"]))
    return jsonify(ok=True)


def _pickup_number_on():
    if not current_app.extensions["bibbox"]["cfg"].verifier.pickup_number_with_pin:
        raise CommandError("pickup_number_off",
                           "pickup by number is not turned on at this locker")


@kiosk.post("/api/kiosk/number")
def pickup_number():
    """The pickup number from the patron's message (pickup without the card)."""
    data = json_body(required=("number",))
    _pickup_number_on()
    if not isinstance(data["number"], str) or len(data["number"]) > MAX_NUMBER_LEN:
        raise CommandError("bad_number", "the pickup number must be text of at most "
                           f"{MAX_NUMBER_LEN} characters")
    _controller().post(PickupNumberEntered(data["number"]))
    return jsonify(ok=True)


@kiosk.post("/api/kiosk/action")
def action():
    data = json_body(required=("action",))
    if data["action"] not in KIOSK_ACTIONS:
        raise CommandError("bad_action", "action must be one of " +
                           ", ".join(repr(a) for a in KIOSK_ACTIONS))
    if data["action"] == "pickup_number":
        _pickup_number_on()
    _controller().post(KioskAction(data["action"]))
    return jsonify(ok=True)


@kiosk.get("/api/status")
def status():
    """The running daemon's live state for an operator (``bibbox status``):
    compartments, alarms, outbox depth, broker and reader health."""
    ext = current_app.extensions["bibbox"]
    daemon = ext.get("daemon")
    controller = _controller()
    depth = controller.call(lambda locker: locker.store.outbox_depth(), timeout=5)
    return jsonify(state=controller.board.get("state"), outbox_depth=depth,
                   health=daemon.health() if daemon else None)
