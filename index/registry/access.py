"""Who may do what on the built-in registry (protocol.md 9 and 12.15).

* ``Authorization: Token ...`` issued by this index: ``read`` for GET/HEAD, ``write`` for PUT,
  ``delete`` for DELETE. A write token also reads (a pushing client's ``GET images/<id>/json``
  then answers 200 for complete images and the client skips them). Image routes accept a token
  only for ids announced in the token's repository, and see only the versions of an id that an
  account who may write that repository uploaded (:mod:`index.registry.scope`).
* ``Authorization: Basic ...`` of an active account or robot, or no credentials at all: what
  :mod:`index.permissions` gives the caller (anonymous callers read public repositories unless
  ``INDEX_ANONYMOUS_PULL=false``). An image id resolves only through a repository the caller may
  read; a repository or image the caller may not read answers as a missing one (404).
"""
from __future__ import annotations

from .. import auth, permissions
from ..errors import Forbidden, Unauthorized
from ..names import RepoName
from ..repository_urls import visible_repository
from ..services import services
from ..store.access import holders_of
from ..store.records import Principal, RepositoryRecord
from . import scope
from .scope import Scope

# What each access level of a token allows.
_GRANTS = {"read": {"read", "write"}, "write": {"write"}, "delete": {"delete"}}


def _anonymous() -> Unauthorized:
    return Unauthorized("authentication required: a Token from the index (or Basic credentials)",
                        challenge=auth.TOKEN_CHALLENGE)


def _check_grant_level(granted: str, need: str) -> None:
    if granted not in _GRANTS[need]:
        raise Forbidden(f"the token grants {granted} access; this request needs {need}")


def _caller() -> Principal | None:
    """The Basic caller of a registry route: an active account or robot, or None (anonymous)."""
    user = auth.basic_user()
    if user is None:
        if not permissions.anonymous_reads_allowed():
            raise _anonymous()
        return None
    auth.require_active(user)
    return user


def repository(name: RepoName, need: str) -> RepositoryRecord:
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


def image(image_id: str, need: str) -> Scope:
    """Authorize ``need`` (read|write) on one image; returns the scope that decides which
    version of the id this request sees (see :mod:`index.registry.scope`).

    With a Token the id must be announced in the token's repository. With Basic, reads see
    versions held by repositories the account may read; writes need the id announced in a
    repository the account may write.
    """
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
        writer = grant.user if grant.access == "write" else None
        return scope.for_repository(name, writer)
    user = _caller()
    if need == "read":
        return scope.for_reader(user)  # no version a readable repository holds: 404
    if user is None:
        raise _anonymous()
    writable = [RepoName(namespace, repo) for namespace, repo in holders_of(services().store, image_id)
                if permissions.can_write(user, RepoName(namespace, repo))]
    if not writable:
        raise Forbidden(f"image {image_id} was not announced for any repository {user['username']} may push to")
    return scope.for_writer(user["username"], writable)
