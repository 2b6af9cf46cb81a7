"""Injected time.

Two clocks, never mixed: ``monotonic()`` for pulses, timeouts and alarms (it
never jumps), ``wall()`` (Unix seconds) for deadlines and records that must
survive a restart.  Production uses :class:`SystemClock`; tests use
:class:`FakeClock` and move time with :meth:`FakeClock.advance`.  The locker
reads either through :class:`GuardedClock`, whose wall time never runs far
backwards.
"""

import logging
import time

log = logging.getLogger("bibbox.locker")


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


class GuardedClock:
    """The injected clock, with a wall time that never runs far backwards.

    Pulses, timeouts and alarms use ``monotonic()``, which never jumps.
    Deadlines use ``wall()``.  A Pi has no battery clock: after a power cut
    it boots with an old time (fake-hwclock) until NTP steps it forward, and
    a bad RTC can even set it years back.  So ``wall()`` keeps an anchor --
    the newest trusted wall time and the monotonic time it was read at --
    and, while the system clock reads more than ``TOLERANCE_S`` behind
    ``anchor + elapsed monotonic time``, returns that estimate instead: holds
    then expire when their deadline has really passed, and deadlines given
    meanwhile are not in the past once NTP puts the clock right.  Forward
    jumps are trusted (NTP after a power cut) and logged.  The locker
    persists the newest wall time it saw (store meta ``wall_seen``) and
    restores it at start (:meth:`remember_floor`): real time cannot be
    before it.

    Limit: a clock set wrongly *forward* (a bad RTC in 2040) is believed, as
    nothing here can tell it from a long power cut."""

    TOLERANCE_S = 120.0
    JUMP_LOG_S = 300.0

    def __init__(self, clock):
        self.inner = clock
        self._anchor = None      # (wall, monotonic) of the newest trusted reading
        self.behind_s = 0.0      # how far the system clock is behind, while it is

    def monotonic(self):
        return self.inner.monotonic()

    def remember_floor(self, wall_seen):
        """Real time is not before ``wall_seen`` (a previous run saw it)."""
        try:
            floor = float(wall_seen)
        except (TypeError, ValueError):
            return
        raw, mono = self.inner.wall(), self.inner.monotonic()
        if self._anchor is not None and floor <= self._estimate(mono):
            return
        if raw >= floor - self.TOLERANCE_S:
            self._anchor = (raw, mono)      # later than last seen: downtime, not a jump
        else:
            self._anchor = (floor, mono)
            self.wall()                     # says that the clock is behind

    def _estimate(self, mono):
        wall, at = self._anchor
        return wall + (mono - at)

    def wall(self):
        raw, mono = self.inner.wall(), self.inner.monotonic()
        if self._anchor is None:
            self._anchor = (raw, mono)
            return raw
        estimate = self._estimate(mono)
        if raw >= estimate - self.TOLERANCE_S:
            if self.behind_s:
                log.warning("wall clock is right again (it was %.0f s behind)", self.behind_s)
                self.behind_s = 0.0
            elif raw > estimate + self.JUMP_LOG_S:
                log.warning("wall clock jumped forward by %.0f s (NTP after a power cut?)",
                            raw - estimate)
            self._anchor = (raw, mono)
            return raw
        if not self.behind_s:
            log.warning("wall clock is %.0f s behind the newest time this locker saw; "
                        "deadlines use that time plus the time elapsed since, until the "
                        "clock is set (NTP)", estimate - raw)
        self.behind_s = estimate - raw
        return estimate
