"""The audit log in words: each row's action, reason and detail in the staff
member's language, for the page and the CSV.

The log stores codes and the system's own English phrases ("patron pickup",
"from 127.0.0.1", "hold H1 from 3"); a reason a person typed is shown as
typed.  Anything not recognised is shown as stored, never hidden.
"""

from __future__ import annotations

import re

from bibbox.web.staff.common import t

# Reasons the system writes itself (not typed by staff): code -> text key.
SYSTEM_REASONS = {
    "patron pickup": "why_patron_pickup", "patron reopen": "why_patron_reopen",
    "door did not open": "why_door_did_not_open", "item not seen": "why_item_not_seen",
    "restart before the door was seen open": "why_restart",
    "password": "why_password", "unloaded": "why_unloaded", "cancelled": "why_cancelled",
}

# Details the system writes: pattern -> text key (named groups are parameters).
DETAILS = [
    (re.compile(r"from (?P<address>\S+)"), "detail_from"),
    (re.compile(r"hold (?P<hold>\S+) from (?P<n>\d+)"), "detail_hold_moved"),
    (re.compile(r"hold (?P<hold>\S+) \((?P<state>[a-z_]+)\)"), "detail_hold_state"),
    (re.compile(r"hold (?P<hold>\S+), loaded for (?P<patron>\S+)"), "detail_hold_other_card"),
    (re.compile(r"hold (?P<hold>\S+)"), "detail_hold"),
    (re.compile(r"(?P<n>\d+) patrons"), "detail_patrons"),
    (re.compile(r"(?P<kind>[a-z_]+) of (?P<item>\S+) \(hold (?P<hold>[^)]+)\)"), "detail_loan"),
    (re.compile(r"(?P<name>\S+) \((?P<role>admin|staff)\)"), "detail_account"),
]
LOADING_REASON = re.compile(r"loading hold (?P<hold>\S+)")
ALARM_ACTIONS = ("alarm_raised", "alarm_cleared")


def action_words(action, lang=None):
    text = t("act_" + action, lang)
    return action if text == "act_" + action else text


def reason_words(action, reason, lang=None):
    if not reason:
        return ""
    if action in ALARM_ACTIONS or action == "loan_failed":
        key = ("alarm_" if action in ALARM_ACTIONS else "outcome_") + reason
        text = t(key, lang)
        return reason if text == key else text
    if reason in SYSTEM_REASONS:
        return t(SYSTEM_REASONS[reason], lang)
    loading = LOADING_REASON.fullmatch(reason)
    if loading:
        return t("why_loading", lang, **loading.groupdict())
    return reason                                   # typed by a person: as typed


def detail_words(detail, lang=None):
    if not detail:
        return ""
    for pattern, key in DETAILS:
        found = pattern.fullmatch(detail)
        if found:
            params = found.groupdict()
            if "state" in params:
                params["state"] = t("hold_state_" + params["state"], lang)
            if "role" in params:
                params["role"] = t("role_" + params["role"], lang)
            return t(key, lang, **params)
    return detail


def in_words(row, lang=None):
    """``row`` (a mapping with action, reason, detail) with those three in
    words, and the stored action code as ``code``."""
    return {**dict(row), "code": row["action"], "action": action_words(row["action"], lang),
            "reason": reason_words(row["action"], row["reason"], lang),
            "detail": detail_words(row["detail"], lang)}
