"""The simulator's control surface, ``/sim``: only in simulation.

On a real locker every ``/sim`` URL answers 404 with a clear message, so a
stray script cannot pretend to open doors.  It holds the demo patrons' card
numbers and PINs by design (they are made up) and is excluded from the
privacy scan for that reason.
"""

from flask import Blueprint, current_app, jsonify, render_template, request

from bibbox.locker.domain.errors import CommandError

from bibbox.web.http import is_loopback, json_body


def sim_blueprint(simulator):
    bp = Blueprint("sim", __name__, url_prefix="/sim")

    @bp.before_request
    def guard():
        if simulator is None:
            return jsonify(ok=False, error="not_simulated",
                           message="this is a real locker: /sim is off"), 404
        if not is_loopback(request.remote_addr):
            return jsonify(ok=False, error="forbidden",
                           message="/sim answers on loopback only"), 403
        return None

    def door_number(n):
        if n not in simulator.numbers:
            raise CommandError("unknown_compartment", f"no compartment {n}")
        return n

    def flag(data, key):
        if not isinstance(data.get(key), bool):
            raise CommandError("bad_request", f"'{key}' must be true or false")
        return data[key]

    @bp.get("")
    @bp.get("/")
    def page():
        return render_template("sim.html")

    @bp.get("/state")
    def state():
        """The simulated hardware, plus which holds sit in which compartment
        (``holds``: number -> pickup numbers and states, from the locker)."""
        return jsonify({**simulator.state(), "holds": holds_by_compartment()})

    def holds_by_compartment():
        controller = current_app.extensions["bibbox"]["controller"]

        def read(locker):
            placed = {}
            for hold in sorted(locker.holds.values(), key=lambda h: h.pickup_number):
                if hold.compartment is not None:
                    placed.setdefault(str(hold.compartment), []).append(
                        {"pickup": hold.pickup_number, "state": hold.state.value,
                         "items": len(hold.items)})
            return placed
        return controller.call(read)

    @bp.post("/doors/<int:n>")
    def door(n):
        opened = flag(json_body(required=("open",)), "open")
        moved = simulator.set_door(door_number(n), opened)
        return jsonify(ok=True, moved=moved, door=simulator.state()["doors"][str(n)])

    @bp.post("/doors/<int:n>/jam")
    def jam(n):
        jammed = flag(json_body(required=("jammed",)), "jammed")   # the body first
        simulator.set_jammed(door_number(n), jammed)
        return jsonify(ok=True, door=simulator.state()["doors"][str(n)])

    @bp.post("/doors/<int:n>/item")
    def item(n):
        present = flag(json_body(required=("present",)), "present")
        if not simulator.set_item(door_number(n), present):
            raise CommandError("no_item_sensor", f"compartment {n} has no item sensor")
        return jsonify(ok=True, door=simulator.state()["doors"][str(n)])

    @bp.post("/buses/<name>/boards/<int:board>")
    def board(name, board):
        silent = flag(json_body(required=("silent",)), "silent")
        if name not in simulator.buses or board not in simulator.buses[name].boards:
            raise CommandError("unknown_board", f"no board {board} on bus {name!r}")
        simulator.set_board_silent(name, board, silent)
        return jsonify(ok=True, bus=simulator.state()["buses"][name])

    @bp.post("/card")
    def card():
        data = json_body(required=("data",))
        if not isinstance(data["data"], str) or len(data["data"]) > 512:
            raise CommandError("bad_request", "'data' must be text of at most 512 characters")
        try:
            raw = data["data"].encode("latin-1")
        except UnicodeEncodeError:
            raise CommandError("bad_request", "'data' must be bytes 0-255") from None
        simulator.write_card(raw)
        return jsonify(ok=True, bytes=len(raw))

    @bp.post("/load")
    def load():
        """Staff loading without the staff login, for the simulated locker only
        (fault tests, demos): ``{"card": "<demo card>", "items": [{"barcode",
        "title"}], "hold_id"?, "size"?, "compartment"?}``.  Opens the
        compartment like the staff page does; the hold is ready once its door
        has been opened and closed (``/sim/doors/<n>``)."""
        from flask import current_app

        from bibbox.locker.domain.errors import CardFormatError
        from bibbox.locker.domain.identity import CardNumber
        data = json_body(required=("card", "items"))
        try:
            card = CardNumber.parse(str(data["card"]))
        except CardFormatError:
            raise CommandError("bad_request", "'card' is not a card number") from None
        options = {k: data[k] for k in ("hold_id", "size", "compartment") if k in data}
        controller = current_app.extensions["bibbox"]["controller"]
        result = controller.call(lambda locker: locker.load_hold(
            "sim", patron_hash=locker.hasher.patron(card), items=data["items"], **options))
        return jsonify(ok=True, **result)

    # -- the demo's test library system (bibbox demo --ils) ------------------------------
    @bp.get("/library")
    def library():
        """The test library system's made-up patrons and items; ``present``
        false (not a 404: the page asks on every load) without one."""
        listing = getattr(simulator, "test_library", None)
        if not listing:
            return jsonify(ok=True, present=False)
        return jsonify(ok=True, present=True, **listing)

    @bp.post("/library/load")
    def library_load():
        """Load by item, as staff scanning ``{"barcode"}``: the library system
        names the hold's patron, the hold is announced and its compartment
        opens; ready once the door has been opened and closed."""
        from flask import current_app
        barcode = json_body(required=("barcode",))["barcode"]
        ext = current_app.extensions["bibbox"]
        loading = ext.get("library_loading")
        if loading is None:
            raise CommandError("no_library", "this locker has no library system")
        if not isinstance(barcode, str) or not 1 <= len(barcode) <= 64:
            raise CommandError("bad_request", "'barcode' must be an item barcode")
        hold_id = loading.announce_item(barcode)
        if hold_id is None:
            raise CommandError("no_hold_patron", "the library system names no patron for "
                               "this item: load it on the staff page with the card")
        result = ext["controller"].call(lambda locker: locker.load_hold("sim", hold_id=hold_id))
        return jsonify(ok=True, **result)

    return bp
