"""The staff page, ``/staff``: loading, unloading, the compartment overview,
the audit log and (for admins) staff accounts.

Pages (HTML; every one needs a login):

- ``GET  /staff/``            compartment overview, live (long poll)
- ``GET  /staff/load``        loading, keyboard and scanner first
- ``GET  /staff/unload``      what must come out
- ``GET  /staff/audit``       audit log (filters: from, to, compartment, kind,
  actor; ``before`` pages back); ``GET /staff/audit.csv`` the same as CSV
- ``GET  /staff/accounts``    admin only: staff accounts; POST
  ``/staff/accounts/{add,remove,unlock,end-sessions}``
- ``GET|POST /staff/login``, ``POST /staff/logout``, ``GET /staff/lang/<da|en>``

JSON API (``/staff/api``; answers ``{"ok": true, ...}`` or
``{"ok": false, "error": code, "message": text}``):

- ``GET  state?version=N&wait=S``  the tiles; long-polled like the kiosk
- ``GET  announced``, ``GET unload``, ``GET holds?ids=a,b``
- ``POST item {barcode}``      is this an item? (and which announced hold)
- ``POST patron {card}``       hash a card number at once: an opaque token
- ``POST propose {size, patron | hold_id}``
- ``POST load {draft, items+patron | hold_id, size, compartment, fp, pickup_days}``
- ``POST open {compartment, reason, purpose, fp}``, ``POST removed {compartment, reason, fp}``
- ``POST cancel {hold_id, reason}``, ``POST move {hold_id, to, fp}``
- ``POST service {compartment, out_of_service, reason, fp}``, ``POST alarm/clear {alarm, compartment}``
- ``GET  login-token``, ``POST login {name, password}``, ``GET me``

Where each part lives: :mod:`.common` (the blueprint, ``PUBLIC``/``ADMIN``,
texts, errors), :mod:`.auth` (the gate, sessions, CSRF, login),
:mod:`.pages` (live pages and tiles), :mod:`.api` and :mod:`.checks` (the
JSON API), :mod:`.audit` (audit log, CSV), :mod:`.admin` (accounts pages),
:mod:`.accounts` (password, lockout and session rules).  The locker is
reached only through :class:`bibbox.locker.app.staff.StaffService`.

Roles: *staff* may do every locker operation (load, unload, open a door
with a reason, out of service, clear an alarm: the people at the locker are
the ones who fix a jam); *admin* may also manage staff accounts.  Patrons
appear only as pseudonyms (``P-1a2b3c4d``).
"""

from bibbox.web.staff import admin, api, audit, auth, pages  # noqa: F401  (routes)
from bibbox.web.staff.common import ADMIN, PUBLIC, staff

__all__ = ["ADMIN", "PUBLIC", "staff"]
