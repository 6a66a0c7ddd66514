"""Registry image routes (docs/protocol.md 4.1 step 2, 5 step 3, 10): json, layer, checksum, ancestry.

An image is uploaded in three steps (json, layer, checksum) and only served once the client's
checksums matched what was received. Each step works on the uploading account's own version of
the id (:mod:`index.registry.scope`): another account's upload of the same id is invisible here,
so docker uploads its own. Re-sending any step of an image complete for this scope is a 409 with
``{"error": "Image already exists"}``, which docker reads as "already pushed, skip".
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from .. import events, names
from ..errors import BadRequest, Conflict, InsufficientStorage, NotFound, PayloadTooLarge
from ..payloads import json_response, read_json_raw
from ..store.images import COMPLETE, LAYER_STORED, choose
from . import access
from .core import Registry, registry
from .layers import UploadBroken
from .scope import Scope
from .tarsum import LayerRefused, TarError

bp = Blueprint("registry_images", __name__)

IMAGE = "/v1/images/<image_id>"


def _visible(image_id: str, scope: Scope) -> dict[str, Any]:
    """The complete version this scope sees (held by its repositories from now on when the
    scope writes: the client will skip uploading it); 404 when there is none."""
    found = registry()
    if scope.claims:
        version = None
        for ref in scope.refs:
            version = found.images.claim(image_id, ref, scope.satisfies) or version
    else:
        version = found.images.find(image_id, scope.satisfies)
    if version is None:
        raise NotFound(f"image {image_id} not found")
    return version


def _own_pending(image_id: str, scope: Scope, missing: str) -> dict[str, Any]:
    """The writer's own version still being uploaded: 409 if one complete for the scope exists
    (docker skips it), 404 ``missing`` if the writer has none."""
    versions = registry().images.versions(image_id)
    if choose(versions, scope.satisfies) is not None:
        raise Conflict("Image already exists")
    assert scope.uploader is not None
    version = versions.get(scope.uploader)
    if version is None:
        raise NotFound(missing)
    if version["state"] == COMPLETE:
        raise Conflict("Image already exists")
    return version


def _check_quota(found: Registry, scope: Scope, adding: int) -> None:
    """507 when the upload would take a namespace past ``INDEX_NAMESPACE_QUOTA_BYTES``."""
    if not found.quota_bytes:
        return
    for namespace in sorted({ref.partition("/")[0] for ref in scope.refs}):
        used = found.usage(namespace)
        if used + adding > found.quota_bytes:
            raise InsufficientStorage(
                f"namespace {namespace} would use {used + adding} bytes, more than its quota of "
                f"{found.quota_bytes} (INDEX_NAMESPACE_QUOTA_BYTES); nothing was stored")


@bp.get(f"{IMAGE}/json")
def get_json(image_id: str) -> Response:
    names.image_id(image_id)
    version = _visible(image_id, access.image(image_id, "read"))
    response = Response(version["json"], mimetype="application/json")
    # X-Docker-Size is parsed by docker 0.7-0.10 and shown as the download size.
    response.headers["X-Docker-Size"] = str(version["size"])
    response.headers["X-Docker-Checksum"] = version["checksum"]
    response.headers["X-Docker-Checksum-Payload"] = version["payload_checksum"]
    return response


@bp.put(f"{IMAGE}/json")
def put_json(image_id: str) -> Response:
    names.image_id(image_id)
    scope = access.image(image_id, "write")
    found = registry()
    limit = found.json_max_bytes
    if limit and request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the image json is larger than {limit} bytes (INDEX_IMAGE_JSON_MAX_BYTES)")
    raw, data = read_json_raw()
    if limit and len(raw) > limit:
        raise PayloadTooLarge(f"the image json is larger than {limit} bytes (INDEX_IMAGE_JSON_MAX_BYTES)")
    parent = _parent_of(image_id, data)
    ancestry = [image_id]
    if parent is not None:
        # The parent as this scope sees it: another account's version of that id never counts.
        parent_version = found.images.find(parent, scope.satisfies)
        if parent_version is None:
            raise BadRequest(f"parent image {parent} does not exist in this registry")
        ancestry += parent_version["ancestry"]
    _check_quota(found, scope, len(raw))
    assert scope.uploader is not None
    _, released = found.images.put_json(image_id, scope.uploader, raw.decode("utf-8"), parent,
                                        ancestry, scope.refs, scope.satisfies)
    found._drop(released)
    found.expire_one_shard()
    return json_response(True)


def _parent_of(image_id: str, data: Any) -> str | None:
    if not isinstance(data, dict):
        raise BadRequest("image json must be a JSON object")
    if data.get("id") != image_id:
        raise BadRequest(f"image json has id {str(data.get('id'))[:80]!r}, the URL says {image_id}")
    parent = data.get("parent")
    if parent in (None, ""):
        return None
    parent_id = names.image_id(parent)
    if parent_id == image_id:
        raise BadRequest("an image cannot be its own parent")
    return parent_id


def _expected_size() -> int | None:
    """The Content-Length a layer body must reach (None for a chunked body)."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return None
    return request.content_length


@bp.put(f"{IMAGE}/layer")
def put_layer(image_id: str) -> Response:
    names.image_id(image_id)
    scope = access.image(image_id, "write")
    assert scope.uploader is not None
    found = registry()
    version = _own_pending(image_id, scope, f"image {image_id} has no json yet: PUT /v1/images/{image_id}/json first")
    expected = _expected_size()
    if expected is not None and found.limits.max_bytes and expected > found.limits.max_bytes:
        raise PayloadTooLarge(f"the layer is larger than {found.limits.max_bytes} bytes "
                              f"(INDEX_LAYER_MAX_BYTES); nothing was stored")
    _check_quota(found, scope, expected or 0)
    try:
        upload = found.blobs.receive(request.stream, version["json"].encode("utf-8"), found.limits, expected)
    except (UploadBroken, TarError) as exc:
        raise BadRequest(f"{exc}; nothing was stored") from None
    except LayerRefused as exc:
        raise PayloadTooLarge(f"{exc}; nothing was stored") from None
    try:
        _check_quota(found, scope, upload.size)

        def commit() -> None:
            with found.store.writing():
                found.blobs.commit(upload)
        found.images.add_blob_user(upload.digest, image_id, scope.uploader, upload.size, commit)
    except BaseException:
        found.blobs.discard(upload)
        raise
    mine = [(image_id, scope.uploader, upload.digest)]
    try:
        previous = found.images.attach_layer(image_id, scope.uploader, version["json"], upload.digest,
                                             upload.size, upload.checksum, upload.payload_checksum,
                                             scope.satisfies)
    except BaseException:  # a conflict (409), a vanished version (404), a storage failure
        found._drop(mine)
        raise
    if previous is not None:
        found._drop([(image_id, scope.uploader, previous)])
    events.layer_received(upload.size)
    return json_response(True)


@bp.put(f"{IMAGE}/checksum")
def put_checksum(image_id: str) -> Response:
    names.image_id(image_id)
    scope = access.image(image_id, "write")
    assert scope.uploader is not None
    tarsum = request.headers.get("X-Docker-Checksum", "").strip()
    payload = request.headers.get("X-Docker-Checksum-Payload", "").strip()
    if not tarsum and not payload:
        raise BadRequest("X-Docker-Checksum (tarsum+sha256:...) and/or X-Docker-Checksum-Payload "
                         "(sha256:...) header required")
    found = registry()
    version = _own_pending(image_id, scope, f"image {image_id} not found")
    if version["state"] != LAYER_STORED:
        raise BadRequest(f"image {image_id} has no layer yet: PUT /v1/images/{image_id}/layer first")
    if tarsum and tarsum != version["checksum"]:
        raise BadRequest(f"Checksum mismatch: X-Docker-Checksum {tarsum[:100]} does not match the "
                         f"uploaded layer; upload the layer again")
    if payload and payload != version["payload_checksum"]:
        raise BadRequest(f"Checksum mismatch: X-Docker-Checksum-Payload {payload[:100]} does not "
                         f"match the uploaded layer; upload the layer again")
    found.images.mark_complete(image_id, scope.uploader, version["checksum"],
                               version["payload_checksum"], scope.satisfies)
    return json_response(True)


@bp.get(f"{IMAGE}/layer")
def get_layer(image_id: str) -> Response:
    """The layer bytes; HEAD, ``Range`` and ``Accept-Ranges: bytes`` for resumed pulls."""
    names.image_id(image_id)
    version = _visible(image_id, access.image(image_id, "read"))
    try:
        response = registry().blobs.send(version["blob"])
    except FileNotFoundError:
        raise NotFound(f"the layer of image {image_id} is missing") from None
    # An answer to a caller with credentials is that caller's alone (send_file says no-cache).
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(f"{IMAGE}/ancestry")
def get_ancestry(image_id: str) -> Response:
    names.image_id(image_id)
    return json_response(_visible(image_id, access.image(image_id, "read"))["ancestry"])
