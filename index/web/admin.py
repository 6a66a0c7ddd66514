"""Administration pages for site administrators: accounts and repositories."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from .. import accounts, events, names
from ..errors import BadRequest, Forbidden, NotFound
from ..events.audit import Query
from ..names import LIBRARY
from ..services import services
from ..store.records import UserRecord
from . import bp
from .account import signed_in

AUDIT_ROWS = 50  # the newest records; the whole trail: docker-index audit query, /api/v1/superuser/logs

# What each account button does to the record.
_ACCOUNT_ACTIONS: dict[str, dict[str, bool]] = {
    "activate": {"active": True}, "deactivate": {"active": False},
    "promote": {"admin": True}, "demote": {"admin": False},
}


def site_admin() -> UserRecord:
    user = signed_in()
    if not user.get("admin"):
        raise Forbidden("only site administrators may see this page")
    return user


@bp.get("/admin")
def admin_page() -> str:
    site_admin()
    store = services().store
    accounts = sorted(store.list_users(), key=lambda u: (bool(u.get("active")), u["username"]))
    repositories = sorted(store.iter_repositories(), key=lambda r: (r["namespace"], r["name"]))
    trail, _ = events.current().audit.query(Query(), limit=AUDIT_ROWS)
    return render_template("admin.html", accounts=accounts, repositories=repositories, trail=trail,
                           message=request.args.get("done"))


@bp.post("/admin/accounts/<username>/<action>")
def account_action(username: str, action: str) -> BaseResponse:
    admin = site_admin()
    store = services().store
    if action == "delete":
        if username == admin["username"]:
            raise BadRequest("you cannot delete your own account here")
        return _delete_account(admin, username)
    changes = _ACCOUNT_ACTIONS.get(action)
    if changes is None:
        raise NotFound(f"no account action {action[:32]}")
    if username == admin["username"] and action in ("deactivate", "demote"):
        raise BadRequest("you cannot lock yourself out; ask another administrator")
    store.update_user(username, active=changes.get("active"), admin=changes.get("admin"))
    return redirect(url_for("web.admin_page", done=f"{action}d {username}"), 303)


def _delete_account(admin: UserRecord, username: str) -> BaseResponse:
    """What ``users delete`` does (index.accounts): its repositories are deleted or transferred
    as the form says, and its name stays reserved."""
    found = services()
    try:
        plan = accounts.plan_deletion(found.store, username, request.form.get("repositories") or None,
                                      request.form.get("to") or None)
        accounts.delete_account(found.store, found.registry, plan, events.AccountRemoval(admin["username"]))
    except accounts.AccountError as exc:
        raise BadRequest(str(exc)) from None
    events.record("account_delete", account=username, repositories_deleted=list(plan.deleted),
                  repositories_moved=list(plan.moved))
    done = [f"deleted {username}"] + ([f"deleted {', '.join(plan.deleted)}"] if plan.deleted else []) + \
        ([f"moved {', '.join(plan.moved)} to {plan.to}"] if plan.moved else [])
    return redirect(url_for("web.admin_page", done="; ".join(done) + "; the name stays reserved"), 303)


@bp.post("/admin/repositories/<namespace>/<repository>/delete")
def repository_delete(namespace: str, repository: str) -> BaseResponse:
    admin = site_admin()
    name = names.repo_name(namespace, repository)
    found = services()
    removed = found.store.delete_repository(name.namespace, name.repository)
    found.activity.forget(name.full)
    events.repository_deleted(name, admin["username"], removed)
    if found.registry is not None:
        found.registry.repository_removed(removed)
    shown = name.repository if name.namespace == LIBRARY else name.full
    return redirect(url_for("web.admin_page", done=f"deleted repository {shown}"), 303)
