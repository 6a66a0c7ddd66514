"""``/api/v1/organization``: organizations, their teams and members."""
from __future__ import annotations

from flask import Response

from .. import permissions
from ..errors import Forbidden
from ..payloads import empty_response, json_response
from ..store.records import OrganizationRecord
from . import operations
from .common import body, bp, caller, person


def _admin_of(org: str) -> OrganizationRecord:
    """The organization, if the caller administers it (404 unknown, 403 not an admin)."""
    user = caller()
    found = operations.organization_or_404(org)
    if not permissions.can_admin_namespace(user, org):
        raise Forbidden(f"you are not an administrator of organization {org}")
    return found


def _member_of(org: str) -> OrganizationRecord:
    user = caller()
    found = operations.organization_or_404(org)
    if not (permissions.can_admin_namespace(user, org) or permissions.team_roles(user, org)):
        raise Forbidden(f"you are not a member of organization {org}")
    return found


@bp.post("/organization/")
def create_organization() -> Response:
    user = person()
    data = body("name", "email")
    created = operations.create_organization(data["name"], data["email"], user["username"])
    return json_response({"name": created["name"], "email": created["email"]}, 201)


@bp.get("/organization/<org>")
def get_organization(org: str) -> Response:
    found = _member_of(org)
    teams = {team: {"name": team, "role": info["role"], "description": info.get("description", ""),
                    "member_count": len(info["members"])}
             for team, info in sorted(found["teams"].items())}
    return json_response({"name": found["name"], "email": found["email"], "teams": teams})


@bp.delete("/organization/<org>")
def delete_organization(org: str) -> Response:
    _admin_of(org)
    operations.delete_organization(org)
    return empty_response(204)


@bp.put("/organization/<org>/team/<team>")
def put_team(org: str, team: str) -> Response:
    _admin_of(org)
    data = body("role", optional=("description",))
    role = operations.team_role(data["role"])
    operations.set_team(org, team, role, data.get("description"))
    return json_response({"name": team, "role": role})


@bp.delete("/organization/<org>/team/<team>")
def delete_team(org: str, team: str) -> Response:
    _admin_of(org)
    operations.delete_team(org, team)
    return empty_response(204)


@bp.get("/organization/<org>/team/<team>/members")
def list_members(org: str, team: str) -> Response:
    _member_of(org)
    return json_response({"members": operations.team_members(org, team)})


@bp.put("/organization/<org>/team/<team>/members/<member>")
def put_member(org: str, team: str, member: str) -> Response:
    _admin_of(org)
    operations.set_member(org, team, member, True)
    return json_response({"name": member, "kind": "robot" if "+" in member else "user"})


@bp.delete("/organization/<org>/team/<team>/members/<member>")
def delete_member(org: str, team: str, member: str) -> Response:
    _admin_of(org)
    operations.set_member(org, team, member, False)
    return empty_response(204)
