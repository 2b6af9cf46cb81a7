"""The test library system (the ACS side), built on pysip2 -- an independent
implementation of SIP2 2.00 -- never on our own client's code.  The tests
and ``bibbox demo --ils sip2|fbs`` run it; pysip2 is the optional extra
``bibbox[ils-demo]`` and is imported only when a server is built.

:class:`Library` holds the fixture data (``demo_library.json`` here, the
tests' own ``tests/library/library.json``) and answers each request model
with a response model.  :class:`SipServer` serves it as plain
SIP2 over TCP or TLS (pysip2's AnyIO server in a thread);
:class:`FbsServer` serves the same handlers in FBS's HTTPS dialect
(``http.server`` in a thread).  :class:`RawServer` answers with scripted
bytes, for replies no library system should send (garbled, wrong checksum,
silent).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bibbox.locker.domain.errors import ConfigError

DATA = Path(__file__).with_name("demo_library.json")
NS = "http://axiell.com/Schema/sip.xsd"
pysip2 = anyio = None            # imported by require_pysip2()


def require_pysip2():
    """Import pysip2 (and its AnyIO) on first use, or raise ConfigError
    saying how to install it."""
    global pysip2, anyio
    if pysip2 is None:
        try:
            import anyio as anyio_module
            import anyio.abc  # noqa: F401
            import anyio.from_thread  # noqa: F401
            import anyio.lowlevel  # noqa: F401
            import pysip2 as pysip2_module
        except ImportError:
            raise ConfigError(["the test library system needs pysip2: "
                               "pip install 'bibbox[ils-demo]'"]) from None
        pysip2, anyio = pysip2_module, anyio_module
    return pysip2


def now18():
    now = datetime.now()
    return now.strftime("%Y%m%d") + "    " + now.strftime("%H%M%S")


class Library:
    """The fixture's patrons, items and holds, and the SIP2 handlers."""

    def __init__(self, path=DATA, *, fbs=False, send_fee_limit=True,
                 repeat_checkout_refused=False, names_hold_patron=False):
        require_pysip2()
        self.data = json.loads(Path(path).read_text(encoding="utf-8"))
        self.fbs, self.send_fee_limit = fbs, send_fee_limit
        # plain SIP2: name the hold's patron (CY) in 10, as Koha does; FBS always does
        self.names_hold_patron = names_hold_patron
        # like many ACSs: a second checkout of an item already lent to the
        # same patron is refused ("already on loan"), not a renewal
        self.repeat_checkout_refused = repeat_checkout_refused
        self.loans = {}                 # item -> patron
        self.checkouts = []             # (item, patron, no_block, transaction date)
        self.checkins = []
        self.requests = []              # command ids seen, in order
        self.lock = threading.Lock()

    def patron(self, ident):
        """(the patron's number, record) for a card; a card whose record says
        ``same_as`` names the same patron as that card (a health card and
        a library card of one person)."""
        ident = ident[3:] if ident.startswith("LN:") else ident
        record = self.data["patrons"].get(ident)
        if record is not None and "same_as" in record:
            ident = record["same_as"]
            record = self.data["patrons"].get(ident)
        return ident, record

    def out_id(self, ident):
        return f"LN:{ident}" if self.fbs else ident

    def listing(self):
        """What the demo's /sim page shows: each patron (name, card, PIN,
        status) and item (barcode, title, the hold's patron)."""
        limit = Decimal(self.data["fee_limit"])
        patrons = []
        for card, entry in self.data["patrons"].items():
            _, p = self.patron(card)
            fee = Decimal(p["fee"])
            status = ("card reported lost" if p.get("lost") else
                      f"fees {fee} kr: blocked" if fee >= limit else
                      f"fees {fee} kr" if fee else "ok")
            patrons.append({"name": p["name"], "card": card, "pin": p["pin"],
                            "status": status, "kind": entry.get("kind", p.get("kind", ""))})
        items = []
        for barcode, item in self.data["items"].items():
            held = self.data["patrons"].get(item.get("hold_patron"), {})
            items.append({"barcode": barcode, "title": item["title"],
                          "hold": held.get("name", "")})
        return {"patrons": patrons, "items": items}

    def hold_patron_of(self, item_id):
        """The patron an item is held for, as a reply names it (or None)."""
        held_for = self.data["items"].get(item_id, {}).get("hold_patron")
        return None if held_for is None else self.out_id(held_for)

    def server(self, **options):
        app = _library_server(self, encoding="utf-8", institution_id=self.data["institution"],
                                library_name="Testbibliotek", **options)
        for route, handler in ((pysip2.LOGIN, self.login), (pysip2.PATRON_STATUS, self.status),
                               (pysip2.PATRON_INFORMATION, self.information),
                               (pysip2.CHECKOUT, self.checkout), (pysip2.CHECKIN, self.checkin),
                               (pysip2.ITEM_INFORMATION, self.item)):
            app.route(route)(handler)
        return app

    # -- handlers (sync: pysip2 runs them in a worker thread) ----------------------------
    def login(self, req, ctx):
        self.requests.append("93")
        want = self.data["login"]
        ok = req.login_user_id == want["user"] and req.login_password == want["password"]
        return pysip2.LoginResponse(ok="1" if ok else "0")

    def _patron_fields(self, req):
        ident, p = self.patron(req.patron_identifier)
        flags = [" "] * 14
        if p is None:
            return ident, p, dict(patron_status="Y" * 4 + " " * 10, valid_patron="N",
                                  personal_name="", valid_patron_password="N")
        if p.get("lost"):
            flags[4] = "Y"
        if Decimal(p["fee"]) >= Decimal(self.data["fee_limit"]):
            flags[11] = "Y"
        return ident, p, dict(patron_status="".join(flags), valid_patron="Y",
                              personal_name=p["name"], currency_type="DKK",
                              fee_amount=p["fee"],
                              valid_patron_password="Y" if req.patron_password == p["pin"]
                              else "N",
                              screen_message=(f"Velkommen {p['name']}",))

    def status(self, req, ctx):
        self.requests.append("23")
        ident, _, fields = self._patron_fields(req)
        return pysip2.PatronStatusResponse(language="009", transaction_date=now18(),
                                           institution_id=req.institution_id,
                                           patron_identifier=self.out_id(ident), **fields)

    def information(self, req, ctx):
        self.requests.append("63")
        ident, p, fields = self._patron_fields(req)
        holds = tuple(p["holds"]) if p else ()
        if self.fbs:
            holds = tuple(f"{i}%20270101%20270115%{self.data['items'][i]['title']}"
                          for i in holds)
        charged = tuple(i for i, who in self.loans.items() if who == ident)
        extra = {"fee_limit": self.data["fee_limit"]} if self.send_fee_limit and p else {}
        return pysip2.PatronInformationResponse(
            language="009", transaction_date=now18(), hold_items_count=f"{len(holds):04d}",
            overdue_items_count="0000", charged_items_count=f"{len(charged):04d}",
            fine_items_count="0000", recall_items_count="0000",
            unavailable_holds_count="0000", institution_id=req.institution_id,
            patron_identifier=self.out_id(ident), hold_items=holds,
            charged_items=charged, **fields, **extra)

    def checkout(self, req, ctx):
        self.requests.append("11")
        ident, p = self.patron(req.patron_identifier)
        item = self.data["items"].get(req.item_identifier)
        with self.lock:
            lent_to = self.loans.get(req.item_identifier)
            ok = p is not None and item is not None and \
                item.get("hold_patron") in (None, ident) and \
                lent_to in (None, ident) and \
                not (self.repeat_checkout_refused and lent_to == ident)
            if ok:
                self.loans[req.item_identifier] = ident
                self.checkouts.append((req.item_identifier, ident, req.no_block == "Y",
                                       req.transaction_date))
        return pysip2.CheckoutResponse(
            ok="1" if ok else "0", renewal_ok="N", magnetic_media="N", desensitize="Y" if ok
            else "N", transaction_date=now18(), institution_id=req.institution_id,
            patron_identifier=self.out_id(ident), item_identifier=req.item_identifier,
            title_identifier=item["title"] if item else "", due_date="20270201" if ok else "",
            screen_message=() if ok else ("Materialet er reserveret til en anden",))

    def checkin(self, req, ctx):
        self.requests.append("09")
        item = self.data["items"].get(req.item_identifier)
        with self.lock:
            self.loans.pop(req.item_identifier, None)
            self.checkins.append((req.item_identifier, req.current_location))
        return pysip2.CheckinResponse(
            ok="1" if item else "0", resensitize="Y", magnetic_media="N", alert="N",
            transaction_date=now18(), institution_id=req.institution_id,
            item_identifier=req.item_identifier, permanent_location="Hovedbiblioteket",
            title_identifier=item["title"] if item else None)

    def item(self, req, ctx):
        self.requests.append("17")
        item = self.data["items"].get(req.item_identifier)
        if item is None:
            return pysip2.ItemInformationResponse(
                circulation_status="01", security_marker="00", fee_type="01",
                transaction_date=now18(), item_identifier=req.item_identifier,
                title_identifier="")
        held = "hold_patron" in item
        return pysip2.ItemInformationResponse(
            circulation_status="08" if held else "03", security_marker="00", fee_type="01",
            transaction_date=now18(), hold_queue_length="1" if held else "0",
            hold_pickup_date=item.get("pickup_date"), item_identifier=req.item_identifier,
            title_identifier=item["title"])


def _library_server_class():
    class LibraryServer(pysip2.SIP2Server):
        """pysip2's server; a checkin reply names the hold's patron (CY)
        when the library says so (pysip2's model has no CY field)."""

        def __init__(self, library, **options):
            super().__init__(**options)
            self.library = library

        async def _write_response(self, stream, state, decoded, response):
            if not (self.library.names_hold_patron and
                    isinstance(response, pysip2.CheckinResponse) and
                    self.library.hold_patron_of(response.item_identifier)):
                return await super()._write_response(stream, state, decoded, response)
            frame = pysip2.encode_message(response, encoding=self.encoding)[:-1]
            frame += f"CY{self.library.hold_patron_of(response.item_identifier)}|".encode(
                self.encoding)
            if decoded.checksum is not None:
                frame += f"AY{decoded.sequence_number}AZ".encode("ascii")
                frame += pysip2.calculate_checksum(frame).encode("ascii")
            await self._send(stream, state, frame + b"\r")
    return LibraryServer


def _library_server(library, **options):
    return _library_server_class()(library, **options)


class SipServer:
    """pysip2's server for ``library`` on 127.0.0.1, in a thread; TLS when
    ``tls_context`` (a server SSLContext) is given.  ``port`` once started."""

    def __init__(self, library, tls_context=None, port=0, **options):
        self.library, self.tls_context = library, tls_context
        self.app = library.server(**options)
        self.port, self._want_port = None, port
        self._ready, self._stop = threading.Event(), None
        self._thread = threading.Thread(target=anyio.run, args=(self._main,), daemon=True)

    async def _main(self):
        from anyio.streams.tls import TLSListener
        listener = await self.app.listen("127.0.0.1", self._want_port, reuse_port=True)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        if self.tls_context is not None:
            listener = TLSListener(listener, self.tls_context, standard_compatible=False)
        self._stop = anyio.Event()
        self._loop_token = anyio.lowlevel.current_token()
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self.app._handle_connection)
            self._ready.set()
            await self._stop.wait()
            tg.cancel_scope.cancel()
        await listener.aclose()

    def start(self):
        self._thread.start()
        assert self._ready.wait(10), "the test SIP2 server did not start"
        return self

    def stop(self):
        if self._stop is not None:
            anyio.from_thread.run_sync(self._stop.set, token=self._loop_token)
        self._thread.join(10)


def _decode_request(text: str, library: Library):
    decoded = pysip2.decode_message((text + "\r").encode("utf-8"), encoding="utf-8")
    return decoded.message


class FbsServer:
    """FBS's HTTPS dialect over the same :class:`Library` handlers.
    ``mode``: ``"ok"``, ``"error"`` (``<error>``) or ``"error-input"``."""

    def __init__(self, library, tls_context=None):
        self.library, self.mode, self.posts = library, "ok", []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append((self.path, self.headers.get("Connection")))
                status, reply = outer.answer(self.path, body)
                data = reply.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.connections = 0
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, path, body):
        root = ET.fromstring(body)
        want = self.library.data["fbs"]
        if root.get("login") != want["login"] or root.get("password") != want["password"]:
            return 401, ""
        if path != f"/rest/sip2/{self.library.data['institution']}":
            return 404, ""
        if self.mode == "error-input":
            return 200, "ERROR INPUT"
        if self.mode == "error":
            return 200, f'<ns2:sip xmlns:ns2="{NS}"><error>Unknown error</error></ns2:sip>'
        text = root.find("request").text
        message = _decode_request(text, self.library)
        handler = {pysip2.PatronStatusRequest: self.library.status,
                   pysip2.PatronInformationRequest: self.library.information,
                   pysip2.CheckoutRequest: self.library.checkout,
                   pysip2.CheckinRequest: self.library.checkin,
                   pysip2.ItemInformationRequest: self.library.item}.get(type(message))
        if isinstance(message, pysip2.SCStatusRequest):
            reply = self.library.server().build_acs_status(message)
        elif handler is None:
            return 200, "ERROR INPUT"
        else:
            reply = handler(message, None)
        frame = pysip2.encode_message(reply, encoding="utf-8").decode("utf-8").rstrip("\r")
        if isinstance(message, pysip2.CheckinRequest):   # FBS names the hold's patron
            held_for = self.library.hold_patron_of(message.item_identifier)
            if held_for:
                frame += f"CY{held_for}|"
        escaped = frame.replace("&", "&amp;").replace("<", "&lt;")
        return 200, f'<ns2:sip xmlns:ns2="{NS}"><response>{escaped}</response></ns2:sip>'

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RawServer:
    """Answers each CR-terminated frame with the next of ``script`` (bytes,
    or None: say nothing).  Records what it received."""

    def __init__(self, script):
        self.script, self.received = list(script), []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r" in buffer:
                    frame, buffer = buffer.split(b"\r", 1)
                    self.received.append(frame + b"\r")
                    answer = self.script.pop(0) if self.script else None
                    if answer is not None:
                        conn.sendall(answer)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.sock.close()


def make_ca(directory: Path):
    """A test CA and a server certificate for 127.0.0.1/localhost, made with
    ``openssl``; returns ``(ca_file, cert_file, key_file)``.  Raises
    ConfigError when there is no ``openssl``."""
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        raise ConfigError(["the FBS test library system serves HTTPS and needs "
                           "'openssl' to make its throwaway certificate"])
    d = Path(directory)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=Bibbox test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "server.pem", d / "server.key"


def server_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context

