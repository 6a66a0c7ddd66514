"""The seam between the registry and where layer bytes live (the data dir, or S3).

Layer bytes are stored once per content: a blob is named by the sha256 of the bytes exactly as
the client uploaded them (``sha256:<64 hex>``, the ``X-Docker-Checksum-Payload`` of the layer
body alone, not the v1 payload checksum that also covers the json). Image records point at a
blob; two accounts that push the same real base image share one blob, while the same image id
with different bytes gives two blobs.

An upload goes to a temporary place first while size, digest, TarSum and payload checksum are
computed from the stream; only :meth:`BlobStore.commit` makes it a blob, and a failed or
refused upload is :meth:`BlobStore.discard`-ed. Implementations: ``LocalBlobs`` (data dir) and
an S3 one; both satisfy this Protocol and the same tests.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from flask import Response

from .tarsum import LayerLimits


@dataclass
class ReceivedBlob:
    """An upload in its temporary place, with what was computed while streaming it."""

    temp_key: str          # where the bytes wait (a temp file path, or a temporary object key)
    size: int
    digest: str            # sha256:<hex> of the uploaded bytes: the blob's name once committed
    checksum: str          # tarsum+sha256:... (TarSum v0 with the image json)
    payload_checksum: str  # sha256:... over image json + "\n" + body (docker's v1 payload sum)
    extra: dict[str, Any] = field(default_factory=dict)  # implementation details (upload ids)


class BlobStore(Protocol):
    def receive(self, body: IO[bytes], image_json: bytes, limits: LayerLimits | None = None,
                expected_size: int | None = None) -> ReceivedBlob:
        """Stream ``body`` to a temporary place, computing size, digest and checksums
        (:func:`index.registry.layers.receive_stream` does the reading and computing).

        ``expected_size`` is the request's Content-Length (None when chunked): a body that ends
        before it is UploadBroken. Raises UploadBroken (body ended early), TarError (not a tar),
        LayerRefused (past a limit) or StorageFailure; nothing is left behind then.
        """

    def commit(self, received: ReceivedBlob) -> str:
        """Make the upload the blob ``received.digest`` (a no-op, and the temporary bytes
        dropped, when that blob exists already); returns the digest."""

    def discard(self, received: ReceivedBlob) -> None:
        """Drop an upload that will not be committed."""

    def exists(self, digest: str) -> bool: ...

    def send(self, digest: str) -> Response:
        """The answer to ``GET|HEAD /v1/images/<id>/layer`` for this blob, honouring ``Range``
        (``Accept-Ranges: bytes``); FileNotFoundError when the blob is missing."""

    def import_file(self, path: Path) -> tuple[str, int]:
        """Make an existing local file a blob (the data dir migration of ``layers/<id>.layer``
        files); the file itself is left in place (the caller removes it). Returns (digest, size)."""

    def size(self, digest: str) -> int: ...

    def delete(self, digest: str) -> None:
        """Remove a blob no image version uses any more (missing is fine)."""

    def digests(self) -> Iterator[str]:
        """Every committed blob (for garbage collection)."""

    def remove_stale_uploads(self, older_than: float) -> int:
        """Clean temporary uploads (temp files, temporary objects, multipart uploads) older than
        ``older_than`` seconds; returns how many were removed."""


def file_digest(path: Path, chunk_size: int = 1024 * 1024) -> tuple[str, int]:
    """("sha256:<hex>", size) of a file's bytes, read in chunks (a layer may be gigabytes)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size
