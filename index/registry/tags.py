"""Registry tag routes and the registry side of a repository delete (protocol.md 5 step 2, 8, 10).

Each route exists in both URL forms of a repository (:mod:`index.repository_urls`).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g

from .. import events, names
from ..errors import Forbidden, NotFound
from ..names import RepoName
from ..payloads import json_response, read_json
from ..repository_urls import repository_route
from ..store.records import RepositoryRecord
from . import access, scope
from .core import registry

bp = Blueprint("registry_tags", __name__)


def route(suffix: str, methods: list[str]) -> Callable[..., Any]:
    return repository_route(bp, suffix, methods)


@route("/tags", ["GET"])
def list_tags(namespace: str, repository: str) -> Response:
    """``{"<tag>": "<image id>"}``; 404 (which stops a pull) for an unknown repository."""
    name = names.repo_name(namespace, repository)
    record = access.repository(name, "read")
    return json_response(record.get("tags", {}))


def _tagged(namespace: str, repository: str, tag: str) -> tuple[RepoName, RepositoryRecord, str]:
    """The readable repository and the image id its ``tag`` names (404 when it names none)."""
    name = names.repo_name(namespace, repository)
    names.tag(tag)
    record = access.repository(name, "read")
    image_id = record.get("tags", {}).get(tag)
    if image_id is None:
        raise NotFound(f"tag {tag} not found in repository {name.display}")
    return name, record, image_id


@route("/tags/<tag>", ["GET"])
def get_tag(namespace: str, repository: str, tag: str) -> Response:
    return json_response(_tagged(namespace, repository, tag)[2])


@route("/tags/<tag>/json", ["GET"])
def get_tag_json(namespace: str, repository: str, tag: str) -> Response:
    """docker-registry 0.9's tag metadata (third-party v1 tools read it, e.g.
    docker-registry-client's ``Repository.data()``): taken from the tagged image's json."""
    name, record, image_id = _tagged(namespace, repository, tag)
    image = registry().images.find(image_id, scope.for_repository(name, None).satisfies)
    try:
        image_json = json.loads(image["json"]) if image is not None else {}
    except ValueError:
        image_json = {}
    if not isinstance(image_json, dict):
        image_json = {}
    return json_response({
        "last_update": _epoch_seconds(record.get("updated")),
        "docker_version": _text(image_json.get("docker_version")),
        "docker_go_version": None,  # docker-registry took these from the pusher's User-Agent
        "arch": _text(image_json.get("architecture")) or "amd64",
        "os": _text(image_json.get("os")) or "linux",
        "kernel": None,
    })


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch_seconds(timestamp: object) -> int | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp())
    except ValueError:
        return None


@route("/tags/<tag>", ["PUT"])
def put_tag(namespace: str, repository: str, tag: str) -> Response:
    """Body: the image id as a JSON string. The image must be announced in the repository and
    complete in a version its writers uploaded."""
    name = names.repo_name(namespace, repository)
    names.tag(tag)
    record = access.repository(name, "write")
    image_id = names.image_id(read_json())
    found = registry()
    view = scope.for_repository(name, None)
    if found.images.find(image_id, view.satisfies) is None:
        raise NotFound(f"image {image_id} not found")
    if not any(entry["id"] == image_id for entry in record["images"]):
        raise Forbidden(f"image {image_id} was not announced for repository {name.display}")
    # The version this repository's writers uploaded, and its ancestors, are held by it from now
    # on (a delete of another repository that shared them keeps them).
    version = found.images.claim(image_id, name.full, view.satisfies)
    if version is None:
        raise NotFound(f"image {image_id} not found")
    for ancestor in version["ancestry"][1:]:
        found.images.claim(ancestor, name.full, view.satisfies)
    registry().store.set_tag(name.namespace, name.repository, tag, image_id)
    return json_response(True)


@route("/tags/<tag>", ["DELETE"])
def delete_tag(namespace: str, repository: str, tag: str) -> Response:
    name = names.repo_name(namespace, repository)
    names.tag(tag)
    record = access.repository(name, "delete")
    removed = registry().store.delete_tags(name.namespace, name.repository, [tag])
    if not removed:
        raise NotFound(f"tag {tag} not found in repository {name.display}")
    events.tags_deleted(name, g.get("log_user"), {tag: str(record.get("tags", {}).get(tag, ""))})
    return json_response(True)


@route("/tags", ["DELETE"])
def delete_all_tags(namespace: str, repository: str) -> Response:
    """docker-registry's alias of the registry-side repository delete."""
    return registry().delete_repository(names.repo_name(namespace, repository))
