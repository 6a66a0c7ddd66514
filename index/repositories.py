"""Repositories and their image lists (seed 2.1; protocol.md sections 4, 5, 8, 9).

Every route exists twice: ``/v1/repositories/<namespace>/<repository>/...`` and the library form
``/v1/repositories/<repository>/...``, which means ``library/<repository>``.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, Response, request

from . import auth, names
from .auth import add_endpoints, add_token, endpoints
from .errors import Forbidden, NotFound, Unauthorized
from .names import LIBRARY, RepoName
from .payloads import empty_response, json_response, read_json
from .repository_urls import repository_route, visible_repository
from .services import services
from .store import ACTIVE

bp = Blueprint("repositories", __name__)

def route(suffix: str, methods: list[str], **options: Any) -> Callable:
    return repository_route(bp, suffix, methods, **options)


def _writer_of(name: RepoName) -> dict[str, Any]:
    user = auth.require_user()
    if not auth.may_write(user, name.namespace):
        if name.namespace == LIBRARY:
            raise Forbidden("only administrators may change library repositories")
        raise Forbidden(f"you may not change repositories in namespace {name.namespace}")
    return user


@route("/", ["PUT"], strict_slashes=False)
def put_repository(namespace: str, repository: str) -> Response:
    """Create or re-announce a repository before a push; hands out a write token."""
    name = names.repo_name(namespace, repository)
    user = _writer_of(name)
    images = names.image_list(read_json())
    hosts = endpoints()  # the answer must name an endpoint: fail (400) before writing, not after
    services().store.announce_repository(name.namespace, name.repository, images, owner=user["username"])
    return add_token(json_response(""), name, "write", user["username"], hosts)


@route("/", ["DELETE"], strict_slashes=False)
def delete_repository(namespace: str, repository: str) -> Response:
    """Two steps (protocol.md 8): hide + delete token (202), then confirm and remove (200)."""
    name = names.repo_name(namespace, repository)
    registry = services().registry
    if auth.scheme() == "token" and registry is not None:
        return registry.delete_repository(name)  # same URL, registry side (protocol.md 12.15)
    user = _writer_of(name)
    store = services().store
    visible_repository(name, deleting_ok=True)
    if "X-Docker-Endpoints" in request.headers:
        removed = store.delete_repository(name.namespace, name.repository)
        if registry is not None:
            registry.repository_removed(removed)
        return json_response("")
    hosts = endpoints()  # the 202 must name an endpoint: fail (400) before hiding the repository
    store.mark_deleting(name.namespace, name.repository)
    return add_token(json_response("", 202), name, "delete", user["username"], hosts)


@route("/images", ["PUT"])
def put_images(namespace: str, repository: str) -> Response:
    """Merge ids and checksums into the list (docker 0.8-1.5 send ``[]``): exactly 204."""
    name = names.repo_name(namespace, repository)
    _writer_of(name)
    images = names.image_list(read_json())
    # docker 0.8-1.5 always send []: the store answers that without a lock.
    services().store.merge_images(name.namespace, name.repository, images)
    return empty_response(204)


@route("/images", ["GET"])
def get_images(namespace: str, repository: str) -> Response:
    """The image list: for a pulling client (read token on request) or a registry checking a token."""
    name = names.repo_name(namespace, repository)
    if auth.scheme() == "token":
        grant = auth.token_grant(name)
        record = visible_repository(name, deleting_ok=grant.access == "delete")
        if record["state"] != ACTIVE and grant.access != "delete":
            raise NotFound(f"repository {name.display} not found")
        return json_response(record["images"])
    user = auth.basic_user()
    if user is not None:
        auth.require_active(user)
    record = visible_repository(name)
    response = json_response(record["images"])
    if request.headers.get("X-Docker-Token", "").lower() == "true":
        return add_token(response, name, "read", user["username"] if user else None)
    return add_endpoints(response)


@route("/auth", ["PUT"])
def authorize_token(namespace: str, repository: str) -> Response:
    """The documented token check for registries: 200 "OK", 403 refused, 404 unknown."""
    name = names.repo_name(namespace, repository)
    try:
        grant = auth.token_grant(name)
    except (Unauthorized, Forbidden) as exc:
        raise Forbidden(f"permission denied: {exc.message}") from None
    visible_repository(name, deleting_ok=grant.access == "delete")
    return json_response("OK")


@route("/layer/<image_id>/access", ["GET"])
def layer_access(namespace: str, repository: str, image_id: str) -> Response:
    """docker-registry 0.9's parent check: may this token's holder read that layer?"""
    name = names.repo_name(namespace, repository)
    names.image_id(image_id)
    try:
        auth.token_grant(name)
        record = visible_repository(name)
    except (Forbidden, NotFound):
        return json_response({"access": False})
    return json_response({"access": any(image["id"] == image_id for image in record["images"])})
