"""Pickup without the card: the hold's pickup number and the patron's PIN.

An option a library turns on knowingly (``verifier.pickup_number_with_pin``,
off by default: the library rules say card + PIN).  The idle screen then
offers a pickup-number button; the patron types the number from their
message, then the PIN.  The number names a hold in the locker and so its
patron (hash); the configured verifier checks the PIN against that hash with
no card (``local`` and ``central`` can; ``sip2`` and ``fbs`` need the card
number, and the config check refuses them).  Accepted, the patron gets what
the card path opens for them: every ready hold of theirs here, not only the
one with that number, so both ways in behave alike.

Against guessing:

- The kiosk never says which was wrong.  An unknown number, a wrong PIN, a
  patron the verifier does not know and a locked-out patron all end on the
  number screen with ``number_or_pin_wrong``, never sooner than
  :data:`ANSWER_FLOOR_S` after the PIN (an unknown number asks no verifier
  and would otherwise answer faster).
- A wrong PIN counts toward the patron's own lockout, the card path's
  (``timing.pin_tries`` wrong PINs block for ``timing.pin_block_minutes``,
  whichever way the patron comes); a locked-out patron is refused without
  asking the verifier.
- Every failure counts toward a kiosk-wide throttle
  (:class:`NumberThrottle`): :data:`THROTTLE_FAILURES` within
  :data:`THROTTLE_WINDOW_S` pause the number entry for
  :data:`THROTTLE_PAUSE_S` (the card path goes on).  Its state is in the
  store, so a restart does not reset it.

Privacy: the number is not a secret (it is in the patron's SMS or e-mail),
but no log line or event carries it; events name the failure, not the
patron or the number.  The PIN goes the card path's way (never stored).
"""

from __future__ import annotations

import json
import logging
import math

from bibbox.locker.domain import patrons
from bibbox.locker.domain.errors import CommandError
from bibbox.locker.domain.model import EventType, HoldState
from bibbox.locker.domain.screens import (DENIED_SCREEN_S, SCREEN_DENIED, SCREEN_NUMBER,
                                          SCREEN_PIN, SCREEN_VERIFYING)

log = logging.getLogger("bibbox.locker")

THROTTLE_FAILURES = 5        # failed pickup-number attempts at this kiosk ...
THROTTLE_WINDOW_S = 600.0    # ... within ten minutes ...
THROTTLE_PAUSE_S = 600.0     # ... pause the number entry for ten minutes
ANSWER_FLOOR_S = 2.0         # no failure is shown sooner after the PIN
THROTTLE_KEY = "pickup_number_throttle"   # store meta: {"failures": [...], "paused_until"}
MAX_NUMBER_LEN = 16          # as long as a hold's pickup number may be
# The failures of the number path, as the pickup.denied event's detail.
UNKNOWN_NUMBER, LOCKED_OUT = "unknown_number", "locked_out"
WRONG_PIN, UNKNOWN_PATRON = patrons.WRONG_PIN, "unknown_patron"   # the verifier's answers


def parse_number(text):
    """``text`` as a pickup number: 1-16 letters or digits, upper-cased; or None."""
    if not isinstance(text, str):
        return None
    number = text.strip().upper()
    ok = 0 < len(number) <= MAX_NUMBER_LEN and number.isascii() and number.isalnum()
    return number if ok else None


def patron_for_number(holds, number):
    """The patron hash of the holds in the locker (ready or expired) whose
    pickup number is ``number``; None when there is none, or when the number
    names two patrons (central gave two holds one number: refused, not guessed)."""
    found = {h.patron_hash for h in holds
             if h.pickup_number.strip().upper() == number and h.compartment is not None
             and h.state in (HoldState.READY, HoldState.EXPIRED)}
    if len(found) > 1:
        log.warning("a pickup number names the holds of %d patrons; pickup by number "
                    "refuses it (the card still works)", len(found))
    return found.pop() if len(found) == 1 else None


class NumberThrottle:
    """The kiosk-wide count of failed pickup-number attempts (wall times from
    the injected clock), kept in the store's meta table like the wrong-PIN
    counter, so a restart keeps it.  Read once, then followed in memory (the
    controller thread is its only writer)."""

    def __init__(self, clock, store):
        self.clock, self.store = clock, store
        self._state = None          # (failure times, paused_until or None)

    def _current(self):
        if self._state is None:
            self._state = _decode(self.store.meta(THROTTLE_KEY))
        return self._state

    def paused_s(self):
        """Seconds the number entry stays paused (0: it is open).  Never more
        than one pause, even if the wall clock went back."""
        until = self._current()[1]
        if until is None:
            return 0.0
        return min(max(0.0, until - self.clock.wall()), THROTTLE_PAUSE_S)

    def write_failure(self, unit):
        """Count one failure in ``unit``; returns the new state for
        :meth:`remember` once the unit has committed."""
        failures, until = self._current()
        now = self.clock.wall()
        recent = [t for t in failures if 0.0 <= now - t < THROTTLE_WINDOW_S] + [now]
        if until is not None and until <= now:
            until = None
        if len(recent) >= THROTTLE_FAILURES:
            recent, until = [], now + THROTTLE_PAUSE_S
            log.warning("pickup by number paused for %d minutes after %d failures",
                        THROTTLE_PAUSE_S // 60, THROTTLE_FAILURES)
        state = (tuple(recent), until)
        unit.set_meta(THROTTLE_KEY, json.dumps({"failures": list(recent),
                                                "paused_until": until}))
        return state

    def remember(self, state):
        self._state = state


def _decode(text):
    try:
        data = json.loads(text) if text else {}
        failures = tuple(float(t) for t in data.get("failures", ()))
        until = data.get("paused_until")
        return failures, (float(until) if until is not None else None)
    except (ValueError, TypeError, AttributeError):
        log.warning("the pickup-number throttle in the store is unreadable; "
                    "starting it afresh")
        return (), None


class NumberEntrance:
    """The pickup-number path of ``Sessions`` (a mixin: it drives the same
    patron session as the card path, from the number screen to the PIN
    screen; from the verdict on the paths are one).  ``Sessions`` sets
    ``numbers_on``, ``throttle`` (a :class:`NumberThrottle`) and
    ``active_holds`` (a callable: the holds to look numbers up in)."""

    def number_view(self):
        """For the idle screen: is the pickup-number button offered, and for
        how many seconds more is it paused."""
        if not self.numbers_on:
            return {"number_entry": False, "number_paused_s": 0}
        return {"number_entry": True, "number_paused_s": math.ceil(self.throttle.paused_s())}

    def start_number(self, storage_down):
        """The idle screen's pickup-number button: the number screen (or, the
        entry being paused, a denial saying for how long)."""
        if not self.numbers_on:
            raise CommandError("pickup_number_off", "pickup by number is not turned on")
        s = self.session
        if s is not None and s.screen != SCREEN_DENIED:
            return self.notify("busy")
        s = self._new_session(SCREEN_NUMBER, "", self.timing.pin_timeout_s, by_number=True)
        if storage_down:
            return self._show_unavailable(s)      # no failure could be counted
        paused = self.throttle.paused_s()
        if paused:
            return self._number_paused(s, paused)
        return self.dirty(kiosk=True)

    def number_entered(self, text):
        """OK on the number screen: on to the PIN screen, whether the number
        is known or not (the PIN decides what the patron is told)."""
        s = self.session
        if s is None or s.screen != SCREEN_NUMBER:
            return None
        number = parse_number(text)
        if number is None:
            s.message = "number_format"
            return self.dirty(kiosk=True)
        s.patron_hash = patron_for_number(self.active_holds(), number) or ""
        s.screen, s.message, s.keypad_digits = SCREEN_PIN, "", 0
        s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
        return self.dirty(kiosk=True)

    def _number_may_ask(self, s):
        """The PIN of a number session was typed: may the verifier be asked?
        Not for an unknown number or a locked-out patron (a failure then)."""
        s.asked_at = self.clock.monotonic()
        if not s.patron_hash:
            self._number_failed(s, UNKNOWN_NUMBER)
            return False
        if self.blocked_minutes(s.patron_hash):
            self._number_failed(s, LOCKED_OUT)
            return False
        return True

    def number_verdict_failed(self, s, outcome):
        """The verifier said wrong PIN or unknown patron for a number session."""
        return self._number_failed(s, WRONG_PIN if outcome == patrons.WRONG_PIN
                                   else UNKNOWN_PATRON)

    def _number_failed(self, s, detail):
        """One failed attempt: counted (the throttle; a wrong PIN also in the
        patron's lockout) with its event in one unit, then shown as the one
        message for every failure, no sooner than ``ANSWER_FLOOR_S`` after
        the PIN."""
        with self.store.unit() as unit:
            state = self.throttle.write_failure(unit)
            if detail == WRONG_PIN:
                unit.set_pin_failures(s.patron_hash, *self._one_more_wrong_pin(s.patron_hash))
            unit.event(EventType.PICKUP_DENIED, {"reason": "number_or_pin_wrong",
                                                 "detail": detail})
        self.throttle.remember(state)
        log.info("pickup by number denied: %s", detail)
        # Still "verifying", as it was since the PIN (the screen and its
        # deadline unchanged: the view says nothing new until the floor).
        now = self.clock.monotonic()
        s.screen, s.patron_hash = SCREEN_VERIFYING, ""
        s.number_failure_at = (s.asked_at or now) + ANSWER_FLOOR_S
        if s.number_failure_at <= now:
            return self._show_number_failure(s)
        return None

    def _show_number_failure(self, s):
        """The floor has passed: back to the number screen, or the pause."""
        s.number_failure_at = None
        paused = self.throttle.paused_s()
        if paused:
            return self._number_paused(s, paused)
        s.screen, s.message, s.tries_left, s.keypad_digits = (SCREEN_NUMBER,
                                                              "number_or_pin_wrong", None, 0)
        s.deadline = self.clock.monotonic() + self.timing.pin_timeout_s
        self.dirty(kiosk=True)
        return None

    def _number_paused(self, s, seconds):
        s.screen, s.message, s.tries_left = SCREEN_DENIED, "number_paused", None
        s.minutes_blocked = max(1, math.ceil(seconds / 60))
        s.deadline = self.clock.monotonic() + DENIED_SCREEN_S
        self.dirty(kiosk=True)
        return None
