"""Staff accounts, for admins only: ``GET /staff/accounts`` and POST
``/staff/accounts/{add,remove,unlock,end-sessions}``.  Each change is
written to the audit log; a refusal comes back as ``?error=<code>``."""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for

from bibbox.web.staff.accounts import ROLES, AccountError, check_name, check_password_text
from bibbox.web.staff.common import audit, st, staff


@staff.get("/accounts")
def accounts():
    staff_accounts = st().accounts
    rows = [(a, staff_accounts.session_count(a.name)) for a in staff_accounts.list()]
    return render_template("staff/accounts.html", page="accounts", rows=rows,
                           done=request.args.get("done", ""),
                           error=request.args.get("error", ""), roles=ROLES,
                           confirm_remove=_account_to_confirm(staff_accounts))


def _account_to_confirm(staff_accounts):
    """The account named by ``?remove=`` (asked to confirm), if it exists."""
    name = request.args.get("remove", "")
    return name if any(a.name == name for a in staff_accounts.list()) else None


def _account_action(fn, done):
    try:
        fn()
    except AccountError as exc:
        return redirect(url_for("staff.accounts", error=exc.code))
    return redirect(url_for("staff.accounts", done=done))


@staff.post("/accounts/add")
def account_add():
    name = request.form.get("name", "").strip().lower()
    role = request.form.get("role", "staff")
    password = request.form.get("password", "")

    def add():
        check_name(name)
        if password != request.form.get("password2", ""):
            raise AccountError("password_mismatch", "the passwords differ")
        check_password_text(password)
        st().accounts.add(name, password, role)
        audit(g.user.name, "staff_added", detail=f"{name} ({role})")
    return _account_action(add, "added")


@staff.post("/accounts/remove")
def account_remove():
    """Deletes only when confirmed (``confirmed=yes`` from the question the
    accounts page asks); otherwise the page asks first."""
    name = request.form.get("name", "")
    if request.form.get("confirmed") != "yes":
        return redirect(url_for("staff.accounts", remove=name))

    def remove():
        if name == g.user.name:
            raise AccountError("remove_self", "you cannot remove yourself")
        st().accounts.remove(name)
        audit(g.user.name, "staff_removed", detail=name)
    return _account_action(remove, "removed")


@staff.post("/accounts/unlock")
def account_unlock():
    name = request.form.get("name", "")

    def unlock():
        st().accounts.require(name)
        st().accounts.unlock(name=name)
        audit(g.user.name, "staff_unlocked", detail=name)
    return _account_action(unlock, "unlocked")


@staff.post("/accounts/end-sessions")
def account_end_sessions():
    name = request.form.get("name", "")

    def end():
        st().accounts.require(name)
        st().accounts.end_sessions(name)
        audit(g.user.name, "staff_sessions_ended", detail=name)
    return _account_action(end, "ended")
