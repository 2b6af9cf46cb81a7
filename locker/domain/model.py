"""Domain values: compartments, holds, items, alarms, events.

Plain data, no I/O.  States are string enums so they read well in the
database, in JSON and in logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum


class HoldState(str, Enum):
    ANNOUNCED = "announced"   # central told us; not in the locker yet
    LOADING = "loading"       # staff has the door open to put it in
    READY = "ready"           # in a compartment, waiting for the patron
    COLLECTED = "collected"   # the patron opened the door and closed it again
    EXPIRED = "expired"       # deadline passed; still inside until unloaded
    REMOVED = "removed"       # staff took it out
    CANCELLED = "cancelled"   # cancelled by staff or central

    @property
    def in_locker(self):
        return self in (HoldState.LOADING, HoldState.READY, HoldState.EXPIRED)

    @property
    def final(self):
        return self in (HoldState.COLLECTED, HoldState.REMOVED)


class DoorState(str, Enum):
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


class AlarmKind(str, Enum):
    DOOR_HELD_OPEN = "door_held_open"
    DOOR_FORCED = "door_forced"
    DOOR_JAMMED = "door_jammed"
    SENSOR_FLAPPING = "sensor_flapping"
    READER_OFFLINE = "reader_offline"
    STORAGE_ERROR = "storage_error"
    LOAN_FAILED = "loan_failed"          # a loan or check-in the library system refused
    BOARD_OFFLINE = "board_offline"     # a lock board stopped answering (keyed by board)
    PRINTER_OFFLINE = "printer_offline"  # the receipt printer is missing or out of paper
    UNEXPECTED_ITEM = "unexpected_item"  # an item sensed where nothing should be
    ITEM_LEFT_BEHIND = "item_left_behind"  # a patron's compartment still not empty


class OpenPurpose(str, Enum):
    PICKUP = "pickup"
    LOADING = "loading"
    UNLOADING = "unloading"
    STAFF = "staff"
    CENTRAL = "central"
    SELFTEST = "selftest"


@dataclass(frozen=True)
class Item:
    barcode: str
    title: str = ""
    due: str | None = None          # ISO date, known once the loan is made

    def as_dict(self):
        return {"barcode": self.barcode, "title": self.title, "due": self.due}

    @classmethod
    def from_dict(cls, d):
        return cls(str(d["barcode"]), str(d.get("title", "")), d.get("due"))


@dataclass(frozen=True)
class Hold:
    id: str
    patron_hash: str
    items: tuple
    pickup_number: str
    deadline: float                 # wall time (Unix seconds)
    state: HoldState
    compartment: int | None = None
    size: str | None = None
    pickup_code_hash: str | None = None
    updated_at: float = 0.0

    def with_(self, **changes):
        return replace(self, **changes)

    def expired_at(self, wall_now):
        return wall_now >= self.deadline


@dataclass(frozen=True)
class Compartment:
    number: int
    size: str
    out_of_service: str | None = None   # the reason, or None when in service


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    compartment: int | None = None
    board: str = ""                 # "bus/board" for an alarm about a lock board

    @property
    def key(self):
        if self.board:
            return f"{self.kind.value}:{self.board}"
        return f"{self.kind.value}:{self.compartment or 0}"


class EventType(str, Enum):
    """Every event the locker reports; the one list of their names."""
    HOLD_ANNOUNCED = "hold.announced"
    HOLD_READY = "hold.ready"
    HOLD_COLLECTED = "hold.collected"
    HOLD_EXPIRED = "hold.expired"
    HOLD_REMOVED = "hold.removed"
    HOLD_CANCELLED = "hold.cancelled"
    HOLD_MOVED = "hold.moved"
    LOCK_RELEASED = "lock.released"      # the relay fired (command acknowledged)
    DOOR_OPENED = "door.opened"          # the sensor saw it open (physical fact)
    DOOR_CLOSED = "door.closed"
    ALARM_RAISED = "alarm.raised"
    ALARM_CLEARED = "alarm.cleared"
    PICKUP_DENIED = "pickup.denied"
    COMPARTMENT_SERVICE = "compartment.service"
    MANUAL_OPEN = "door.manual_open"     # staff or central opened a door by hand
    LOAN_MADE = "loan.made"              # the library system lent a collected item
    LOAN_FAILED = "loan.failed"          # refused, or waited past the bound, or no identity
    ITEM_CHECKED_IN = "item.checked_in"  # loaded or unloaded item checked in
    LIBRARY_STATUS = "library.status"    # the library system reachable or not
    RECEIPT_ISSUED = "receipt.issued"    # a patron's receipt: items and due dates, no card
    HOLD_LOAD_UNCONFIRMED = "hold.load_unconfirmed"  # loaded, but the item sensor saw nothing
    ITEM_LEFT_BEHIND = "item.left_behind"  # a patron closed a door on something


@dataclass(frozen=True)
class ItemForLoading:
    """What the library system says of an item staff scan at loading:
    ``patron`` is the hold's patron's card (to be hashed at once, never
    kept) or None when the library system does not say."""
    barcode: str
    title: str = ""
    on_hold: bool = False
    pickup_date: str = ""
    patron: object = field(default=None, repr=False)


@dataclass(frozen=True)
class LoanTicket:
    """Who borrows what a patron collects: their card sealed for the loan
    worker (never the card itself), and whether the library system could
    not be reached at the verdict (the loan then goes with SIP2's no-block
    flag)."""
    sealed: bytes = field(repr=False)
    offline: bool = False


@dataclass(frozen=True)
class Event:
    """A domain event bound for the outbox.  ``data`` is JSON-ready and never
    holds a card number or a PIN (a patron hash at most)."""
    type: str
    data: dict = field(default_factory=dict)


@dataclass
class Opening:
    """A door we are opening, or have opened, for one purpose.  Persisted so
    that a restart knows what was in flight."""
    compartment: int
    purpose: OpenPurpose
    session: str = ""
    actor: str = ""
    reason: str = ""
    fired: bool = False
    seen_open: bool = False
    jammed: bool = False
    requested_mono: float = 0.0
    fired_mono: float | None = None
    holds: tuple = ()       # a pickup: the ids of the holds it lets the patron take
