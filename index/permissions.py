"""Who may do what to a repository: the one place that answers it.

Every route (index, registry, search, ``/api/v1``, web pages, webhooks) asks these functions
instead of comparing names itself.

Roles are cumulative: ``READ`` < ``WRITE`` < ``ADMIN``. ``user`` is an account record as the
store returns it, a robot as :func:`index.principals.find` returns it (``"robot": True``), or
None for an anonymous caller; an inactive account counts as anonymous. The model:

* a repository is ``public`` (anyone reads it; anonymous callers only with
  ``INDEX_ANONYMOUS_PULL``) or ``private`` (only those with a role see it at all);
* site administrators are admin of everything; a user namespace's owner is admin of all its
  repositories; in ``library`` only administrators have more than read;
* in an organization, a member of a team with role ``admin`` is admin of every repository,
  ``creator`` may also create repositories (and is admin of those it created), ``member`` has
  only what is granted to the team;
* grants per repository to users, robots (``<namespace>+<name>``) and teams of the
  repository's organization; the highest of everything that applies counts.
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from .current import this_app
from .names import LIBRARY, RepoName
from .services import services
from .store.access import PUBLIC, find_organization, holders_of, repository_facts
from .store.records import Grants, Principal
from .store.records import is_robot as is_robot  # the routes ask here, beside the other questions


class Role(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


ROLE_NAMES = {"read": Role.READ, "write": Role.WRITE, "admin": Role.ADMIN}
TEAM_ROLES = ("member", "creator", "admin")
# What a token's access level needs of its holder, checked again on every use of the token.
TOKEN_NEEDS = {"read": Role.READ, "write": Role.WRITE, "delete": Role.ADMIN}


def _acting(user: Principal | None) -> Principal | None:
    return user if user is not None and user.get("active") else None


def team_roles(user: Principal | None, organization: str) -> dict[str, str]:
    """team -> team role, for the teams of ``organization`` that ``user`` belongs to."""
    user = _acting(user)
    if user is None:
        return {}
    org = find_organization(services().store, organization)
    if org is None:
        return {}
    return {team: found["role"] for team, found in org["teams"].items()
            if user["username"] in found["members"]}


def _namespace_admin(user: Principal | None, namespace: str) -> bool:
    user = _acting(user)
    if user is None:
        return False
    if user.get("admin"):
        return True
    if namespace == LIBRARY:
        return False
    if not is_robot(user) and namespace == user["username"]:
        return True
    return "admin" in team_roles(user, namespace).values()


def role_for(user: Principal | None, name: RepoName) -> Role | None:
    """The caller's effective role on repository ``name`` (None: not even read).

    Namespace administrators get ADMIN also for a repository that does not exist (yet); for
    everyone else a missing repository has no role.
    """
    user = _acting(user)
    if _namespace_admin(user, name.namespace):
        return Role.ADMIN
    facts = repository_facts(services().store, name.namespace, name.repository)
    if facts is None:
        return None
    role: Role | None = None
    if facts["visibility"] == PUBLIC and (user is not None or this_app().config["ANONYMOUS_PULL"]):
        role = Role.READ
    if user is not None:
        granted = facts["permissions"]
        found = [granted.get("user", {}).get(user["username"])]
        if granted.get("team"):
            teams = team_roles(user, name.namespace)
            found += [role_name for team, role_name in granted["team"].items() if team in teams]
        for role_name in found:
            if role_name in ROLE_NAMES and (role is None or ROLE_NAMES[role_name] > role):
                role = ROLE_NAMES[role_name]
    if role is not None and name.namespace == LIBRARY:
        role = min(role, Role.READ)  # library: only administrators write
    return role


def can_read(user: Principal | None, name: RepoName) -> bool:
    role = role_for(user, name)
    return role is not None and role >= Role.READ


def can_write(user: Principal | None, name: RepoName) -> bool:
    role = role_for(user, name)
    return role is not None and role >= Role.WRITE


def can_admin(user: Principal | None, name: RepoName) -> bool:
    role = role_for(user, name)
    return role is not None and role >= Role.ADMIN


def can_create(user: Principal | None, namespace: str) -> bool:
    """May ``user`` create a new repository in ``namespace``?"""
    user = _acting(user)
    if user is None:
        return False
    if _namespace_admin(user, namespace):
        return True
    return namespace != LIBRARY and "creator" in team_roles(user, namespace).values()


def can_admin_namespace(user: Principal | None, namespace: str) -> bool:
    """May ``user`` manage the namespace as a whole (its teams, robots, webhooks)?"""
    return _namespace_admin(user, namespace)


def creator_grants(user: Principal, namespace: str) -> Grants:
    """The grants a new repository starts with: a team ``creator`` is admin of what it creates."""
    if _namespace_admin(user, namespace):
        return {}
    return {"user": {user["username"]: "admin"}}


def anonymous_reads_allowed() -> bool:
    return bool(this_app().config["ANONYMOUS_PULL"])


def readable_holder(user: Principal | None, image_id: str,
                    first: Iterable[RepoName] = ()) -> RepoName | None:
    """A repository that holds ``image_id`` and that ``user`` may read (None: none).

    ``first`` are tried before the scan of every repository (the token's own repository).
    """
    for name in first:
        if can_read(user, name):
            return name
    for namespace, repository in holders_of(services().store, image_id):
        name = RepoName(namespace, repository)
        if can_read(user, name):
            return name
    return None


def writable_holder(user: Principal | None, image_id: str) -> RepoName | None:
    """A repository that announced ``image_id`` and that ``user`` may push to."""
    for namespace, repository in holders_of(services().store, image_id):
        name = RepoName(namespace, repository)
        if can_write(user, name):
            return name
    return None
