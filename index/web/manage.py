"""Managing repositories and organizations in the browser: visibility, grants, teams, robots.

Every form calls the same operations as the ``/api/v1`` routes (:mod:`index.api.operations`), so
the pages enforce exactly the API's rules; who may use a form is asked of :mod:`index.permissions`.
"""
from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from .. import events, names, permissions
from ..api import operations
from ..errors import BadRequest, Forbidden, NotFound
from ..events.notifications import EVENTS, public_view
from ..names import RepoName
from ..services import services
from ..store import ACTIVE
from ..store.access import find_organization
from ..store.records import OrganizationRecord, Principal, RepositoryRecord
from . import bp
from .account import signed_in

# Changes of a grant are "none" (take it away) or a role.
_NO_ROLE = "none"


def organization_view(namespace: str, viewer: Principal | None) -> dict[str, Any] | None:
    """Teams and members of organization ``namespace`` for its members and site admins; None when
    it is no organization or the viewer may not see inside it."""
    org = find_organization(services().store, namespace)
    if org is None or viewer is None:
        return None
    if not (permissions.team_roles(viewer, namespace) or permissions.can_admin_namespace(viewer, namespace)):
        return None
    teams = [{"name": team, "role": found["role"], "description": found.get("description", ""),
              "members": operations.team_members(namespace, team)}
             for team, found in sorted(org["teams"].items())]
    return {"name": namespace, "teams": teams}


def _manages_namespace(viewer: Principal | None, namespace: str) -> bool:
    """Who manages a namespace's robots and webhooks (the API's rule): its admins
    (``can_admin_namespace``), never a robot."""
    return (viewer is not None and not permissions.is_robot(viewer)
            and permissions.can_admin_namespace(viewer, namespace))


def robots_of(namespace: str, viewer: Principal | None) -> list[dict[str, Any]] | None:
    """The robot accounts of ``namespace`` with their tokens, for its admins (None otherwise)."""
    if not _manages_namespace(viewer, namespace):
        return None
    return [{**operations.robot_view(record), "namespace": namespace,
             "short": record["name"].partition("+")[2]}
            for record in operations.access_store().list_robots(namespace)]


def _admin_of(namespace: str, repository: str) -> tuple[RepoName, RepositoryRecord]:
    viewer = signed_in()
    name = names.repo_name(namespace, repository)
    record = services().store.get_repository(name.namespace, name.repository)
    if record is None or record["state"] != ACTIVE or not permissions.can_read(viewer, name):
        raise NotFound(f"repository {name.display} not found")
    if not permissions.can_admin(viewer, name):
        raise Forbidden(f"only admins of {name.display} may change its settings")
    return name, record


def _back(name: RepoName, done: str) -> BaseResponse:
    return redirect(url_for("web.repository_settings", namespace=name.namespace,
                            repository=name.repository, done=done), 303)


@bp.get("/repository/<namespace>/<repository>/settings")
def repository_settings(namespace: str, repository: str) -> str:
    name, record = _admin_of(namespace, repository)
    organization = find_organization(services().store, name.namespace)
    return render_template(
        "repository_settings.html", name=name, record=record,
        users=sorted(operations.grants(name, "user").items()),
        teams=sorted(operations.grants(name, "team").items()),
        team_names=sorted(organization["teams"]) if organization else None,
        roles=list(permissions.ROLE_NAMES), message=request.args.get("done"),
        webhooks=[public_view(found)
                  for found in events.current().notifications.in_scope(name.namespace, name.repository)],
        webhook_events=EVENTS, secret=request.args.get("secret"))


@bp.post("/repository/<namespace>/<repository>/settings/webhooks")
def webhook_add(namespace: str, repository: str) -> BaseResponse:
    """A webhook in Quay's shape, through the same function as the API and the CLI."""
    name, _ = _admin_of(namespace, repository)
    body = {"event": request.form.get("event"), "method": "webhook", "title": request.form.get("title", ""),
            "config": {"url": request.form.get("url", "").strip()}}
    try:
        created, generated = events.add_notification(body, name.namespace, name.repository, signed_in()["username"])
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    # The generated secret is shown once, on the page this redirects to.
    return redirect(url_for("web.repository_settings", namespace=name.namespace, repository=name.repository,
                            done=f"webhook {created['uuid'][:8]} added", secret=generated), 303)


def _webhook_of(name: RepoName, uuid: str) -> dict[str, Any]:
    found = events.current().notifications.get(uuid)
    if found is None or (found["namespace"], found["repository"]) != (name.namespace, name.repository):
        raise NotFound(f"webhook {uuid[:40]} not found")
    return found


@bp.post("/repository/<namespace>/<repository>/settings/webhooks/<uuid>/delete")
def webhook_delete(namespace: str, repository: str, uuid: str) -> BaseResponse:
    name, _ = _admin_of(namespace, repository)
    events.remove_notification(_webhook_of(name, uuid), signed_in()["username"])
    return _back(name, f"webhook {uuid[:8]} removed")


@bp.post("/repository/<namespace>/<repository>/settings/webhooks/<uuid>/test")
def webhook_test(namespace: str, repository: str, uuid: str) -> BaseResponse:
    name, _ = _admin_of(namespace, repository)
    events.queue_test(_webhook_of(name, uuid), signed_in()["username"])
    return _back(name, f"test delivery queued for webhook {uuid[:8]}")


@bp.post("/repository/<namespace>/<repository>/settings/visibility")
def repository_visibility(namespace: str, repository: str) -> BaseResponse:
    name, _ = _admin_of(namespace, repository)
    chosen = operations.visibility(request.form.get("visibility"))
    operations.set_visibility(name, chosen)
    return _back(name, f"{name.full} is now {chosen}")


@bp.post("/repository/<namespace>/<repository>/settings/grant")
def repository_grant(namespace: str, repository: str) -> BaseResponse:
    name, _ = _admin_of(namespace, repository)
    kind = request.form.get("kind", "user")
    who = request.form.get("name", "").strip()
    raw_role = request.form.get("role", "")
    role = None if raw_role == _NO_ROLE else operations.repo_role(raw_role)
    if kind == "team":
        operations.grant_team(name, who, role)
    else:
        operations.grant_user(name, who, role)
    return _back(name, f"granted {raw_role} to {who}" if role else f"{who} no longer has a role")


def _org_admin(org: str) -> OrganizationRecord:
    viewer = signed_in()
    organization = operations.organization_or_404(org)
    if not permissions.can_admin_namespace(viewer, org):
        raise Forbidden(f"only admins of organization {org} may manage it")
    return organization


def _back_to_org(org: str, done: str) -> BaseResponse:
    return redirect(url_for("web.organization_settings", org=org, done=done), 303)


@bp.get("/organization/new")
def organization_form() -> str:
    signed_in()
    return render_template("organization_new.html", error=None)


@bp.post("/organization/new")
def organization_create() -> BaseResponse:
    viewer = signed_in()
    if permissions.is_robot(viewer):
        raise Forbidden("robot accounts cannot create organizations")
    org = operations.create_organization(request.form.get("name", "").strip(),
                                         request.form.get("email", "").strip(), viewer["username"])
    return _back_to_org(org["name"], f"organization {org['name']} created; you are in its owners team")


@bp.get("/organization/<org>/settings")
def organization_settings(org: str) -> str:
    organization = _org_admin(org)
    view = organization_view(org, signed_in())
    return render_template("organization_settings.html", org=org, organization=organization,
                           teams=view["teams"] if view else [], team_roles=permissions.TEAM_ROLES,
                           robots=robots_of(org, signed_in()), robots_namespace=org,
                           message=request.args.get("done"), **webhook_page_context(org, signed_in()))


@bp.post("/organization/<org>/teams")
def team_save(org: str) -> BaseResponse:
    _org_admin(org)
    team = request.form.get("team", "").strip()
    operations.set_team(org, team, operations.team_role(request.form.get("role")),
                        request.form.get("description"))
    return _back_to_org(org, f"team {team} saved")


@bp.post("/organization/<org>/teams/<team>/delete")
def team_delete(org: str, team: str) -> BaseResponse:
    _org_admin(org)
    operations.delete_team(org, team)
    return _back_to_org(org, f"team {team} deleted")


@bp.post("/organization/<org>/teams/<team>/members")
def member_add(org: str, team: str) -> BaseResponse:
    _org_admin(org)
    member = request.form.get("member", "").strip()
    operations.set_member(org, team, member, True)
    return _back_to_org(org, f"{member} added to {team}")


@bp.post("/organization/<org>/teams/<team>/members/<member>/remove")
def member_remove(org: str, team: str, member: str) -> BaseResponse:
    _org_admin(org)
    operations.set_member(org, team, member, False)
    return _back_to_org(org, f"{member} removed from {team}")


# -- webhooks of a whole namespace (a user's own, or an organization's) ------------------------------
def namespace_webhooks(namespace: str, viewer: Principal | None) -> list[dict[str, Any]] | None:
    """The namespace-wide webhooks of ``namespace`` for its admins (None otherwise), as the API
    lists them (no secrets)."""
    if not _manages_namespace(viewer, namespace):
        return None
    return [public_view(found) for found in events.current().notifications.in_scope(namespace, None)]


def webhook_page_context(namespace: str, viewer: Principal | None) -> dict[str, Any]:
    """What the webhooks.html include needs on a namespace's page."""
    return {"webhooks": namespace_webhooks(namespace, viewer), "webhook_events": EVENTS,
            "hooks_namespace": namespace, "hooks_repository": None, "secret": request.args.get("secret")}


def _hooks_admin(namespace: str) -> Principal:
    """The signed-in account, if it may manage ``namespace``'s webhooks (:func:`_manages_namespace`)."""
    viewer = signed_in()
    if not names.NAMESPACE_RE.fullmatch(namespace):
        raise NotFound(f"namespace {namespace[:80]!r} not found")
    if not _manages_namespace(viewer, namespace):
        raise Forbidden(f"only admins of {namespace} may manage its webhooks")
    return viewer


def _namespace_webhook(namespace: str, uuid: str) -> dict[str, Any]:
    found = events.current().notifications.get(uuid) if len(uuid) <= 64 else None
    if found is None or (found["namespace"], found["repository"]) != (namespace, None):
        raise NotFound(f"webhook {uuid[:40]} not found")
    return found


def _after_webhook_change(namespace: str, done: str, secret: str | None = None) -> BaseResponse:
    viewer = signed_in()
    if namespace == viewer["username"]:
        return redirect(url_for("web.account_page", done=done, secret=secret), 303)
    if find_organization(services().store, namespace) is None:  # a site admin, for another user
        return redirect(url_for("web.namespace_page", namespace=namespace), 303)
    return redirect(url_for("web.organization_settings", org=namespace, done=done, secret=secret), 303)


@bp.post("/webhooks/<namespace>")
def namespace_webhook_add(namespace: str) -> BaseResponse:
    """A webhook hearing every repository of the namespace (the API's ``/user`` or
    ``/organization/<org>`` notifications), through the same function as the API and the CLI."""
    viewer = _hooks_admin(namespace)
    body = {"event": request.form.get("event"), "method": "webhook", "title": request.form.get("title", ""),
            "config": {"url": request.form.get("url", "").strip()}}
    try:
        created, generated = events.add_notification(body, namespace, None, viewer["username"])
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return _after_webhook_change(namespace, f"webhook {created['uuid'][:8]} added", generated)


@bp.post("/webhooks/<namespace>/<uuid>/delete")
def namespace_webhook_delete(namespace: str, uuid: str) -> BaseResponse:
    viewer = _hooks_admin(namespace)
    events.remove_notification(_namespace_webhook(namespace, uuid), viewer["username"])
    return _after_webhook_change(namespace, f"webhook {uuid[:8]} removed")


@bp.post("/webhooks/<namespace>/<uuid>/test")
def namespace_webhook_test(namespace: str, uuid: str) -> BaseResponse:
    viewer = _hooks_admin(namespace)
    events.queue_test(_namespace_webhook(namespace, uuid), viewer["username"])
    return _after_webhook_change(namespace, f"test delivery queued for webhook {uuid[:8]}")


def _robot_admin(namespace: str) -> Principal:
    viewer = signed_in()
    if not _manages_namespace(viewer, namespace):
        raise Forbidden(f"only admins of {namespace} may manage its robot accounts")
    return viewer


def _after_robot_change(namespace: str, done: str) -> BaseResponse:
    viewer = signed_in()
    if namespace == viewer["username"]:
        return redirect(url_for("web.account_page", done=done), 303)
    return _back_to_org(namespace, done)


@bp.post("/robots/<namespace>")
def robot_create(namespace: str) -> BaseResponse:
    _robot_admin(namespace)
    robot, created = operations.create_robot(namespace, request.form.get("short", "").strip())
    return _after_robot_change(namespace, f"robot {robot['name']} {'created' if created else 'exists'}")


@bp.post("/robots/<namespace>/<short>/regenerate")
def robot_regenerate(namespace: str, short: str) -> BaseResponse:
    _robot_admin(namespace)
    robot = operations.regenerate_robot(namespace, short)
    return _after_robot_change(namespace, f"new token for {robot['name']}; the old one no longer works")


@bp.post("/robots/<namespace>/<short>/delete")
def robot_delete(namespace: str, short: str) -> BaseResponse:
    _robot_admin(namespace)
    operations.delete_robot(namespace, short)
    return _after_robot_change(namespace, f"robot {namespace}+{short} deleted")
