"""Layer files: streamed to a temp file while their checksums are computed, then renamed into place.

    <data dir>/layers/<first two hex of id>/<id>.layer   a finished upload (by image id)
    <data dir>/uploads/<id>.<random>.part               an upload in progress

A layer never passes through memory whole: the body is read in ``CHUNK`` pieces. An upload that
breaks off leaves only its temp file, which is removed at once (or at the next start if the
process died).
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from ..store.errors import storage_failure
from ..store.files import fsync_dir
from .tarsum import LayerTarSum, PayloadChecksum, TarError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# A live upload writes continuously, so an older temp file belongs to a dead process.
STALE_UPLOAD_SECONDS = 3600


class UploadBroken(Exception):
    """The request body ended early or could not be read (the client went away)."""


@dataclass
class Upload:
    """A received layer in its temp file, with what was computed from it."""

    temp_path: Path
    size: int
    checksum: str          # tarsum+sha256:...
    payload_checksum: str  # sha256:... over json + "\n" + body


class LayerFiles:
    """The layer files under one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.layers_dir = Path(data_dir) / "layers"
        self.uploads_dir = Path(data_dir) / "uploads"

    def path(self, image_id: str) -> Path:
        # image_id is validated as 64 hex digits; the resolved path is checked anyway.
        path = (self.layers_dir / image_id[:2] / f"{image_id}.layer").resolve()
        if path.parent.parent != self.layers_dir.resolve():
            raise ValueError(f"unsafe image id {image_id!r}")
        return path

    def receive(self, image_id: str, body: BinaryIO, image_json: bytes) -> Upload:
        """Stream ``body`` into a temp file, computing size and checksums; fsync it.

        Raises UploadBroken when the body cannot be read to its end, TarError when it is not a
        (gzip'd) tar archive, StorageFailure when the disk refuses; the temp file is gone then.
        """
        try:
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"{image_id}.", suffix=".part", dir=self.uploads_dir)
        except OSError as exc:
            raise storage_failure("store the layer", exc) from None
        temp_path = Path(name)
        payload = PayloadChecksum(image_json)
        tarsum = LayerTarSum(image_json)
        checker = _ChunkThread("layer-tarsum", tarsum.update)
        try:
            try:
                with os.fdopen(fd, "wb") as handle:
                    writer = _ChunkThread("layer-write", handle.write)
                    try:
                        _copy(body, payload, writer, checker)
                        writer.finish()
                    finally:
                        writer.close()
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:  # writing, flushing or closing the temp file
                raise storage_failure("store the layer", exc) from None
            checker.finish()
            checksum = tarsum.finish()
        except BaseException:
            checker.close()
            with contextlib.suppress(OSError):
                temp_path.unlink()
            raise
        return Upload(temp_path, payload.size, checksum, payload.finish())

    def install(self, upload: Upload, image_id: str) -> None:
        """Rename a received upload into place (replacing an older file of that image)."""
        target = self.path(image_id)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(upload.temp_path, target)
            fsync_dir(target.parent)
        except OSError as exc:
            raise storage_failure("store the layer", exc) from None

    def discard(self, upload: Upload) -> None:
        with contextlib.suppress(OSError):
            upload.temp_path.unlink()

    def remove(self, image_id: str) -> None:
        """Delete an image's layer file, if any; the space comes back once no reader holds it."""
        with contextlib.suppress(FileNotFoundError):
            self.path(image_id).unlink()

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


def _copy(body: BinaryIO, payload: PayloadChecksum, writer: "_ChunkThread", checker: "_ChunkThread") -> None:
    """Body -> the writer and the TarSum threads, chunk by chunk; once the body is known to be
    no tar, only read it to its end (so the client gets to see the 400 instead of a reset
    connection). A failed write ends the copy at once (OSError, turned into a 507)."""
    while True:
        try:
            chunk = body.read(CHUNK)
        except Exception as exc:  # the server's own errors for a broken body vary
            raise UploadBroken(f"the layer upload broke off: {exc or type(exc).__name__}") from None
        if not chunk:
            return
        if writer.failed:
            writer.finish()  # raises the writer's error
        if checker.failed:
            continue
        writer.feed(chunk)
        checker.feed(chunk)
        payload.update(chunk)


class _ChunkThread:
    """Runs ``consume`` on every chunk on a helper thread, fed through a small bounded queue.

    An upload uses two: one writes the body to its temp file, one inflates it and computes the
    TarSum, while the request thread reads the body and hashes it (the sha256 payload). File
    writes, inflating (ISA-L) and hashlib release the GIL on large buffers, so the three
    overlap instead of taking turns: a write that waits for the disk (dirty page throttling)
    no longer stops the reading and checking, which it did when the request thread wrote. The
    queue bound keeps memory at a few chunks per thread.
    """

    QUEUE_CHUNKS = 4

    def __init__(self, name: str, consume: Callable[[bytes], None]) -> None:
        self._consume = consume
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:  # after an error, chunks are only taken off the queue
                try:
                    self._consume(chunk)
                except BaseException as exc:  # re-raised on the request thread by finish()
                    self._error = exc

    def feed(self, chunk: bytes) -> None:
        self._queue.put(chunk)  # blocks while the queue is full: the helper always drains it

    def close(self) -> None:
        """Wait until every chunk fed so far is consumed (or dropped after an error)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> None:
        """close(), then raise the error that ``consume`` raised, if any."""
        self.close()
        if self._error is not None:
            raise self._error


__all__ = ["LayerFiles", "Upload", "UploadBroken", "TarError", "CHUNK"]
