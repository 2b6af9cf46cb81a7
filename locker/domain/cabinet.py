"""Where each compartment sits in the cabinet's front (issue 12, item 8).

A compartment's place is ``column`` (from 1 at the left), ``row`` (from 1 at
the top) and ``rows``, the rows its door spans (a tall door spans several).
Either every compartment has a place or none has; no two doors may share a
cell.  :func:`front` is the layout the kiosk and the staff page draw.
"""

from __future__ import annotations


def position_problems(compartments):
    """What is wrong with the places of ``compartments`` (raw mappings with
    number, and maybe column, row, rows), as ``compartments[i].key: ...``."""
    problems, cells = [], {}
    placed = [("column" in c or "row" in c) for c in compartments]
    if any(placed) and not all(placed):
        missing = [str(c.get("number", i + 1)) for i, c in enumerate(compartments)
                   if not placed[i]]
        problems.append("compartments: give every compartment a place (column, row) "
                        f"or none; these have none: {', '.join(missing[:10])}")
    for i, c in enumerate(compartments):
        if not placed[i]:
            continue
        path = f"compartments[{i}]"
        if "column" not in c or "row" not in c:
            problems.append(f"{path}: a place needs both column and row")
            continue
        for r in range(c["row"], c["row"] + c.get("rows", 1)):
            cell = (c["column"], r)
            if cell in cells:
                problems.append(f"{path}: column {cell[0]}, row {cell[1]} overlaps "
                                f"compartment {cells[cell]}")
                break
            cells[cell] = c.get("number", "?")
    return problems


def front(compartments):
    """The cabinet's front: ``{"columns", "rows", "doors": [{"n", "column",
    "row", "rows", "size"}]}`` from configured compartments (with
    ``column``/``row``/``rows``), or None when they have no places."""
    placed = [c for c in compartments if c.column and c.row]
    if not placed:
        return None
    return {"columns": max(c.column for c in placed),
            "rows": max(c.row + c.rows - 1 for c in placed),
            "doors": [{"n": c.number, "column": c.column, "row": c.row, "rows": c.rows,
                       "size": c.size} for c in sorted(placed, key=lambda c: c.number)]}
