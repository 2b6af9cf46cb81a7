"""Checking what staff and central send before it changes anything.

Every refusal is a :class:`CommandError` with a stable ``code`` and a
message for people; nothing here changes state.
"""

from __future__ import annotations

import random

from bibbox.locker.domain import free_text
from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.model import Hold, HoldState, Item
from bibbox.locker.domain.patterns import HEX64_RE as HASH_RE
from bibbox.locker.domain.patterns import HOLD_ID_RE as ID_RE
from bibbox.locker.domain.patterns import MAX_ITEMS


def text(value, name, max_len=200, required=True):
    """``value`` as stripped text of 1..``max_len`` characters."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_len:
        raise CommandError("bad_argument",
                           f"{name} must be text of 1-{max_len} characters")
    return value.strip()


def free_text_field(value, name, max_len=200, required=True):
    """A field people write in (a reason, a title, who did it): through the
    one sanitiser, CPR-shaped runs masked.  The staff page refuses them
    before they get here, with a message saying why; text from central or
    the library system arrives here as it was sent."""
    return free_text.clean(value, name, policy=free_text.MASK_IT, max_len=max_len,
                           required=required)


def compartment_or_error(compartments, number):
    """The compartment ``number`` (an int, not a bool) of ``compartments``."""
    if isinstance(number, bool) or not isinstance(number, int) or number not in compartments:
        raise CommandError("unknown_compartment", f"there is no compartment {number!r}")
    return compartments[number]


def new_pickup_number(taken):
    """A random 4-digit pickup number not in ``taken``."""
    rng = random.SystemRandom()     # a pickup number is half of a way in
    for _ in range(1000):
        number = f"{rng.randint(1000, 9999)}"
        if number not in taken:
            return number
    raise CommandError("no_pickup_number", "no free pickup number")


def new_hold_id(is_taken):
    """A locker-made hold id for which ``is_taken(id)`` is false."""
    while True:
        hold_id = f"L-{random.randint(0, 16**8 - 1):08x}"
        if not is_taken(hold_id):
            return hold_id


def parse_hold(spec, sizes, taken_pickup_numbers):
    """Validate an announced hold; return a Hold in state ANNOUNCED."""
    if not isinstance(spec, dict):
        raise CommandError("bad_argument", "a hold must be an object")
    hold_id = spec.get("hold_id")
    if not isinstance(hold_id, str) or not ID_RE.match(hold_id):
        raise CommandError("bad_argument", "hold_id must be 1-64 letters, digits or ._:-")
    patron_hash = spec.get("patron_hash")
    if not isinstance(patron_hash, str) or not HASH_RE.match(patron_hash):
        raise CommandError("bad_argument",
                           "patron_hash must be the 64-hex keyed hash of the card")
    items = spec.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise CommandError("bad_argument", f"items must be a list of 1-{MAX_ITEMS} items")
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise CommandError("bad_argument", f"items[{i}] must be an object")
        parsed.append(Item(text(item.get("barcode"), f"items[{i}].barcode", 64),
                           free_text_field(item.get("title", ""), f"items[{i}].title", 200,
                                required=False)))
    deadline = spec.get("deadline")
    if deadline is not None and (isinstance(deadline, bool) or
                                 not isinstance(deadline, (int, float))):
        raise CommandError("bad_argument", "deadline must be Unix seconds")
    size = spec.get("size")
    if size is not None and size not in sizes:
        raise CommandError("bad_argument", f"size must be one of {sizes}")
    pickup_number = spec.get("pickup_number") or new_pickup_number(taken_pickup_numbers)
    text(pickup_number, "pickup_number", 16)
    code_hash = spec.get("pickup_code_hash")
    if code_hash is not None and (not isinstance(code_hash, str) or
                                  not HASH_RE.match(code_hash)):
        raise CommandError("bad_argument", "pickup_code_hash must be 64 hex")
    return Hold(id=hold_id, patron_hash=patron_hash, items=tuple(parsed),
                pickup_number=str(pickup_number),
                deadline=float(deadline) if deadline is not None else 0.0,
                state=HoldState.ANNOUNCED, size=size, pickup_code_hash=code_hash)


def pickup_days_or_error(pickup_days):
    if pickup_days is not None and (isinstance(pickup_days, bool) or
                                    not isinstance(pickup_days, (int, float)) or
                                    not 1 <= pickup_days <= 60):
        raise CommandError("bad_argument", "pickup days must be 1-60")
    return pickup_days
