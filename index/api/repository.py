"""``/api/v1/repository``: create, show, change visibility, and grants to users, robots, teams."""
from __future__ import annotations

from flask import Response, current_app

from .. import auth, names, permissions
from ..errors import Conflict, Forbidden
from ..names import LIBRARY, RepoName
from ..payloads import empty_response, json_response
from ..services import services
from ..store.records import Principal
from . import operations
from .common import body, bp, caller, repo


def _role_or_404(name: RepoName, user: Principal | None) -> permissions.Role:
    """The caller's role; a repository it may not read answers exactly as a missing one."""
    role = permissions.role_for(user, name)
    record = services().store.get_repository(name.namespace, name.repository)
    if role is None or record is None or record["state"] != "active":
        raise auth.not_found(name)
    return role


def _admin_of(namespace: str, repository: str) -> RepoName:
    name = repo(namespace, repository)
    user = caller()
    if _role_or_404(name, user) < permissions.Role.ADMIN:
        raise Forbidden(f"you are not an administrator of repository {name.display}")
    return name


@bp.post("/repository")
def create_repository() -> Response:
    user = caller()
    data = body("namespace", "repository", optional=("visibility", "description"))
    name = names.repo_name(data["namespace"], data["repository"])
    chosen = operations.visibility(data.get("visibility", current_app.config["DEFAULT_VISIBILITY"]))
    text = operations.description(data.get("description"))
    if not permissions.can_create(user, name.namespace):
        if name.namespace == LIBRARY:
            raise Forbidden("only administrators may create library repositories")
        raise Forbidden(f"you may not create repositories in namespace {name.namespace}")
    existing = services().store.get_repository(name.namespace, name.repository)
    if existing is not None:
        raise Conflict(f"repository {name.display} already exists")
    operations.create_repository(name, user, chosen, text)
    return json_response(operations.repository_view(name, user), 201)


@bp.get("/repository/<namespace>/<repository>")
def get_repository(namespace: str, repository: str) -> Response:
    name = repo(namespace, repository)
    user = auth.reader()
    _role_or_404(name, user)
    return json_response(operations.repository_view(name, user))


@bp.post("/repository/<namespace>/<repository>/changevisibility")
def change_visibility(namespace: str, repository: str) -> Response:
    name = _admin_of(namespace, repository)
    chosen = operations.visibility(body("visibility")["visibility"])
    operations.set_visibility(name, chosen)
    return json_response({"success": True, "visibility": chosen})


def _grant_list(name: RepoName, kind: str) -> Response:
    grants = operations.grants(name, kind)
    if kind == "user":
        listed = {who: {"name": who, "role": role, "is_robot": "+" in who} for who, role in sorted(grants.items())}
    else:
        listed = {who: {"name": who, "role": role} for who, role in sorted(grants.items())}
    return json_response({"permissions": listed})


@bp.get("/repository/<namespace>/<repository>/permissions/user/")
def list_user_permissions(namespace: str, repository: str) -> Response:
    return _grant_list(_admin_of(namespace, repository), "user")


@bp.get("/repository/<namespace>/<repository>/permissions/team/")
def list_team_permissions(namespace: str, repository: str) -> Response:
    return _grant_list(_admin_of(namespace, repository), "team")


@bp.put("/repository/<namespace>/<repository>/permissions/user/<username>")
def put_user_permission(namespace: str, repository: str, username: str) -> Response:
    name = _admin_of(namespace, repository)
    role = operations.repo_role(body("role")["role"])
    operations.grant_user(name, username, role)
    return json_response({"name": username, "role": role})


@bp.delete("/repository/<namespace>/<repository>/permissions/user/<username>")
def delete_user_permission(namespace: str, repository: str, username: str) -> Response:
    name = _admin_of(namespace, repository)
    operations.grant_user(name, username, None)
    return empty_response(204)


@bp.put("/repository/<namespace>/<repository>/permissions/team/<team>")
def put_team_permission(namespace: str, repository: str, team: str) -> Response:
    name = _admin_of(namespace, repository)
    role = operations.repo_role(body("role")["role"])
    operations.grant_team(name, team, role)
    return json_response({"name": team, "role": role})


@bp.delete("/repository/<namespace>/<repository>/permissions/team/<team>")
def delete_team_permission(namespace: str, repository: str, team: str) -> Response:
    name = _admin_of(namespace, repository)
    operations.grant_team(name, team, None)
    return empty_response(204)
