"""Configuration checks that span fields and sections (see
:func:`bibbox.locker.domain.config.parse`): duplicate numbers, pin clashes,
cabinet positions, the proxy, help texts and the library system.  Each check
appends every problem it finds to ``problems``; none raises."""

from __future__ import annotations

import ipaddress

from bibbox.locker.domain import free_text
from bibbox.locker.domain.cabinet import position_problems
from bibbox.locker.domain.errors import CommandError


# Verifiers that name the patron by card number to check a PIN (library systems).
PIN_NEEDS_CARD = ("sip2", "fbs")
PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                 "x-forwarded-port", "forwarded")


def _check_proxy(web, problems):
    """web.trusted_proxy is one IP address (or ""); its headers are known ones."""
    if web is None:
        return
    if web.trusted_proxy:
        try:
            ipaddress.ip_address(web.trusted_proxy)
        except ValueError:
            problems.append(f"web.trusted_proxy: {web.trusted_proxy!r} is not an IP address")
    headers = web.trusted_proxy_headers
    if not all(isinstance(h, str) and h.lower() in PROXY_HEADERS for h in headers):
        problems.append("web.trusted_proxy_headers: each must be one of "
                        + ", ".join(PROXY_HEADERS))
    elif "forwarded" in [h.lower() for h in headers] and len(headers) > 1:
        problems.append("web.trusted_proxy_headers: 'forwarded' cannot be mixed with "
                        "X-Forwarded-* headers")


def cross_check(sections, compartments, problems):
    """Checks that span fields: duplicates, sizes, pin clashes."""
    holds, keypad, reader = (sections.get(n) for n in ("holds", "keypad", "reader"))
    sizes = list(holds.sizes) if holds else []
    if holds is not None:
        if not sizes or not all(isinstance(s, str) and s for s in sizes):
            problems.append("holds.sizes: must be a non-empty list of names")
        elif len(set(sizes)) != len(sizes):
            problems.append("holds.sizes: a size is listed twice")
    _check_proxy(sections.get("web"), problems)
    _check_help_texts(sections.get("locker"), problems)
    printer = sections.get("printer")
    if printer is not None and printer.enabled and not printer.port:
        problems.append("printer.port: an enabled printer needs its port")
    pins = {}

    def claim(pin, owner):
        if pin in pins:
            problems.append(f"{owner}: GPIO {pin} is already used by {pins[pin]}")
        else:
            pins[pin] = owner

    numbers = {}
    for i, c in enumerate(compartments):
        path = f"compartments[{i}]"
        number = c.get("number")
        if number is not None and number in numbers:
            problems.append(f"{path}.number: compartment {number} is already "
                            f"defined at {numbers[number]}")
        if number is not None:
            numbers.setdefault(number, path)
        if sizes and "size" in c and c["size"] not in sizes:
            problems.append(f"{path}.size: {c['size']!r} is not one of holds.sizes "
                            f"({', '.join(sizes)})")
        for key in ("relay_pin", "door_pin", "item_pin"):
            if key in c:
                claim(c[key], f"{path}.{key}")
    problems.extend(position_problems(compartments))
    if keypad is not None and keypad.kind == "matrix":
        for kind in ("row_pins", "col_pins"):
            pin_list = getattr(keypad, kind)
            if not pin_list:
                problems.append(f"keypad.{kind}: a matrix keypad needs pins")
            for j, pin in enumerate(pin_list):
                if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= 27:
                    problems.append(f"keypad.{kind}[{j}]: expected a GPIO number 0..27")
                else:
                    claim(pin, f"keypad.{kind}[{j}]")
    if keypad is not None and keypad.kind == "serial" and not keypad.port:
        problems.append("keypad.port: a serial keypad needs a port")
    if reader is not None and reader.enabled and reader.port.startswith("/dev/serial0"):
        for pin, name in ((14, "UART TX"), (15, "UART RX")):
            claim(pin, f"reader.port ({name})")
    _check_library(sections.get("verifier"), sections.get("library"), problems)
    _check_pickup_number(sections.get("verifier"), problems)
    if reader is not None and reader.framing == "barcode" and not reader.suffix:
        problems.append("reader.suffix: a barcode reader needs a line terminator")


def _check_help_texts(locker, problems):
    """The kiosk's help texts are free text shown outdoors: no CPR numbers."""
    for key in ("help_phone", "help_hours"):
        try:
            free_text.clean(getattr(locker, key, ""), f"locker.{key}",
                            policy=free_text.REFUSE, max_len=200, required=False)
        except CommandError as exc:
            problems.append(f"locker.{key}: {exc}")


def _check_pickup_number(verifier, problems):
    """Pickup by number + PIN needs a verifier that checks a PIN by the
    patron hash alone: a library system names the patron by card number,
    which the locker never keeps."""
    if verifier is not None and verifier.pickup_number_with_pin and \
            verifier.kind in PIN_NEEDS_CARD:
        problems.append(f"verifier.pickup_number_with_pin: verifier.kind = {verifier.kind!r} "
                        "checks a PIN only with the card number, which the locker never "
                        "keeps; pickup by number + PIN needs kind 'local' or 'central'")


def _check_library(verifier, library, problems):
    """A library-system verifier needs its host and institution, and card
    numbers go only inside TLS unless the network is marked trusted."""
    if verifier is None or library is None or verifier.kind not in ("sip2", "fbs"):
        return
    if not library.host:
        problems.append(f"library.host: verifier.kind = {verifier.kind!r} needs the "
                        "library system's host")
    if not library.institution:
        problems.append("library.institution: needed (SIP2 AO; for FBS the agency)")
    if not library.tls and not library.trusted_network:
        problems.append("library.tls: card numbers and PINs go only inside TLS; set "
                        "tls = true, or trusted_network = true on a trusted local network")
