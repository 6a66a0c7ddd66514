"""Who may do what on the built-in registry (protocol.md 9 and 12.15).

* ``Authorization: Token ...`` issued by this index: ``read`` for GET/HEAD, ``write`` for PUT,
  ``delete`` for DELETE. A write token also reads (a pushing client's ``GET images/<id>/json``
  then answers 200 for complete images and the client skips them). Image routes accept a token
  only for ids announced in the token's repository.
* ``Authorization: Basic ...`` of an active account: reads of every (public) repository; writes
  where the account may push (its namespace; admins everywhere).
* Without credentials: 401. Anonymous pulls go through the read token the index hands out.
"""
from __future__ import annotations

from typing import Any

from .. import auth
from ..errors import Forbidden, Unauthorized
from ..names import RepoName
from ..repository_urls import visible_repository
from ..services import services
from ..store import ACTIVE

# What each access level of a token allows.
_GRANTS = {"read": {"read", "write"}, "write": {"write"}, "delete": {"delete"}}


def _anonymous() -> Unauthorized:
    return Unauthorized("authentication required: a Token from the index (or Basic credentials)",
                        challenge=auth.TOKEN_CHALLENGE)


def _check_grant_level(granted: str, need: str) -> None:
    if granted not in _GRANTS[need]:
        raise Forbidden(f"the token grants {granted} access; this request needs {need}")


def repository(name: RepoName, need: str) -> dict[str, Any]:
    """Authorize ``need`` (read|write|delete) on a repository; returns its record."""
    if auth.scheme() == "token":
        grant = auth.token_grant(name)
        _check_grant_level(grant.access, need)
        return visible_repository(name, deleting_ok=grant.access == "delete")
    user = auth.basic_user()
    if user is None:
        raise _anonymous()
    auth.require_active(user)
    if need != "read" and not auth.may_write(user, name.namespace):
        raise Forbidden(f"{user['username']} may not change repository {name.display}")
    return visible_repository(name, deleting_ok=need == "delete")


def image(image_id: str, need: str) -> None:
    """Authorize ``need`` (read|write) on one image, which a repository must have announced."""
    if auth.scheme() == "token":
        grant = auth.token_grant()  # verified once; the image's repository is the token's
        namespace, _, repo = grant.repository.partition("/")
        name = RepoName(namespace, repo)
        _check_grant_level(grant.access, need)
        record = visible_repository(name, deleting_ok=grant.access == "delete")
        if not any(entry["id"] == image_id for entry in record["images"]):
            verb = "was not announced for" if need == "write" else "does not belong to"
            raise Forbidden(f"image {image_id} {verb} repository {name.display}")
        return
    user = auth.basic_user()
    if user is None:
        raise _anonymous()
    auth.require_active(user)
    if need == "read":
        return  # every repository is public to active accounts
    store = services().store
    namespaces = store.namespaces() if user.get("admin") else [user["username"]]
    for namespace in namespaces:
        for record in store.iter_repositories(namespace):
            if record["state"] == ACTIVE and any(e["id"] == image_id for e in record["images"]):
                return
    raise Forbidden(f"image {image_id} was not announced for any repository {user['username']} may push to")
