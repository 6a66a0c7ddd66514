"""Repositories and their image lists (docs/protocol.md sections 4, 5, 8, 9).

Every route exists twice: ``/v1/repositories/<namespace>/<repository>/...`` and the library form
``/v1/repositories/<repository>/...``, which means ``library/<repository>``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import auth, events, names, permissions, principals
from .auth import add_endpoints, add_token, endpoints
from .errors import Forbidden, NotFound, Unauthorized
from .names import LIBRARY, RepoName
from .payloads import empty_response, json_response, read_json
from .repository_urls import View, repository_route, visible_repository
from .services import services
from .store.records import Principal, RepositoryRecord

bp = Blueprint("repositories", __name__)

def route(suffix: str, methods: list[str], **options: Any) -> Callable[[View], View]:
    return repository_route(bp, suffix, methods, **options)


def _readable(name: RepoName, user: Principal | None) -> RepositoryRecord:
    if not permissions.can_read(user, name):
        raise auth.not_found(name)  # a hidden repository answers exactly as a missing one
    return visible_repository(name)


@route("/", ["PUT"], strict_slashes=False)
def put_repository(namespace: str, repository: str) -> Response:
    """Create or re-announce a repository before a push; hands out a write token."""
    name = names.repo_name(namespace, repository)
    user = auth.require_user()
    new_fields = _may_announce(name, user)
    images = names.image_list(read_json())
    hosts = endpoints()  # the answer must name an endpoint: fail (400) before writing, not after
    services().store.announce(name.namespace, name.repository, images, owner=user["username"],
                              new_fields=new_fields)
    if new_fields is not None:
        events.repository_created(name, user["username"])
    return add_token(json_response(""), name, "write", user, hosts)


def _may_announce(name: RepoName, user: Principal) -> dict[str, Any] | None:
    """Re-announcing needs write; creating needs the namespace (owner, organization creator or
    admin team, site admin). Returns the fields a new repository starts with (None: it exists).

    Whoever may not create in the namespace gets the same 403 for a missing and for a hidden
    repository, so names do not leak.
    """
    exists = services().store.has_repository(name.namespace, name.repository)
    readable = exists and permissions.can_read(user, name)
    if readable:
        if not permissions.can_write(user, name):
            raise Forbidden(f"you may not push to repository {name.display}")
        return None
    if not permissions.can_create(user, name.namespace):
        if name.namespace == LIBRARY:
            raise Forbidden("only administrators may change library repositories")
        raise Forbidden(f"you may not create repositories in namespace {name.namespace}")
    if exists:
        raise Forbidden(f"you may not push to repository {name.display}")
    return {"visibility": current_app.config["DEFAULT_VISIBILITY"],
            "permissions": permissions.creator_grants(user, name.namespace)}


def _writer_of(name: RepoName, role: permissions.Role = permissions.Role.WRITE) -> Principal:
    """The caller, if it may read the repository (else 404 as if missing) and has ``role``."""
    user = auth.require_user()
    found = permissions.role_for(user, name)
    if found is None or (found < permissions.Role.READ):
        raise auth.not_found(name)
    if found < role:
        if name.namespace == LIBRARY:
            raise Forbidden("only administrators may change library repositories")
        raise Forbidden(f"you may not {'delete' if role == permissions.Role.ADMIN else 'push to'} "
                        f"repository {name.display}")
    return user


@route("/", ["DELETE"], strict_slashes=False)
def delete_repository(namespace: str, repository: str) -> Response:
    """Two steps (docs/protocol.md 8): hide + delete token (202), then confirm and remove (200)."""
    name = names.repo_name(namespace, repository)
    registry = services().registry
    if auth.scheme() == "token" and registry is not None:
        return registry.delete_repository(name)  # same URL, registry side (docs/protocol.md 12.15)
    user = _writer_of(name, permissions.Role.ADMIN)
    store = services().store
    visible_repository(name, deleting_ok=True)
    if "X-Docker-Endpoints" in request.headers:
        removed = store.delete_repository(name.namespace, name.repository)
        services().activity.forget(name.full)
        events.repository_deleted(name, user["username"], removed)
        if registry is not None:
            registry.repository_removed(removed)
        return json_response("")
    hosts = endpoints()  # the 202 must name an endpoint: fail (400) before hiding the repository
    deleting = store.mark_deleting(name.namespace, name.repository)
    return add_token(json_response("", 202), name, "delete", user, hosts, delete_id=deleting["delete_id"])


@route("/images", ["PUT"])
def put_images(namespace: str, repository: str) -> Response:
    """Merge ids and checksums into the list (docker 0.8-1.5 send ``[]``): exactly 204."""
    name = names.repo_name(namespace, repository)
    user = _writer_of(name)
    images = names.image_list(read_json())
    # docker 0.8-1.5 always send []: the store answers that without a lock.
    record = services().store.merge_images(name.namespace, name.repository, images)
    services().activity.pushed(name.full, user["username"])  # the last request of a push
    events.push_completed(name, user["username"], record)  # one push done: audit, webhooks
    return empty_response(204)


@route("/images", ["GET"])
def get_images(namespace: str, repository: str) -> Response:
    """The image list: for a pulling client (read token on request) or a registry checking a token."""
    name = names.repo_name(namespace, repository)
    if auth.scheme() == "token":
        grant = auth.token_grant(name)
        record = visible_repository(name, deleting_ok=grant.access == "delete")
        auth.check_delete_grant(grant, record, name)
        return json_response(record["images"])
    user = auth.reader()
    record = _readable(name, user)
    services().activity.pulled(name.full)
    response = json_response(record["images"])
    if request.headers.get("X-Docker-Token", "").lower() == "true":
        return add_token(response, name, "read", user)
    return add_endpoints(response)


@route("/auth", ["PUT"])
def authorize_token(namespace: str, repository: str) -> Response:
    """The documented token check for registries: 200 "OK", 403 refused, 404 unknown."""
    name = names.repo_name(namespace, repository)
    try:
        grant = auth.token_grant(name)
    except (Unauthorized, Forbidden) as exc:
        raise Forbidden(f"permission denied: {exc.message}") from None
    record = visible_repository(name, deleting_ok=grant.access == "delete")
    try:
        auth.check_delete_grant(grant, record, name)
    except Unauthorized as exc:
        raise Forbidden(f"permission denied: {exc.message}") from None
    return json_response("OK")


@route("/layer/<image_id>/access", ["GET"])
def layer_access(namespace: str, repository: str, image_id: str) -> Response:
    """docker-registry 0.9's parent check: may this token's holder read a repository that holds
    that image? (The token's own repository first, then any other the holder may read.)"""
    name = names.repo_name(namespace, repository)
    names.image_id(image_id)
    try:
        grant = auth.token_grant(name)
        record = visible_repository(name)
    except (Forbidden, NotFound):
        return json_response({"access": False})
    if any(image["id"] == image_id for image in record["images"]):
        return json_response({"access": True})
    holder = principals.find(grant.user) if grant.user is not None else None
    return json_response({"access": permissions.readable_holder(holder, image_id) is not None})
