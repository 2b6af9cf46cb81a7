"""The unlock hints of a lock bus: keep the half-duplex wire free for an
unlock that is about to come (:class:`~bibbox.hal.kerong.KerongBus`).

An RS485 bus has one request in flight, and an unlock cannot interrupt the
poll exchange already on the wire (7.3 ms at 19200 baud).  Two hints from
the locker keep polls out of the unlock's way:

* ``prepare_unlock``: the PIN's last digit is typed, OK may follow within
  a second.  The bus polls at once every board that would fall due within
  ``idle_poll_s`` (the *early round*), then starts no other poll until an
  unlock or ``idle_poll_s`` after the hint, when the boards held back are
  due.  A board of the early round whose poll fails is retried before the
  hold.  So no answering board goes longer than ``idle_poll_s`` unpolled
  for a hint; a silent board's once-a-second probe waits for the hold's
  end, and a board that moves is, for that moment, polled like one at rest.
  A hint while one holds is ignored.
* ``expect_unlock``: the PIN check went out, the unlock follows within the
  verifier's answer.  Nothing at all starts, not even the rest of an early
  round, until an unlock or ``hint_hold_s`` (0.25 s); then the early round
  goes on.  A denied PIN lets that time run out: boards of an early round
  cut short are then polled up to about ``hint_hold_s`` late.

An unlock (``pulse``) ends both holds.  A hint sends nothing but status
requests and never opens anything.
"""

from __future__ import annotations

import time


class UnlockHints:
    """Mixed into a bus driver that owns ``_cond`` (its condition), ``_locks``
    (compartment -> channel), ``_next_poll``, ``_online``, ``_poll_tries``
    (per board), ``_idle_poll_s``, ``_hint_hold_s``, ``_link`` (None while
    the port is down) and ``_poll`` (one poll job)."""

    def _init_hints(self):
        self._prepared_until = 0.0     # typed PIN: no poll but the early round before then
        self._checked_until = 0.0      # PIN check out: no poll at all before then
        self._early: list = []         # boards to poll before the typed-PIN hold

    def prepare_unlock(self, compartments) -> None:
        """A PIN is typed in full: see the module docstring.  Other buses'
        compartments are ignored; so is a hint while the port is down."""
        if not any(c in self._locks for c in compartments):
            return
        with self._cond:
            now = time.monotonic()
            if self._link is None or now < max(self._prepared_until, self._checked_until):
                return
            self._prepared_until = until = now + self._idle_poll_s
            self._early = sorted((b for b, due in self._next_poll.items()
                                  if due < until and self._online[b] is not False),
                                 key=self._next_poll.get)
            self._cond.notify_all()

    def expect_unlock(self, compartments) -> None:
        """A PIN check went out: see the module docstring.  Sends nothing."""
        if any(c in self._locks for c in compartments):
            with self._cond:
                self._checked_until = time.monotonic() + self._hint_hold_s

    def _clear_hints(self):
        """(lock held) An unlock came, or everything was dropped."""
        self._prepared_until = self._checked_until = 0.0
        self._early.clear()

    def _hinted_job(self, now):
        """(lock held) While a hint is in force: the next poll of the early
        round, or (None, until) to wait; None when no hint holds polls."""
        if now < self._checked_until:
            return None, self._checked_until
        if self._early:
            return self._poll, self._early.pop(0)
        if now < self._prepared_until:
            return None, self._prepared_until
        return None

    def _retry_before_hold(self, board, now):
        """(lock held) ``board``'s poll failed with tries left: while the
        typed-PIN hold lasts, its retry goes first, not after the hold."""
        if now < self._prepared_until:
            self._early.insert(0, board)
