"""Who may do what on the built-in registry (protocol.md 9 and 12.15).

* ``Authorization: Token ...`` issued by this index: ``read`` for GET/HEAD, ``write`` for PUT,
  ``delete`` for DELETE. A write token also reads (a pushing client's ``GET images/<id>/json``
  then answers 200 for complete images and the client skips them). Image routes accept a token
  only for ids announced in the token's repository.
* ``Authorization: Basic ...`` of an active account or robot, or no credentials at all: what
  :mod:`index.permissions` gives the caller (anonymous callers read public repositories unless
  ``INDEX_ANONYMOUS_PULL=false``). An image id resolves only through a repository the caller may
  read; a repository or image the caller may not read answers as a missing one (404).
"""
from __future__ import annotations

from typing import Any

from .. import auth, permissions
from ..errors import Forbidden, NotFound, Unauthorized
from ..names import RepoName
from ..repository_urls import visible_repository

# What each access level of a token allows.
_GRANTS = {"read": {"read", "write"}, "write": {"write"}, "delete": {"delete"}}


def _anonymous() -> Unauthorized:
    return Unauthorized("authentication required: a Token from the index (or Basic credentials)",
                        challenge=auth.TOKEN_CHALLENGE)


def _check_grant_level(granted: str, need: str) -> None:
    if granted not in _GRANTS[need]:
        raise Forbidden(f"the token grants {granted} access; this request needs {need}")


def _caller() -> dict[str, Any] | None:
    """The Basic caller of a registry route: an active account or robot, or None (anonymous)."""
    user = auth.basic_user()
    if user is None:
        if not permissions.anonymous_reads_allowed():
            raise _anonymous()
        return None
    auth.require_active(user)
    return user


def repository(name: RepoName, need: str) -> dict[str, Any]:
    """Authorize ``need`` (read|write|delete) on a repository; returns its record."""
    if auth.scheme() == "token":
        grant = auth.token_grant(name)
        _check_grant_level(grant.access, need)
        record = visible_repository(name, deleting_ok=grant.access == "delete")
        auth.check_delete_grant(grant, record, name)  # a delete token: only for its own delete
        return record
    user = _caller()
    if user is None and need != "read":
        raise _anonymous()
    role = permissions.role_for(user, name)
    if role is None:
        raise auth.not_found(name)  # hidden answers exactly as missing
    if role < permissions.TOKEN_NEEDS[need]:
        raise Forbidden(f"{user['username'] if user else 'an anonymous caller'} may not {need} "
                        f"repository {name.display}")
    return visible_repository(name, deleting_ok=need == "delete")


def image(image_id: str, need: str) -> None:
    """Authorize ``need`` (read|write) on one image: a repository the caller may read (write)
    must hold it. Otherwise the answer is the one for a missing image."""
    if auth.scheme() == "token":
        grant = auth.token_grant()  # verified (and the holder's role re-checked) once
        namespace, _, repo = grant.repository.partition("/")
        name = RepoName(namespace, repo)
        _check_grant_level(grant.access, need)
        record = visible_repository(name, deleting_ok=grant.access == "delete")
        auth.check_delete_grant(grant, record, name)
        if not any(entry["id"] == image_id for entry in record["images"]):
            verb = "was not announced for" if need == "write" else "does not belong to"
            raise Forbidden(f"image {image_id} {verb} repository {name.display}")
        return
    user = _caller()
    if need == "read":
        if permissions.readable_holder(user, image_id) is None:
            raise NotFound(f"image {image_id} not found")
        return
    if user is None:
        raise _anonymous()
    if permissions.writable_holder(user, image_id) is None:
        raise Forbidden(f"image {image_id} was not announced for any repository {user['username']} may push to")
