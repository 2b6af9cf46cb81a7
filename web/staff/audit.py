"""The audit log for staff: ``GET /staff/audit`` (filters: from, to,
compartment, kind, actor; ``before`` pages back) and ``GET
/staff/audit.csv`` (the same rows as CSV, ``sep=semicolon`` for Excel)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import OrderedDict
from urllib.parse import urlencode

from flask import Response, g, render_template, request, stream_with_context, url_for

from bibbox.locker.domain import free_text
from bibbox.locker.domain.errors import CommandError
from bibbox.web.staff.audit_words import in_words
from bibbox.web.staff.common import LOCAL_TZ, audit, fail, local_time, service, st, staff, t

EXPORT_KEYS = ("from", "to", "compartment", "kind", "actor", "sep")
AUDIT_PAGE = 200
CSV_BATCH = 1000

# The CSV's columns (text keys, in the staff member's language); the last is
# the stored action code, for whoever sorts the file by machine.
CSV_COLUMNS = ("col_id", "col_time", "col_actor", "col_action", "col_compartment",
               "col_patron", "col_reason", "col_detail", "col_code")

# Audit kinds for the filter: a kind is a set of audit actions.
AUDIT_KINDS = OrderedDict([
    ("login", ("login", "logout", "login_failed", "login_locked")),
    ("loading", ("loaded", "loading_failed", "hold_placed")),
    ("unloading", ("removed",)),
    ("open", ("unlock", "opening_abandoned", "door_jammed")),
    ("pickup", ("collected", "item_left_behind")),
    ("service", ("out_of_service", "in_service")),
    ("alarm", ("alarm_raised", "alarm_cleared", "door_jammed")),
    ("holds", ("hold_cancelled", "hold_moved")),
    ("accounts", ("staff_added", "staff_removed", "staff_password", "staff_unlocked",
                  "staff_sessions_ended")),
])


def _day_start(text):
    try:
        day = dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).timestamp()


def audit_filters(args):
    """(filters for :meth:`StaffService.audit_page`, error codes).  The actor
    filter is free text: refused (``cpr_in_text``) if CPR-shaped."""
    filters, errors = {}, []
    since, until = args.get("from", "").strip(), args.get("to", "").strip()
    if since:
        filters["since"] = _day_start(since)
        if filters["since"] is None:
            errors.append("bad_date")
    if until:
        start = _day_start(until)
        if start is None:
            errors.append("bad_date")
        else:
            day = dt.date.fromisoformat(until) + dt.timedelta(days=1)
            filters["until"] = dt.datetime(day.year, day.month, day.day,
                                           tzinfo=LOCAL_TZ).timestamp()
    comp = args.get("compartment", "").strip()
    if comp:
        if comp.isdigit() and len(comp) <= 6:
            filters["compartment"] = int(comp)
        else:
            errors.append("bad_compartment")
    kind = args.get("kind", "").strip()
    if kind:
        if kind in AUDIT_KINDS:
            filters["actions"] = AUDIT_KINDS[kind]
        elif re.fullmatch(r"[a-z_]{1,40}", kind):
            filters["actions"] = (kind,)
        else:
            errors.append("bad_kind")
    try:
        actor = free_text.clean(args.get("actor", "")[:200], "actor",
                                policy=free_text.REFUSE, max_len=200, required=False)
    except CommandError as exc:
        actor = ""
        errors.append(exc.code)
    if actor:
        filters["actor"] = actor[:64]
    before = args.get("before", "").strip()
    if before.isdigit():
        filters["before"] = int(before)
    return filters, errors


@staff.get("/audit", endpoint="audit")
def audit_page():
    filters, codes = audit_filters(request.args)
    errors = [t("err_" + code) for code in codes]
    rows = [] if errors else service().audit_page(filters, AUDIT_PAGE + 1)
    more = len(rows) > AUDIT_PAGE
    rows = [in_words(r) for r in rows[:AUDIT_PAGE]]
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    older = url_for("staff.audit", before=rows[-1]["id"], **args) if more else None
    return render_template("staff/audit.html", page="audit", rows=rows, errors=errors,
                           kinds=list(AUDIT_KINDS), args=request.args, older=older,
                           csv_url=url_for("staff.audit_csv", **args),
                           csv_excel_url=url_for("staff.audit_csv", sep="semicolon", **args)
                           ), (400 if errors else 200)


def _export_detail(args):
    """What an export asked for, as a query string of the filters the page
    knows (checked by :func:`audit_filters`); anything else sent is not kept."""
    known = {key: args.get(key, "").strip() for key in EXPORT_KEYS}
    known["sep"] = "semicolon" if known["sep"] == "semicolon" else ""
    return urlencode({key: value for key, value in known.items() if value})


def _csv_cell(value):
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text          # never a formula in a spreadsheet
    return text


@staff.get("/audit.csv")
def audit_csv():
    filters, codes = audit_filters(request.args)
    if codes:      # refused before anything is written, the audit row included
        return fail("cpr_in_text" if "cpr_in_text" in codes else "bad_filter", 400,
                    message="; ".join(t("err_" + code) for code in codes))
    delimiter = ";" if request.args.get("sep") == "semicolon" else ","
    staff_service = service()
    audit(g.user.name, "audit_export", detail=_export_detail(request.args)[:200])

    lang = g.lang

    def generate():
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
        out.write("\ufeff")
        writer.writerow([t(key, lang) for key in CSV_COLUMNS])
        for n, row in enumerate(staff_service.audit_rows_for_csv(filters), start=1):
            r = in_words(row, lang)
            writer.writerow([r["id"], local_time(r["ts"]).isoformat(timespec="seconds"),
                             *map(_csv_cell, (r["actor"], r["action"], r["compartment"],
                                              r["patron"], r["reason"], r["detail"],
                                              r["code"]))])
            if n % CSV_BATCH == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    stamp = local_time(staff_service.now()).strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="bibbox-audit-{st().cfg.locker.id}-'
                             f'{stamp}.csv"'})
