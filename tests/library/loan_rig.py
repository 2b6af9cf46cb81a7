"""A locker wired to the test library system: the real store, the SIP2
verifier, the card sealer and the loan worker (threads), on a fake clock."""

from __future__ import annotations

import secrets

from bibbox.library.client import LibraryClient
from bibbox.library.loans import LoanWorker, Reachability
from bibbox.library.sealing import CardUnsealer, private_key
from bibbox.library.transport import SipTransport
from bibbox.library.verifier import LibraryVerifier
from bibbox.locker.domain.core import Locker
from bibbox.locker.domain.identity import CardNumber
from bibbox.locker.domain.messages import PinEntered
from tests.domain_helpers import Rig, wait_until

LOGIN = dict(user="locker1", password="sip-secret", location="BIBBOX1")


def sip_client(port):
    return LibraryClient(SipTransport("127.0.0.1", port, tls=False, trusted_network=True,
                                      timeout_s=1, retries=1, **LOGIN),
                         institution="DK-775100", location="BIBBOX1")


class LibraryRig(Rig):
    """``Rig`` with ``verifier.kind = "sip2"``: the loan worker is started
    by :meth:`start_worker` (tests may queue first)."""

    def __init__(self, tmp_path, port, *, max_wait_s=3600, offline_policy="deny", **kw):
        super().__init__(tmp_path, verifier={"kind": "sip2", "offline_policy": offline_policy},
                         library={"host": "127.0.0.1", "port": port, "tls": False,
                                  "trusted_network": True, "institution": "DK-775100",
                                  "location": "BIBBOX1"}, **kw)
        self.port = port
        self.reachability = Reachability(self.controller.post)
        self.verifier = LibraryVerifier(sip_client(port), reachability=self.reachability)
        self.unsealer = CardUnsealer(private_key(secrets.token_hex(32).encode()))
        self.locker = Locker(self.cfg, clock=self.clock, store=self.store, hasher=self.hasher,
                             verifier=self.verifier, relays=self.relays,
                             post=self.controller.post, publish=self.controller.board.publish,
                             sealer=self.unsealer.sealer)
        self.controller.attach(self.locker)
        self.worker = LoanWorker(self.store.loan_queue(), sip_client(port), self.unsealer,
                                 self.controller.post, max_wait_s=max_wait_s,
                                 reachability=self.reachability, wall=self.clock.wall,
                                 backoff_s=(0.05, 0.2))
        self.store.on_commit.append(self.worker.wake)

    def start_worker(self):
        self.worker.start()

    def close(self):
        self.worker.stop()
        self.verifier.close()
        self.store.close()

    def pin(self, text):
        """Enter a PIN and wait for the library system's verdict."""
        self.controller.post(PinEntered(text))
        self.run()
        self.until(lambda: self.kiosk["screen"] != "verifying", "the verdict")

    def until(self, predicate, what):
        """Run the controller until ``predicate()`` (threads post to it)."""
        def check():
            self.run()
            return predicate()
        return wait_until(check, what=what)

    def collect(self, card, pin, compartment):
        self.card(card)
        self.pin(pin)
        assert self.fire_all() == [compartment]
        self.door(compartment, True)
        self.door(compartment, False)

    def loans_waiting(self):
        return self.store.loans_waiting()

    def card_number(self, text):
        return CardNumber.parse(text)
