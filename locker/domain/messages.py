"""The messages adapters post to the controller, one frozen class each.

An adapter builds one of these and hands it to ``Controller.post``; the
controller looks its handler up by the message's type (see
``bibbox.locker.app.controller.HANDLERS``).  A card read therefore travels
``hal/cardreader.py`` -> :class:`CardRead` -> ``Locker.card_read`` -> the
relay pulse, by names alone.

Fields that hold a card number, a PIN or a pickup code are left out of the
``repr``, so a message that reaches a log line never carries them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bibbox.locker.domain.identity import CardNumber
from bibbox.locker.domain.patrons import Verdict


@dataclass(frozen=True)
class CardRead:
    """The card reader (or the keypad's card entry) read a card."""
    card: CardNumber = field(repr=False)


@dataclass(frozen=True)
class PinEntered:
    """The patron pressed OK on the kiosk's or the physical PIN pad."""
    text: str = field(repr=False)


@dataclass(frozen=True)
class KeypadDigits:
    """A physical PIN pad has ``count`` digits typed (the kiosk shows dots)."""
    count: int


@dataclass(frozen=True)
class KioskAction:
    """A kiosk button: ``cancel``, ``extend``, ``pickup_number`` (the idle
    screen's way in without the card, when the option is on) or
    ``pin_typed`` (the PIN is typed in full, OK not yet pressed: a hint for
    the lock buses, no digits); one of ``KIOSK_ACTIONS``."""
    action: str


KIOSK_ACTIONS = ("cancel", "extend", "pickup_number", "pin_typed")


@dataclass(frozen=True)
class PickupNumberEntered:
    """The patron typed a hold's pickup number (pickup without the card).
    Not a secret, but kept out of the ``repr`` all the same."""
    text: str = field(repr=False)


@dataclass(frozen=True)
class PickupCodeEntered:
    """The patron typed the pickup code from their message (central offline)."""
    text: str = field(repr=False)


@dataclass(frozen=True)
class VerdictReceived:
    """A verifier answered for the patron session ``session_id``."""
    session_id: str
    verdict: Verdict


@dataclass(frozen=True)
class DoorChanged:
    """A door sensor changed (doors are event driven, never polled)."""
    compartment: int
    is_open: bool


@dataclass(frozen=True)
class RelayFired:
    """The relay adapter energised a lock's coil for ``pulse_s`` seconds."""
    compartment: int
    pulse_s: float


@dataclass(frozen=True)
class RelayReleased:
    """The relay adapter switched a lock's coil off again."""
    compartment: int


@dataclass(frozen=True)
class ReaderOnline:
    """The card reader came online (True) or went offline (False)."""
    online: bool


@dataclass(frozen=True)
class ReaderGarbled:
    """The card reader got data it could not read as a card."""
    reason: str


@dataclass(frozen=True)
class LoanSettled:
    """The loan worker is done with the queued loan or check-in ``loan_id``:
    ``outcome`` ``made`` (lent, ``due`` the ISO due date or None),
    ``checked_in``, ``refused`` (the library system said no: ``reason`` is
    its sanitised screen message) or ``expired`` (waited past the bound)."""
    loan_id: int
    kind: str
    hold_id: str
    item: str
    outcome: str
    due: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class LibraryOnline:
    """The library system became reachable (True) or unreachable (False)."""
    online: bool


@dataclass(frozen=True)
class BoardOnline:
    """A lock board (``"bus/board"``) answers again (True) or stopped
    answering (False); while it is offline the doors ``compartments`` on it
    are unknown."""
    board: str
    online: bool
    compartments: tuple = ()


@dataclass(frozen=True)
class PrinterStatus:
    """The receipt printer printed (``ok``) or failed: ``reason`` is
    ``missing: ...`` (no port), ``write failed: ...`` or ``paper_out``."""
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class ItemSensed:
    """A compartment's item sensor (a board's IR input, or a GPIO input)
    sees an item (True) or none (False)."""
    compartment: int
    present: bool


@dataclass(frozen=True)
class Wake:
    """Nothing to do but look at the clock again (a test moved a fake clock)."""


Message = (CardRead | PinEntered | KeypadDigits | KioskAction | PickupCodeEntered |
           PickupNumberEntered | VerdictReceived | DoorChanged | RelayFired | RelayReleased | ReaderOnline |
           ReaderGarbled | LoanSettled | LibraryOnline | BoardOnline | ItemSensed | Wake)
