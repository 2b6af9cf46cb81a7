"""What the kiosk, staff and central see: views built from the locker's
parts, pure functions with no state of their own.  No view holds a card
number, a PIN or a patron hash (the unload list names a pseudonym at most).
"""

from __future__ import annotations

import collections

from bibbox.locker.domain.calendar import last_local_date

from bibbox.locker.domain.model import AlarmKind, HoldState, OpenPurpose
from bibbox.locker.domain.screens import SCREEN_IDLE

UNLOAD_KINDS = (AlarmKind.DOOR_JAMMED.value, AlarmKind.DOOR_FORCED.value, "out_of_service",
                AlarmKind.UNEXPECTED_ITEM.value, AlarmKind.ITEM_LEFT_BEHIND.value)


def kiosk_view(*, version, session, notice, reader_online, locker_name, now,
               library_online=None, pickup_number=None):
    """What the kiosk shows.  ``library_online`` False: the library system
    cannot be reached (the kiosk says so).  ``pickup_number``: whether the
    idle screen offers pickup by number (``number_entry``) and how many
    seconds it stays paused (``number_paused_s``)."""
    view = {"version": version, "screen": SCREEN_IDLE, "notice": notice,
            "reader_online": reader_online is not False, "locker_name": locker_name,
            "library_online": library_online is not False,
            **(pickup_number or {"number_entry": False, "number_paused_s": 0})}
    s = session
    if s is not None:
        view.update({
            "screen": s.screen, "message": s.message, "tries_left": s.tries_left,
            "seconds_left": max(0, round(s.deadline - now)),
            "minutes_blocked": s.minutes_blocked,
            "keypad_digits": s.keypad_digits,
            "compartments": [{"number": n, "status": st}
                             for n, st in sorted(s.compartments.items())],
            "items": [i.as_dict() for i in s.receipt_items()],
            "reopen": s.reopen_until is not None and now < s.reopen_until,
            "by_number": s.by_number,
            "left_behind": sorted(s.left_behind),
        })
    return view


def compartment_state(comp, opening, holds):
    """free, loading, ready, opening, expired or out_of_service, of ``comp``
    with its ``opening`` (or None) and the ``holds`` inside."""
    if comp.out_of_service:
        return "out_of_service"
    if opening is not None:
        return "loading" if opening.purpose is OpenPurpose.LOADING else "opening"
    states = {h.state for h in holds}
    for state in (HoldState.LOADING, HoldState.EXPIRED, HoldState.READY):
        if state in states:
            return state.value
    return "free"


class CompartmentViews:
    """The compartment entries of the state view, kept between snapshots:
    an entry is rebuilt only when what it is made of changed (the
    compartment, its opening's purpose, its door, its alarms, the holds
    inside), so a snapshot after one door moved builds one entry and reuses
    the others (the same dict objects, which readers must not change)."""

    def __init__(self):
        self._entries: dict[int, tuple] = {}    # number -> (signature, entry)

    def entries(self, *, compartments, holds, openings, tracks, alarms, default_track, tz):
        inside = collections.defaultdict(list)     # one pass, not one per compartment
        for h in holds.values():
            if h.compartment is not None and h.state.in_locker:
                inside[h.compartment].append(h)
        alarms_at = collections.defaultdict(list)
        for a in alarms.values():
            alarms_at[a.compartment].append(a.kind.value)
        out, cache = [], self._entries
        for number, comp in sorted(compartments.items()):
            door = tracks.get(number, default_track)
            opening = openings.get(number)
            held = inside.get(number, ())
            signature = (comp, opening and opening.purpose, door.state, door.energised,
                         tuple(sorted(alarms_at.get(number, ()))), tuple(held))
            cached = cache.get(number)
            if cached is None or cached[0] != signature:
                cached = cache[number] = (signature, _compartment_entry(
                    comp, opening, door, signature[4], held, tz))
            out.append(cached[1])
        if len(cache) > len(compartments):
            for number in set(cache) - set(compartments):
                del cache[number]
        return out


def _compartment_entry(comp, opening, door, alarm_kinds, held, tz):
    deadline = min((h.deadline for h in held), default=None)
    return {
        "number": comp.number, "size": comp.size,
        "state": compartment_state(comp, opening, held),
        "door": door.state.value,
        "lock": "released" if door.energised else "locked",
        "alarms": list(alarm_kinds),
        "occupied": bool(held),
        "out_of_service": comp.out_of_service,
        "deadline": deadline,
        "deadline_date": last_local_date(deadline, tz),
    }


def state_view(*, version, locker_id, compartments, holds, openings, tracks, alarms,
               reader_online, default_track, tz, library_online=None, cache=None):
    """The locker as staff and central see it; no patron data.  ``cache``
    (a :class:`CompartmentViews`) keeps unchanged compartment entries."""
    comps = (cache or CompartmentViews()).entries(
        compartments=compartments, holds=holds, openings=openings, tracks=tracks,
        alarms=alarms, default_track=default_track, tz=tz)
    return {"version": version, "locker_id": locker_id, "compartments": comps,
            "alarms": [{"alarm": a.kind.value, "compartment": a.compartment,
                        **({"board": a.board} if a.board else {})}
                       for a in sorted(alarms.values(), key=lambda a: a.key)],
            "reader_online": reader_online, "library_online": library_online}


def unload_list(*, compartments, holds, alarms):
    """What must come out: expired and cancelled holds still inside, and
    compartments that need a look (jammed, forced, out of service with
    content, an item sensed that should not be there)."""
    out = []
    for hold in sorted(holds.values(), key=lambda h: (h.compartment or 0, h.id)):
        if hold.compartment is not None and hold.state in (HoldState.EXPIRED,
                                                           HoldState.CANCELLED):
            out.append({"compartment": hold.compartment, "hold_id": hold.id,
                        "why": hold.state.value,
                        "items": [i.as_dict() for i in hold.items]})
    for number, comp in sorted(compartments.items()):
        kinds = [a.kind.value for a in alarms.values() if a.compartment == number]
        if comp.out_of_service and any(h.compartment == number for h in holds.values()):
            kinds.append("out_of_service")
        for kind in kinds:
            if kind in UNLOAD_KINDS:
                out.append({"compartment": number, "hold_id": None, "why": kind,
                            "items": []})
    return out
