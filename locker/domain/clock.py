"""Injected time.

Two clocks, never mixed: ``monotonic()`` for pulses, timeouts and alarms (it
never jumps), ``wall()`` (Unix seconds) for deadlines and records that must
survive a restart.  Production uses :class:`SystemClock`; tests use
:class:`FakeClock` and move time with :meth:`FakeClock.advance`.
"""

import time


class SystemClock:
    """The real clocks."""

    def monotonic(self):
        return time.monotonic()

    def wall(self):
        return time.time()


class FakeClock:
    """A clock that moves only when told.  ``jump_wall`` moves wall time alone,
    as NTP does after a power cut."""

    def __init__(self, wall=1_780_000_000.0, monotonic=1000.0):
        self._wall = float(wall)
        self._mono = float(monotonic)

    def monotonic(self):
        return self._mono

    def wall(self):
        return self._wall

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._mono += seconds
        self._wall += seconds

    def jump_wall(self, seconds):
        self._wall += seconds
