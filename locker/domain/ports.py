"""What the domain is handed: the ports, as :class:`typing.Protocol` classes.

The domain never probes an adapter for what it can do: each port below is
the whole of what the domain (and the controller) use, and every adapter
passed in provides all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from bibbox.locker.domain.identity import CardNumber, Pin
from bibbox.locker.domain.messages import Message
from bibbox.locker.domain.model import Compartment, Hold, ItemForLoading, Opening
from bibbox.locker.domain.patrons import Verdict


class Clock(Protocol):
    """Injected time (see :mod:`bibbox.locker.domain.clock`)."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...


class Relays(Protocol):
    """The lock relays.  ``pulse`` energises a coil for a capped pulse and
    returns at once; the adapter reports back with ``RelayFired`` and
    ``RelayReleased`` messages.  Two hints say a pulse of one of
    ``compartments`` may follow: ``prepare_unlock`` when a PIN is typed in
    full (OK may follow within a second or so), ``expect_unlock`` when its
    check went out (the pulse follows within the verifier's answer).  An
    adapter may then do its bus work early, or keep its bus free for a
    short, bounded time.  A hint never unlocks anything, never raises, and
    may do nothing."""

    def pulse(self, compartment: int, seconds: float) -> None: ...

    def prepare_unlock(self, compartments: Iterable[int]) -> None: ...

    def expect_unlock(self, compartments: Iterable[int]) -> None: ...


class Verifier(Protocol):
    """Patron verification.  ``done`` is called exactly once, from any
    thread, possibly before ``verify`` returns.  Adapters never log or store
    the PIN or the card; the locker owns the wrong-PIN counter and the card
    block.  ``card`` is the card number itself, for a verifier that must
    name the patron to another system (a library system knows its patrons
    by card number, not by our keyed hash); verifiers that know patrons by
    hash ignore it.  It is None only when no card is known."""

    def verify(self, patron_hash: str, pin: Pin, done: Callable[[Verdict], None],
               *, card: CardNumber | None) -> None: ...


class Sealer(Protocol):
    """Seals a card number for the loan queue: only the loan worker, which
    holds the private key (outside the database), can open it again."""

    def seal(self, card: CardNumber) -> bytes: ...


class Catalogue(Protocol):
    """The library system at loading: item information (17) and the
    check-in at the locker's location (09) that marks the hold as waiting
    here.  Blocks: never called on the controller thread."""

    def receive(self, barcode: str) -> "ItemForLoading": ...


class Hasher(Protocol):
    """Keyed hashes: the only form a card number, PIN or code is kept in."""

    def patron(self, card: CardNumber) -> str: ...

    def pin(self, patron_hash: str, pin: Pin) -> str: ...

    def pickup_code(self, hold_id: str, code: str) -> str: ...


class Unit(Protocol):
    """One open store transaction: everything written through it is
    committed together or not at all."""

    def put_hold(self, hold: Hold) -> None: ...

    def put_compartment(self, compartment: Compartment) -> None: ...

    def put_opening(self, opening: Opening) -> None: ...

    def drop_opening(self, compartment: int) -> None: ...

    def set_pin_failures(self, patron_hash: str, count: int,
                         blocked_until: float | None) -> None: ...

    def raise_alarm(self, key: str, kind: str, compartment: int | None) -> None: ...

    def clear_alarm(self, key: str) -> None: ...

    def put_patron(self, patron_hash: str, pin_hash: str, block_reason: str) -> None: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def queue_loan(self, kind: str, hold_id: str, item: str, *, patron_hash: str | None = None,
                   sealed: bytes | None = None, offline: bool = False) -> None: ...

    def settle_loan(self, loan_id: int) -> None: ...

    def event(self, type_: str, data: dict) -> tuple[int, str]: ...

    def audit(self, actor: str, action: str, *, compartment: int | None = None,
              patron: str | None = None, reason: str = "", detail: str = "") -> None: ...


class Store(Protocol):
    """The durable store.  ``unit()`` raises StoreError when the disk refuses
    the write.  ``on_commit`` is the commit hook: each callable in it is run
    with the committed unit's events after every commit."""

    on_commit: list[Callable[[list], None]]

    def unit(self) -> AbstractContextManager[Unit]: ...

    def compartments(self) -> list[Compartment]: ...

    def active_holds(self) -> list[Hold]: ...

    def hold(self, hold_id: str) -> Hold | None: ...

    def last_holds_out(self, compartment: int) -> list[Hold]: ...

    def audited_since(self, action: str, compartment: int, since: float) -> bool: ...

    def openings(self) -> list[Opening]: ...

    def alarms(self) -> list[dict]: ...

    def pin_failures(self, patron_hash: str) -> tuple[int, float | None]: ...

    def patron(self, patron_hash: str) -> dict | None: ...

    def meta(self, key: str, default: str | None = None) -> str | None: ...

    def outbox_depth(self) -> int: ...

    def loans_waiting(self) -> int: ...


Post = Callable[[Message], None]
"""Queue a message for the locker (answers coming back from other threads)."""

Publish = Callable[[str, dict], None]
"""Hand a fresh snapshot (``"kiosk"`` or ``"state"``) to readers."""


class LockDriver(Protocol):
    """The locks and door sensors of some compartments, on one kind of
    hardware (GPIO pins, an RS485 bus of lock boards, a Modbus bus of relay
    boards).  A locker may combine several; the daemon hands the domain the
    combination as its :class:`Relays`.

    What the hardware reports goes to callbacks given at construction, from
    the driver's own thread: ``on_fired(compartment, pulse_s)`` and
    ``on_released(compartment)`` (posted as ``RelayFired``/``RelayReleased``),
    ``on_door_change(compartment, is_open)`` (``DoorChanged``, once per real
    change), ``on_item(compartment, present)`` (``ItemSensed``, where the
    hardware has item sensors) and ``on_board(board, online, compartments)``
    (``BoardOnline``; a silent board's doors read "unknown").

    ``prepare_unlock`` and ``expect_unlock`` are :class:`Relays`' hints:
    they only move polls.

    Safety contract: a pulse never exceeds ``timing.pulse_s`` (or is timed
    by a board that cannot be told a longer one), and ``all_off()`` and
    ``close()`` never send anything that could unlock.
    """

    def pulse(self, compartment: int, seconds: float) -> None: ...

    def prepare_unlock(self, compartments: Iterable[int]) -> None: ...

    def expect_unlock(self, compartments: Iterable[int]) -> None: ...

    def read(self, compartment: int) -> str: ...

    def read_all(self) -> dict[int, str]: ...

    def items(self) -> dict[int, bool]: ...

    def health(self) -> dict[str, bool]: ...

    def states(self) -> dict[int, bool]: ...

    def all_off(self) -> None: ...

    def close(self) -> None: ...
