"""Who may do what to a repository: the one place that answers it.

Every route (index, registry, search, ``/api/v1``, web pages, webhooks) asks these functions
instead of comparing names itself, so the model can grow (private repositories, organizations,
teams, robots, grants) without touching the callers.

Roles are cumulative: ``READ`` < ``WRITE`` < ``ADMIN``. ``user`` is an account record as the
store returns it, or None for an anonymous caller. Today's model: every repository is public;
a namespace's owner is admin of its repositories; site administrators may do everything, and
only they write ``library``.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any

from .names import LIBRARY, RepoName


class Role(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


def role_for(user: dict[str, Any] | None, name: RepoName) -> Role | None:
    """The caller's effective role on repository ``name`` (None: not even read)."""
    if user is not None and user.get("active"):
        if user.get("admin"):
            return Role.ADMIN
        if name.namespace != LIBRARY and name.namespace == user["username"]:
            return Role.ADMIN
    return Role.READ


def can_read(user: dict[str, Any] | None, name: RepoName) -> bool:
    role = role_for(user, name)
    return role is not None and role >= Role.READ


def can_write(user: dict[str, Any] | None, name: RepoName) -> bool:
    role = role_for(user, name)
    return role is not None and role >= Role.WRITE


def can_admin(user: dict[str, Any] | None, name: RepoName) -> bool:
    role = role_for(user, name)
    return role is not None and role >= Role.ADMIN


def can_create(user: dict[str, Any] | None, namespace: str) -> bool:
    """May ``user`` create a new repository in ``namespace``?"""
    if user is None or not user.get("active"):
        return False
    if user.get("admin"):
        return True
    return namespace != LIBRARY and namespace == user["username"]


def can_admin_namespace(user: dict[str, Any] | None, namespace: str) -> bool:
    """May ``user`` manage the namespace as a whole (its webhooks, teams, robots)?"""
    return can_create(user, namespace)
