"""Reading the audit log and the patrons the locker knows (for the staff
page).  Plain functions over a connection, so they run on the controller's
connection or on a reader of another thread alike; :class:`Store` offers
them as methods.

``filters`` of :func:`audit_page` (every key optional):
``since``/``until`` (Unix seconds, ``since`` <= ts < ``until``),
``compartment`` (a number), ``actions`` (a tuple of audit actions),
``actor`` (exact), ``before`` (an audit id: older rows only).
Rows come newest first, as dicts with ``id, ts, actor, action,
compartment, patron, reason, detail``.
"""

from __future__ import annotations

AUDIT_COLUMNS = ("id", "ts", "actor", "action", "compartment", "patron", "reason", "detail")


def audit_page(conn, filters: dict, limit: int) -> list[dict]:
    """At most ``limit`` audit rows matching ``filters``, newest first."""
    sql, params = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit WHERE 1=1", []
    for key, clause in (("since", "ts>=?"), ("until", "ts<?"),
                        ("compartment", "compartment=?"), ("actions", None),
                        ("actor", "actor=?"), ("before", "id<?")):
        if key not in filters:
            continue
        if key == "actions":
            actions = tuple(filters["actions"])
            sql += " AND action IN (%s)" % ",".join("?" * len(actions))
            params.extend(actions)
        else:
            sql += " AND " + clause
            params.append(filters[key])
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [dict(r) for r in conn.execute(sql, params)]


def audit_rows_all(conn, filters: dict, batch: int = 1000):
    """Every audit row matching ``filters``, newest first, read ``batch``
    rows at a time (a generator: the CSV export streams it)."""
    page_filters = dict(filters)
    while True:
        rows = audit_page(conn, page_filters, batch)
        yield from rows
        if len(rows) < batch:
            return
        page_filters["before"] = rows[-1]["id"]


def patron_known(conn, patron_hash: str) -> bool:
    """Is ``patron_hash`` a local patron, or the patron of any hold ever?"""
    return bool(
        conn.execute("SELECT 1 FROM patrons WHERE patron_hash=?",
                     (patron_hash,)).fetchone() or
        conn.execute("SELECT 1 FROM holds WHERE patron_hash=? LIMIT 1",
                     (patron_hash,)).fetchone())
