"""Administration pages for site administrators: accounts and repositories."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from .. import events, names
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
        store.delete_user(username)
        return redirect(url_for("web.admin_page", done=f"deleted {username}"), 303)
    changes = _ACCOUNT_ACTIONS.get(action)
    if changes is None:
        raise NotFound(f"no account action {action[:32]}")
    if username == admin["username"] and action in ("deactivate", "demote"):
        raise BadRequest("you cannot lock yourself out; ask another administrator")
    store.update_user(username, active=changes.get("active"), admin=changes.get("admin"))
    return redirect(url_for("web.admin_page", done=f"{action}d {username}"), 303)


@bp.post("/admin/repositories/<namespace>/<repository>/delete")
def repository_delete(namespace: str, repository: str) -> BaseResponse:
    site_admin()
    name = names.repo_name(namespace, repository)
    found = services()
    removed = found.store.delete_repository(name.namespace, name.repository)
    if found.registry is not None:
        found.registry.repository_removed(removed)
    found.activity.forget(name.full)
    shown = name.repository if name.namespace == LIBRARY else name.full
    return redirect(url_for("web.admin_page", done=f"deleted repository {shown}"), 303)
