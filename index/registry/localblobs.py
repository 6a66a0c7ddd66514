"""Blobs in the data dir (the default :class:`~index.registry.blobs.BlobStore`).

    <data dir>/blobs/sha256/<2 hex>/<64 hex>   a committed blob, named by its content
    <data dir>/uploads/<random>.part           an upload in progress

A blob file is written once (temp file, fsync, rename) and never changed, so readers need no
lock; removing one frees the space once no reader holds it open.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from flask import Response, send_file

from ..store.errors import storage_failure
from ..store.files import fsync_dir
from .blobs import ReceivedBlob, file_digest
from .layers import STALE_UPLOAD_SECONDS, receive_stream
from .tarsum import LayerLimits

log = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


class LocalBlobs:
    """Content-addressed layer bytes under one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.blobs_dir = Path(data_dir) / "blobs" / "sha256"
        self.uploads_dir = Path(data_dir) / "uploads"

    def path(self, digest: str) -> Path:
        # Digests come from our own records, but the name is checked anyway: only 64 hex get here.
        if not _DIGEST_RE.fullmatch(digest):
            raise ValueError(f"not a blob digest: {digest[:80]!r}")
        hexdigest = digest.partition(":")[2]
        return self.blobs_dir / hexdigest[:2] / hexdigest

    def receive(self, body: IO[bytes], image_json: bytes, limits: LayerLimits | None = None,
                expected_size: int | None = None) -> ReceivedBlob:
        try:
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(suffix=".part", dir=self.uploads_dir)
        except OSError as exc:
            raise storage_failure("store the layer", exc) from None
        temp_path = Path(name)
        try:
            try:
                with os.fdopen(fd, "wb") as handle:
                    streamed = receive_stream(body, image_json, handle.write, limits, expected_size)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:  # writing, flushing or closing the temp file
                raise storage_failure("store the layer", exc) from None
        except BaseException:
            with contextlib.suppress(OSError):
                temp_path.unlink()
            raise
        return ReceivedBlob(str(temp_path), streamed.size, streamed.digest, streamed.checksum,
                            streamed.payload_checksum)

    def commit(self, received: ReceivedBlob) -> str:
        target = self.path(received.digest)
        temp = Path(received.temp_key)
        try:
            if target.exists():
                temp.unlink()  # the same bytes are there already: stored once
                return received.digest
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
            fsync_dir(target.parent)
        except OSError as exc:
            raise storage_failure("store the layer", exc) from None
        return received.digest

    def discard(self, received: ReceivedBlob) -> None:
        with contextlib.suppress(OSError):
            Path(received.temp_key).unlink()

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def send(self, digest: str) -> Response:
        return send_file(self.path(digest), mimetype="application/octet-stream", conditional=True,
                         max_age=None)

    def import_file(self, path: Path) -> tuple[str, int]:
        name, size = file_digest(path)
        target = self.path(name)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)  # same file system (both in the data dir): no copy
            except FileExistsError:
                pass  # another process imported the same bytes a moment ago
            fsync_dir(target.parent)
        return name, size

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def digests(self) -> Iterator[str]:
        if not self.blobs_dir.exists():
            return
        for path in self.blobs_dir.glob("??/*"):
            name = "sha256:" + path.name
            if _DIGEST_RE.fullmatch(name):
                yield name

    def remove_stale_uploads(self, older_than: float = STALE_UPLOAD_SECONDS) -> int:
        """Delete temp files of uploads whose process died (not touched for ``older_than`` s)."""
        if not self.uploads_dir.exists():
            return 0
        removed = 0
        limit = time.time() - older_than
        for temp in self.uploads_dir.glob("*.part"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < limit:
                    temp.unlink()
                    removed += 1
        if removed:
            log.info("removed %d unfinished layer upload(s)", removed)
        return removed
