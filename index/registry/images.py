"""Registry image routes (protocol.md 4.1 step 2, 5 step 3, 10): json, layer, checksum, ancestry.

An image is uploaded in three steps (json, layer, checksum) and only served once the client's
checksums matched what was received. Re-sending any step of a complete image is a 409 with
``{"error": "Image already exists"}``, which docker reads as "already pushed, skip".
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, send_file

from .. import names
from ..errors import BadRequest, Conflict, NotFound
from ..payloads import json_response, read_json_raw
from ..store.errors import RecordNotFound
from ..store.images import COMPLETE, LAYER_STORED
from . import access
from .core import registry
from .layers import TarError, UploadBroken

bp = Blueprint("registry_images", __name__)

IMAGE = "/v1/images/<image_id>"


def _complete(image_id: str) -> dict[str, Any]:
    record = registry().complete_image(image_id)
    if record is None:
        raise NotFound(f"image {image_id} not found")
    return record


def _incomplete(image_id: str, missing: str) -> dict[str, Any]:
    """The record of an image still being uploaded: 404 ``missing`` if none, 409 if complete."""
    record = registry().images.get(image_id)
    if record is None:
        raise NotFound(missing)
    if record["state"] == COMPLETE:
        raise Conflict("Image already exists")  # docker skips the image on this answer
    return record


@bp.get(f"{IMAGE}/json")
def get_json(image_id: str) -> Response:
    names.image_id(image_id)
    access.image(image_id, "read")
    record = _complete(image_id)
    response = Response(record["json"], mimetype="application/json")
    # X-Docker-Size is parsed by docker 0.7-0.10 and shown as the download size.
    response.headers["X-Docker-Size"] = str(record["size"])
    response.headers["X-Docker-Checksum"] = record["checksum"]
    response.headers["X-Docker-Checksum-Payload"] = record["payload_checksum"]
    return response


@bp.put(f"{IMAGE}/json")
def put_json(image_id: str) -> Response:
    names.image_id(image_id)
    access.image(image_id, "write")
    raw, data = read_json_raw()
    parent = _parent_of(image_id, data)
    found = registry()
    try:
        found.images.put_json(image_id, raw.decode("utf-8"), parent,
                              on_reset=lambda: found.layers.remove(image_id))
    except RecordNotFound as exc:  # a missing parent: the json is wrong (400), not the URL (404)
        raise BadRequest(str(exc)) from None
    return json_response(True)


def _parent_of(image_id: str, data: Any) -> str | None:
    if not isinstance(data, dict):
        raise BadRequest("image json must be a JSON object")
    if data.get("id") != image_id:
        raise BadRequest(f"image json has id {str(data.get('id'))[:80]!r}, the URL says {image_id}")
    parent = data.get("parent")
    if parent in (None, ""):
        return None
    names.image_id(parent)
    if parent == image_id:
        raise BadRequest("an image cannot be its own parent")
    return parent


@bp.put(f"{IMAGE}/layer")
def put_layer(image_id: str) -> Response:
    names.image_id(image_id)
    access.image(image_id, "write")
    found = registry()
    record = _incomplete(image_id, f"image {image_id} has no json yet: PUT /v1/images/{image_id}/json first")
    try:
        upload = found.layers.receive(image_id, request.stream, record["json"].encode("utf-8"))
    except UploadBroken as exc:
        raise BadRequest(f"{exc}; nothing was stored") from None
    except TarError as exc:
        raise BadRequest(f"{exc}; nothing was stored") from None
    try:
        found.images.attach_layer(image_id, record["json"], upload.size, upload.checksum,
                                  upload.payload_checksum,
                                  move_into_place=lambda: found.layers.install(upload, image_id))
    except BaseException:  # a conflict (409), a vanished json (404), a storage failure
        found.layers.discard(upload)
        raise
    return json_response(True)


@bp.put(f"{IMAGE}/checksum")
def put_checksum(image_id: str) -> Response:
    names.image_id(image_id)
    access.image(image_id, "write")
    tarsum = request.headers.get("X-Docker-Checksum", "").strip()
    payload = request.headers.get("X-Docker-Checksum-Payload", "").strip()
    if not tarsum and not payload:
        raise BadRequest("X-Docker-Checksum (tarsum+sha256:...) and/or X-Docker-Checksum-Payload "
                         "(sha256:...) header required")
    found = registry()
    record = _incomplete(image_id, f"image {image_id} not found")
    if record["state"] != LAYER_STORED:
        raise BadRequest(f"image {image_id} has no layer yet: PUT /v1/images/{image_id}/layer first")
    if tarsum and tarsum != record["checksum"]:
        raise BadRequest(f"Checksum mismatch: X-Docker-Checksum {tarsum[:100]} does not match the "
                         f"uploaded layer; upload the layer again")
    if payload and payload != record["payload_checksum"]:
        raise BadRequest(f"Checksum mismatch: X-Docker-Checksum-Payload {payload[:100]} does not "
                         f"match the uploaded layer; upload the layer again")
    found.images.mark_complete(image_id, record["checksum"], record["payload_checksum"])
    return json_response(True)


@bp.get(f"{IMAGE}/layer")
def get_layer(image_id: str) -> Response:
    """The layer bytes; HEAD, ``Range`` and ``Accept-Ranges: bytes`` for resumed pulls."""
    names.image_id(image_id)
    access.image(image_id, "read")
    _complete(image_id)
    path = registry().layers.path(image_id)
    try:
        return send_file(path, mimetype="application/octet-stream", conditional=True, max_age=None)
    except FileNotFoundError:
        raise NotFound(f"the layer file of image {image_id} is missing") from None


@bp.get(f"{IMAGE}/ancestry")
def get_ancestry(image_id: str) -> Response:
    names.image_id(image_id)
    access.image(image_id, "read")
    return json_response(_complete(image_id)["ancestry"])
