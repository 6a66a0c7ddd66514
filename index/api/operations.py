"""The access-control operations behind both the ``/api/v1`` routes and the admin CLI.

Each validates its input (400 via ValidationError/BadRequest), calls one store method and maps
store errors to API errors. Whether the caller may do it is the route's question (the CLI acts
as the administrator).
"""
from __future__ import annotations

from typing import Any

from .. import events, names, permissions, principals
from ..errors import BadRequest, Conflict, NotFound
from ..names import LIBRARY, RepoName, ValidationError
from ..services import services
from ..store import ACTIVE, AlreadyExists
from ..store import RecordNotFound as StoreNotFound
from ..store.access import OWNERS_TEAM, VISIBILITIES, AccessStore, NotEmpty, find_organization, find_robot
from ..store.records import OrganizationRecord, Principal, RobotRecord, TeamRecord

TEAM_RE = principals.ROBOT_SHORT_RE  # same rule: 2-30 of a-z, 0-9, _; starting with a letter
MAX_DESCRIPTION_CHARS = 2000


def access_store() -> AccessStore:
    return AccessStore(services().store)


# -- input ------------------------------------------------------------------------------------
def visibility(value: Any) -> str:
    if not isinstance(value, str) or value not in VISIBILITIES:
        raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}")
    return value


def repo_role(value: Any) -> str:
    if not isinstance(value, str) or value not in permissions.ROLE_NAMES:
        raise BadRequest("role must be one of read, write, admin")
    return value


def team_role(value: Any) -> str:
    if not isinstance(value, str) or value not in permissions.TEAM_ROLES:
        raise BadRequest(f"role must be one of {', '.join(permissions.TEAM_ROLES)}")
    return value


def description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_CHARS or "\x00" in value:
        raise BadRequest(f"description must be a string of at most {MAX_DESCRIPTION_CHARS} characters")
    return value


def team_name(value: Any) -> str:
    if not isinstance(value, str) or not TEAM_RE.fullmatch(value):
        raise ValidationError(f"invalid team name {str(value)[:80]!r}: 2 to 30 characters of a-z, "
                              "0-9 and _, starting with a letter")
    return value


def organization_name(value: Any) -> str:
    name = names.repo_name(value, "x").namespace  # a namespace: same rules
    if name == LIBRARY:
        raise ValidationError("'library' is the administrators' namespace")
    if "+" in name:
        raise ValidationError("an organization name cannot contain '+'")
    return name


# -- repositories -----------------------------------------------------------------------------
def repository_view(name: RepoName, user: Principal | None) -> dict[str, Any]:
    record = services().store.get_repository(name.namespace, name.repository)
    assert record is not None
    role = permissions.role_for(user, name)
    return {"namespace": name.namespace, "name": name.repository,
            "description": record.get("description", ""),
            "is_public": record.get("visibility", "public") == "public",
            "can_write": role is not None and role >= permissions.Role.WRITE,
            "can_admin": role is not None and role >= permissions.Role.ADMIN}


def create_repository(name: RepoName, creator: Principal, chosen_visibility: str,
                      text: str) -> None:
    grants = permissions.creator_grants(creator, name.namespace) if creator else {}
    try:
        access_store().create_repository(name.namespace, name.repository, creator["username"],
                                         text, chosen_visibility, grants)
    except AlreadyExists:
        raise Conflict(f"repository {name.display} already exists") from None
    events.record("repository_create", repository=name, visibility=chosen_visibility)


def set_visibility(name: RepoName, chosen: str) -> None:
    try:
        access_store().set_visibility(name.namespace, name.repository, chosen)
    except StoreNotFound:
        raise NotFound(f"repository {name.display} not found") from None
    events.record("visibility_change", repository=name, visibility=chosen)


def grants(name: RepoName, kind: str) -> dict[str, str]:
    record = services().store.get_repository(name.namespace, name.repository)
    if record is None or record["state"] != ACTIVE:
        raise NotFound(f"repository {name.display} not found")
    return dict((record.get("permissions") or {}).get(kind, {}))


def grant_user(name: RepoName, who: str, role: str | None) -> bool:
    """Grant (None: take away) ``role`` on ``name`` to account or robot ``who``."""
    if role is not None:
        if principals.find(who) is None:
            raise NotFound(f"user {who} not found")
        if "+" in who and who.partition("+")[0] != name.namespace:
            raise BadRequest(f"robot {who} belongs to another namespace; robots only get grants "
                             f"on repositories of their own namespace")
        _library_read_only(name, role)
    return _set_grant(name, "user", who, role)


def grant_team(name: RepoName, team: str, role: str | None) -> bool:
    org = find_organization(services().store, name.namespace)
    if org is None:  # teams exist only in organizations
        raise NotFound(f"team {team} not found: {name.namespace} is not an organization")
    if role is not None and team not in org["teams"]:
        raise NotFound(f"team {team} not found")
    return _set_grant(name, "team", team, role)


def _library_read_only(name: RepoName, role: str) -> None:
    if name.namespace == LIBRARY and role != "read":
        raise BadRequest("in library only administrators write: grant read only")


def _set_grant(name: RepoName, kind: str, who: str, role: str | None) -> bool:
    try:
        changed = access_store().set_grant(name.namespace, name.repository, kind, who, role)
    except StoreNotFound:
        raise NotFound(f"repository {name.display} not found") from None
    if role is None and not changed:
        raise NotFound(f"{who} has no permission on {name.display}")
    events.record("grant_change", repository=name, kind=kind, grantee=who, role=role)
    return changed


# -- organizations ----------------------------------------------------------------------------
def organization_or_404(org: str) -> OrganizationRecord:
    found = find_organization(services().store, org) if names.NAMESPACE_RE.fullmatch(org) else None
    if found is None:
        raise NotFound(f"organization {org} not found")
    return found


def create_organization(name: Any, email: Any, creator: str) -> OrganizationRecord:
    name = organization_name(name)
    email = names.email(email)
    try:
        return access_store().create_organization(name, email, creator)
    except AlreadyExists:
        raise Conflict(f"the name {name} is taken (user and organization names share one space)") from None


def delete_organization(org: str) -> None:
    organization_or_404(org)
    try:
        access_store().delete_organization(org)
    except NotEmpty:
        raise Conflict(f"organization {org} still has repositories: delete them first") from None
    except StoreNotFound:
        raise NotFound(f"organization {org} not found") from None
    # Its name is free again: an account registered under it starts with nothing of it (the
    # image versions its robots uploaded are retired, its webhooks too).
    registry = services().registry
    if registry is not None:
        registry.account_removed(org, "")
    events.AccountRemoval().account_removed(org)


def set_team(org: str, team: Any, role: str, text: Any) -> TeamRecord:
    team = team_name(team)
    if team == OWNERS_TEAM and role != "admin":
        raise BadRequest("the owners team always has role admin")
    try:
        found = access_store().set_team(org, team, role, None if text is None else description(text))
    except StoreNotFound:
        raise NotFound(f"organization {org} not found") from None
    events.record("role_change", organization=org, team=team, role=role)
    return found


def delete_team(org: str, team: str) -> None:
    if team == OWNERS_TEAM:
        raise BadRequest("the owners team cannot be deleted")
    try:
        access_store().delete_team(org, team)
    except StoreNotFound as exc:
        raise NotFound(str(exc)) from None


def team_members(org: str, team: str) -> list[dict[str, str]]:
    found = organization_or_404(org)["teams"].get(team)
    if found is None:
        raise NotFound(f"team {team} not found")
    return [{"name": member, "kind": "robot" if "+" in member else "user"}
            for member in found["members"]]


def set_member(org: str, team: str, member: str, present: bool) -> None:
    found = organization_or_404(org)
    if team not in found["teams"]:
        raise NotFound(f"team {team} not found")
    if present:
        if principals.find(member) is None:
            raise NotFound(f"user {member} not found")
        if "+" in member and member.partition("+")[0] != org:
            raise BadRequest(f"robot {member} belongs to another namespace")
    elif team == OWNERS_TEAM and found["teams"][team]["members"] == [member]:
        raise BadRequest("an organization keeps at least one owner")
    try:
        changed = access_store().set_member(org, team, member, present)
    except StoreNotFound as exc:
        raise NotFound(str(exc)) from None
    if not present and not changed:
        raise NotFound(f"{member} is not a member of team {team}")
    events.record("role_change", organization=org, team=team, member=member, present=present)


# -- robots -----------------------------------------------------------------------------------
def robot_view(record: RobotRecord) -> dict[str, str]:
    return {"name": record["name"], "token": principals.token_of(record)}


def create_robot(namespace: str, short: Any, text: Any = None) -> tuple[dict[str, str], bool]:
    short = principals.robot_short(short)
    record, created = access_store().create_robot(namespace, short, principals.new_nonce(),
                                                  description(text))
    return robot_view(record), created


def robot_or_404(namespace: str, short: str) -> RobotRecord:
    full = f"{namespace}+{short}"
    record = find_robot(services().store, full) if principals.is_robot_name(full) else None
    if record is None:
        raise NotFound(f"robot {full} not found")
    return record


def regenerate_robot(namespace: str, short: str) -> dict[str, str]:
    record = robot_or_404(namespace, short)
    try:
        record = access_store().set_robot_token(record["name"], principals.new_nonce())
    except StoreNotFound:
        raise NotFound(f"robot {record['name']} not found") from None
    return robot_view(record)


def delete_robot(namespace: str, short: str) -> None:
    record = robot_or_404(namespace, short)
    try:
        access_store().delete_robot(record["name"])
    except StoreNotFound:
        raise NotFound(f"robot {record['name']} not found") from None
    # A new robot of the same name is another robot: it must not satisfy this one's uploads.
    registry = services().registry
    if registry is not None:
        registry.principal_removed(record["name"])
