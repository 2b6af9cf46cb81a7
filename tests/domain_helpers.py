"""Builders shared by the domain tests: a locker on a fake clock with a real
SQLite store and a relay port that records what it was asked to do."""

import time

from bibbox.locker.domain import config as config_mod
from bibbox.locker.domain.clock import FakeClock
from bibbox.locker.app.controller import Controller
from bibbox.locker.app.local_verifier import LocalVerifier
from bibbox.locker.domain.core import Locker
from bibbox.locker.domain.identity import CardNumber, KeyedHasher
from bibbox.locker.domain.messages import (CardRead, DoorChanged, PinEntered, RelayFired,
                                           RelayReleased)
from bibbox.locker.domain.model import Hold, HoldState, Item
from bibbox.locker.store import Store

SITE_KEY = b"test-site-key-0123456789abcdef"
ALICE_CARD, ALICE_PIN = "0101901234", "1234"   # a made-up CPR-shaped number
BOB_CARD, BOB_PIN = "LIB00042", "9876"


def small_config(state_dir, n=4, **sections):
    data = {"locker": {"id": "test-1", "state_dir": str(state_dir)},
            "compartments": [{"number": i, "size": "SML"[i % 3], "relay_pin": 2 + i,
                              "door_pin": 14 + i} for i in range(1, n + 1)]}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_mod.parse(data)


def wait_until(predicate, timeout=10.0, what="a condition"):
    """Poll ``predicate`` (for state with no event to wait on) until it is
    true; return its value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class SilentCentral:
    """A central verifier that never gets an answer (central offline)."""

    def verify(self, patron_hash, pin, done, *, card=None):
        from bibbox.locker.domain import patrons
        done(patrons.Verdict(patrons.UNAVAILABLE))


class RecordingRelays:
    """The relay port, recording pulses and unlock hints (each a tuple of
    compartments); tests play the relay's answers."""

    def __init__(self):
        self.pulses, self.hints, self.prepared = [], [], []

    def pulse(self, compartment, seconds):
        self.pulses.append((compartment, seconds))

    def prepare_unlock(self, compartments):
        self.prepared.append(tuple(compartments))

    def expect_unlock(self, compartments):
        self.hints.append(tuple(compartments))


class Rig:
    """A locker wired for domain tests: real store, fake clock, no threads."""

    def __init__(self, tmp_path, db_name="bibbox.db", clock=None, **sections):
        self.tmp_path = tmp_path
        self.cfg = small_config(tmp_path, **sections)
        self.clock = clock or FakeClock()
        self.hasher = KeyedHasher(SITE_KEY)
        self.store = Store(tmp_path / db_name, clock=self.clock)
        self.relays = RecordingRelays()
        self.controller = Controller(self.clock)
        self.verifier = LocalVerifier(self.store, self.hasher, self.clock)
        self.locker = Locker(self.cfg, clock=self.clock, store=self.store,
                             hasher=self.hasher, verifier=self.verifier,
                             relays=self.relays, post=self.controller.post,
                             publish=self.controller.board.publish)
        self.controller.attach(self.locker)

    def start(self, doors=None):
        self.locker.start(doors or {c.number: "closed" for c in self.cfg.compartments})
        self.run()

    def run(self):
        self.controller.run_pending()

    def add_patron(self, card, pin, block=""):
        from bibbox.locker.domain.patrons import import_patrons
        import_patrons(self.store, self.hasher, f"card,pin,block_reason\n{card},{pin},{block}\n")

    def patron_hash(self, card):
        return self.hasher.patron(CardNumber.parse(card))

    def place(self, hold_id, card, compartment, days=7, titles=("Book",)):
        hold = Hold(id=hold_id, patron_hash=self.patron_hash(card),
                    items=tuple(Item(f"{hold_id}-{i}", t) for i, t in enumerate(titles)),
                    pickup_number=f"{abs(hash(hold_id)) % 9000 + 1000}",
                    deadline=self.clock.wall() + days * 86400,
                    state=HoldState.READY, compartment=compartment)
        return self.locker.place_hold(hold)

    def card(self, card):
        self.controller.post(CardRead(CardNumber.parse(card)))
        self.run()

    def pin(self, text):
        self.controller.post(PinEntered(text))
        self.run()   # verdict is posted back by the verifier
        self.run()

    def fire_all(self):
        """Play the relay adapter: each pulse fires then releases."""
        pulses, self.relays.pulses = self.relays.pulses, []
        for n, s in pulses:
            self.controller.post(RelayFired(n, s))
            self.controller.post(RelayReleased(n))
        self.run()
        return [n for n, _ in pulses]

    def door(self, n, is_open):
        self.controller.post(DoorChanged(n, is_open))
        self.run()

    def advance(self, seconds):
        self.clock.advance(seconds)
        self.run()

    @property
    def kiosk(self):
        return self.controller.board.get("kiosk")

    @property
    def state(self):
        return self.controller.board.get("state")

    def outbox_types(self):
        return [r["type"] for r in self.store.outbox_batch(limit=100000)]

    def outbox(self):
        """(type, payload JSON) of every event waiting in the outbox, in order."""
        return [(r["type"], r["payload"]) for r in self.store.outbox_batch(limit=100000)]
