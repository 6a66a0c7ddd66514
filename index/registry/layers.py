"""Receiving a layer body: read in ``CHUNK`` pieces, written by a helper thread, checked by another.

Shared by every :class:`~index.registry.blobs.BlobStore`: :func:`receive_stream` takes the body and a
``write`` function for the chunks (a temp file's, an S3 multipart upload's) and returns what was
computed on the way: size, sha256 digest (the blob's name), TarSum and payload checksum. A layer
never passes through memory whole, and the limits of :class:`LayerLimits` are checked while it
streams, so a compression bomb or a body past the size limit stops early.
"""
from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from .tarsum import LayerLimits, LayerRefused, LayerTarSum, PayloadChecksum, TarError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# A live upload writes continuously, so an older temp upload belongs to a dead process.
STALE_UPLOAD_SECONDS = 3600


class UploadBroken(Exception):
    """The request body ended early or could not be read (the client went away)."""


@dataclass
class Streamed:
    """What was computed from a layer body while it streamed to its ``write`` function."""

    size: int
    digest: str            # sha256:<hex> of the body as sent
    checksum: str          # tarsum+sha256:...
    payload_checksum: str  # sha256:... over json + "\n" + body


def receive_stream(body: IO[bytes], image_json: bytes, write: Callable[[bytes], object],
                   limits: LayerLimits | None = None, expected_size: int | None = None) -> Streamed:
    """Read ``body`` to its end, handing every chunk to ``write`` on a helper thread.

    Raises UploadBroken (unreadable, or shorter than ``expected_size``, the Content-Length),
    TarError (not a gzip'd tar), LayerRefused (past a limit) or whatever ``write`` raised
    (OSError: the caller turns it into a StorageFailure). No helper thread outlives the call.
    """
    limits = limits or LayerLimits()
    payload = PayloadChecksum(image_json)
    digest = hashlib.sha256()
    tarsum = LayerTarSum(image_json, limits)
    checker = _ChunkThread("layer-tarsum", tarsum.update)

    def hash_and_write(chunk: bytes) -> None:
        digest.update(chunk)  # on the writer's thread: hashlib releases the GIL like the write
        write(chunk)

    try:
        writer = _ChunkThread("layer-write", hash_and_write)
        try:
            _copy(body, payload, writer, checker, limits.max_bytes)
            writer.finish()
        finally:
            writer.close()
        checker.finish()
        if expected_size is not None and payload.size != expected_size:
            raise UploadBroken(f"the body ended after {payload.size} of the {expected_size} bytes "
                               f"its Content-Length announced")
        checksum = tarsum.finish()
    finally:
        checker.close()
    return Streamed(payload.size, "sha256:" + digest.hexdigest(), checksum, payload.finish())


def _copy(body: IO[bytes], payload: PayloadChecksum, writer: _ChunkThread, checker: _ChunkThread,
          max_bytes: int) -> None:
    """Body -> the writer and the TarSum threads, chunk by chunk; once the body is known to be
    no tar (or past a limit), only read it to its end (so the client gets to see the 4xx instead
    of a reset connection), but never past ``max_bytes``. A failed write ends the copy at once
    (OSError, turned into a 507)."""
    while True:
        try:
            chunk = body.read(CHUNK)
        except Exception as exc:  # the server's own errors for a broken body vary
            raise UploadBroken(f"the layer upload broke off: {exc or type(exc).__name__}") from None
        if not chunk:
            return
        payload.update(chunk)
        if max_bytes and payload.size > max_bytes:
            raise LayerRefused(f"the layer is larger than {max_bytes} bytes (INDEX_LAYER_MAX_BYTES)")
        if writer.failed:
            writer.finish()  # raises the writer's error
        if checker.failed:
            continue
        writer.feed(chunk)
        checker.feed(chunk)


class _ChunkThread:
    """Runs ``consume`` on every chunk on a helper thread, fed through a small bounded queue.

    An upload uses two: one hashes (sha256) and writes the body to its temporary place, one inflates it and computes the
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


__all__ = ["receive_stream", "Streamed", "UploadBroken", "TarError", "LayerRefused", "LayerLimits", "CHUNK"]
