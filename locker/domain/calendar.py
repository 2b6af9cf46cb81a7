"""Local days: pickup deadlines and dates as a patron reads them.

A pickup deadline is the end of a local day (the locker's time zone,
Europe/Copenhagen by default), not "now + N x 86,400 s": a hold loaded on
23 October 2026 at 14:00 with 7 pickup days may be collected until the end
of 30 October, whatever daylight saving did in between.  Dates shown to
patrons, staff and the central system are local calendar dates.

Time zones come from the standard library's ``zoneinfo`` (the system's
database, or the ``tzdata`` package where the system has none).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bibbox.locker.domain.errors import ConfigError

DEFAULT_ZONE = "Europe/Copenhagen"


@functools.lru_cache(maxsize=8)
def zone(name: str) -> dt.tzinfo:
    """The time zone ``name``; ConfigError if it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError([f"locker.timezone: unknown time zone {name!r} "
                           "(for example Europe/Copenhagen)"]) from None


def end_of_local_day(wall: float, days: float, tz: dt.tzinfo) -> float:
    """Unix seconds at the end of the local day ``days`` calendar days after
    the day of ``wall`` (a fraction of a day counts as a whole one): the
    first instant of the day after, so everything before it is in time."""
    start_day = dt.datetime.fromtimestamp(wall, tz).date()
    last_day = start_day + dt.timedelta(days=math.ceil(days))
    next_midnight = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0), tz)
    return next_midnight.timestamp()


def last_local_date(deadline: float | None, tz: dt.tzinfo) -> str | None:
    """The last local date (ISO) on which a hold due at ``deadline`` may be
    collected; a deadline at local midnight belongs to the day before."""
    if deadline is None:
        return None
    return dt.datetime.fromtimestamp(deadline - 0.001, tz).date().isoformat()


def local_date(wall: float, tz: dt.tzinfo) -> dt.date:
    """Today's local date at ``wall``."""
    return dt.datetime.fromtimestamp(wall, tz).date()


def days_left(deadline: float | None, now: float, tz: dt.tzinfo) -> int | None:
    """Calendar days from today to the last pickup day: 0 on the last day,
    negative once it has passed."""
    if deadline is None:
        return None
    last = dt.date.fromisoformat(last_local_date(deadline, tz))
    return (last - local_date(now, tz)).days
