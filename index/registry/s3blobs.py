"""Layer blobs in S3-compatible object storage (``INDEX_LAYER_STORAGE=s3://bucket[/prefix]``).

    <prefix>blobs/sha256/<2 hex>/<64 hex>   a blob, named by the sha256 of its bytes
    <prefix>uploads/<random>                an upload in progress (object or multipart upload)

An upload streams into a multipart upload under a temporary key while size, digest, TarSum and
payload checksum are computed (:func:`index.registry.layers.receive_stream`, the same code as
the data dir's). A body that is not a whole, valid tar never becomes an object: its multipart
upload is aborted. A whole one is completed and copied server-side to its content key (skipped
when those bytes are stored already); ``commit``, under the registry's locks, then only checks
that the object is there and drops the temporary one. Whether a layer is *served* is the image
records' business: an object without an image version that uses it is never served, and the
garbage collection deletes it. What a killed process leaves under ``uploads/`` is removed by
``remove_stale_uploads``. Memory per upload: the part being filled plus at most
``PARTS_IN_FLIGHT`` parts being sent, whatever the layer's size.

Endpoint, credentials and region come the way boto3 finds them (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, profiles, ...); requests are signed with Signature V4.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from flask import Response, request

from ..config import ConfigError, S3Location
from ..ops.preflight import PreflightError, check_bucket_access, s3_error_text
from ..store.errors import StorageFailure
from .blobs import ReceivedBlob, file_digest
from .layers import receive_stream
from .tarsum import LayerLimits

log = logging.getLogger(__name__)

PART_SIZE = 8 << 20        # S3 wants >= 5 MiB for every part but the last
PARTS_IN_FLIGHT = 2        # parts sent while the next one fills: overlap without much memory
READ_CHUNK = 1 << 20
# A single CopyObject may copy at most 5 GiB; larger blobs are copied part by part.
SINGLE_COPY_LIMIT = 5 << 30
COPY_PART_SIZE = 512 << 20
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def _add_content_md5(params: dict[str, Any], **_: Any) -> None:
    """DeleteObjects needs Content-MD5 on some servers (Swift's s3api, older MinIO) that current
    botocore no longer sends; adding it is harmless everywhere else."""
    body = params.get("body") or b""
    if isinstance(body, str):
        body = body.encode()
    params["headers"]["Content-MD5"] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def make_client(path_style: bool, **options: Any) -> Any:
    """An S3 client configured the way boto3 finds it (environment, profiles), SigV4;
    ``options`` (endpoint_url, credentials) are for tests and tools that name them."""
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "virtual"},
        retries={"max_attempts": 4, "mode": "standard"},
        # Only the checksums S3 requires: older S3 implementations refuse the newer headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    )
    client = boto3.session.Session().client("s3", config=config, **options)
    client.meta.events.register("before-call.s3.DeleteObjects", _add_content_md5)
    return client


def _s3_failure(action: str, exc: Exception) -> StorageFailure:
    return StorageFailure(f"could not {action}: object storage answered {s3_error_text(exc)}")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _is_missing(exc: Exception) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchUpload")


class S3Blobs:
    """Content-addressed layer bytes in one bucket (under an optional prefix)."""

    def __init__(self, location: S3Location, *, path_style: bool = False, redirect: bool = False,
                 redirect_seconds: int = 300,
                 client_factory: Callable[[bool], Any] = make_client) -> None:
        self.location = location
        self.bucket = location.bucket
        self.path_style = path_style
        self.redirect = redirect
        self.redirect_seconds = redirect_seconds
        self._client_factory = client_factory
        self._client: Any = None
        self._client_pid = 0
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> S3Blobs:
        """The store ``INDEX_LAYER_STORAGE`` names, checked to be reachable and writable
        (ConfigError naming the problem otherwise: ``make run`` prints it as its one line)."""
        blobs = cls(settings["LAYER_STORAGE"], path_style=settings["S3_PATH_STYLE"],
                    redirect=settings["S3_REDIRECT"], redirect_seconds=settings["S3_REDIRECT_SECONDS"])
        blobs.check_access()
        return blobs

    @property
    def client(self) -> Any:
        # One client per process: granian forks its workers after the app was built (and the
        # bucket checked), and a connection pool must not be shared across a fork.
        if self._client is None or self._client_pid != os.getpid():
            with self._client_lock:
                if self._client is None or self._client_pid != os.getpid():
                    self._client = self._client_factory(self.path_style)
                    self._client_pid = os.getpid()
        return self._client

    # -- names --------------------------------------------------------------------------------
    @property
    def blobs_prefix(self) -> str:
        return f"{self.location.prefix}blobs/sha256/"

    @property
    def uploads_prefix(self) -> str:
        return f"{self.location.prefix}uploads/"

    def key(self, digest: str) -> str:
        if not _DIGEST_RE.fullmatch(digest):
            raise ValueError(f"not a blob digest: {digest[:80]!r}")
        hexdigest = digest.partition(":")[2]
        return f"{self.blobs_prefix}{hexdigest[:2]}/{hexdigest}"

    # -- start-up check -----------------------------------------------------------------------
    def check_access(self) -> None:
        """Write, read back and delete a small object; ConfigError naming what is wrong
        (index.ops.preflight.check_bucket_access does the asking)."""
        probe = f"{self.uploads_prefix}access-check-{uuid.uuid4().hex}"
        try:
            check_bucket_access(lambda: self.client, self.bucket, probe, str(self.location))
        except PreflightError as exc:
            raise ConfigError(str(exc)) from None

    # -- uploads ------------------------------------------------------------------------------
    def receive(self, body: IO[bytes], image_json: bytes, limits: LayerLimits | None = None,
                expected_size: int | None = None) -> ReceivedBlob:
        """Stream ``body`` into a temporary object, computing size, digest and checksums; once
        the layer is whole and a valid tar, copy it to its content key too (see ``commit``).

        Raises UploadBroken, TarError, StorageFailure (and whatever ``receive_stream`` refuses);
        the multipart upload is aborted then, so nothing is left behind.
        """
        temp_key = f"{self.uploads_prefix}{uuid.uuid4().hex}"
        writer = _MultipartWriter(self.client, self.bucket, temp_key)
        try:
            try:
                streamed = receive_stream(body, image_json, writer.write, limits, expected_size)
                writer.finish()
                self._ensure_blob(temp_key, self.key(streamed.digest), streamed.size)
            except StorageFailure:
                raise
            except Exception as exc:
                if _is_client_error(exc):
                    raise _s3_failure("store the layer", exc) from None
                raise
        except BaseException:
            writer.abort()
            raise
        return ReceivedBlob(temp_key, streamed.size, streamed.digest, streamed.checksum,
                            streamed.payload_checksum, {"parts": writer.part_count})

    def commit(self, received: ReceivedBlob) -> str:
        """Make sure the content key holds the bytes, then drop the temporary object.

        The slow part, the server-side copy (about as long as the upload), already ran at the
        end of ``receive``, outside the registry's locks: ``commit`` runs under the blob record's
        lock and the backup gate, so here it is one HEAD. Only when the object went meanwhile
        (a delete or the garbage collection saw it without users) is it copied again.
        """
        try:
            self._ensure_blob(received.temp_key, self.key(received.digest), received.size)
        except Exception as exc:
            raise _s3_failure("store the layer", exc) from None
        self.discard(received)
        return received.digest

    def _ensure_blob(self, source: str, key: str, size: int) -> None:
        """Copy ``source`` to the content key ``key`` unless those bytes are stored already."""
        if not self._exists_key(key):
            self._copy(source, key, size)

    def _copy(self, source: str, target: str, size: int) -> None:
        copy_source = {"Bucket": self.bucket, "Key": source}
        if size <= SINGLE_COPY_LIMIT:
            self.client.copy_object(Bucket=self.bucket, Key=target, CopySource=copy_source)
            return
        from boto3.s3.transfer import TransferConfig
        self.client.copy(copy_source, self.bucket, target,
                         Config=TransferConfig(multipart_threshold=SINGLE_COPY_LIMIT,
                                               multipart_chunksize=COPY_PART_SIZE, max_concurrency=4))

    def discard(self, received: ReceivedBlob) -> None:
        """Drop the temporary object (a failure only leaves it to remove_stale_uploads). A blob
        that ``receive`` copied to its content key stays: another upload may be using it, and
        what no image version uses is the garbage collection's (``digests``/``delete``)."""
        self._delete_key(received.temp_key)

    def _delete_key(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            log.warning("could not delete the temporary upload %s: %s", key, s3_error_text(exc))

    def import_file(self, path: Path) -> tuple[str, int]:
        """Upload a local layer file as a blob (moving a data dir's layers into S3); the file
        stays (the caller removes it). Returns (digest, size)."""
        name, size = file_digest(path)
        key = self.key(name)
        try:
            if not self._exists_key(key):
                from boto3.s3.transfer import TransferConfig
                self.client.upload_file(str(path), self.bucket, key, Config=TransferConfig(
                    multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, max_concurrency=PARTS_IN_FLIGHT))
        except Exception as exc:
            raise _s3_failure("store the layer", exc) from None
        return name, size

    # -- blobs --------------------------------------------------------------------------------
    def _exists_key(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def exists(self, digest: str) -> bool:
        try:
            return self._exists_key(self.key(digest))
        except Exception as exc:
            raise _s3_failure("read the layer store", exc) from None

    def size(self, digest: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(digest) from None
            raise _s3_failure("read the layer store", exc) from None
        return int(head["ContentLength"])

    def delete(self, digest: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        except Exception as exc:
            if not _is_missing(exc):
                raise _s3_failure("delete a layer", exc) from None

    def digests(self) -> Iterator[str]:
        for item in self._list(self.blobs_prefix):
            name = "sha256:" + item["Key"].rpartition("/")[2]
            if _DIGEST_RE.fullmatch(name) and item["Key"] == self.key(name):
                yield name

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                yield from page.get("Contents", [])
        except Exception as exc:
            raise _s3_failure("list the layer store", exc) from None

    def temporary_objects(self) -> list[str]:
        """Keys under uploads/ and the keys of unfinished multipart uploads (for tests, gc)."""
        keys = [item["Key"] for item in self._list(self.uploads_prefix)]
        keys += [upload["Key"] for upload in self._multipart_uploads()]
        return keys

    def _multipart_uploads(self) -> Iterator[dict[str, Any]]:
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.uploads_prefix)
            for page in pages:
                yield from page.get("Uploads", [])
        except Exception as exc:
            raise _s3_failure("list unfinished uploads", exc) from None

    def remove_stale_uploads(self, older_than: float = 3600) -> int:
        """Delete temporary objects and abort multipart uploads older than ``older_than`` s."""
        limit = datetime.fromtimestamp(time.time() - older_than, tz=UTC)
        removed = 0
        stale = [item["Key"] for item in self._list(self.uploads_prefix) if item["LastModified"] < limit]
        for start in range(0, len(stale), 1000):  # DeleteObjects takes at most 1000 keys
            batch = stale[start:start + 1000]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            except Exception as exc:
                raise _s3_failure("remove unfinished uploads", exc) from None
            removed += len(batch) - len(answer.get("Errors", []))
        for upload in list(self._multipart_uploads()):
            if upload["Initiated"] < limit:
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    removed += 1
                except Exception as exc:
                    if not _is_missing(exc):
                        raise _s3_failure("abort an unfinished upload", exc) from None
        if removed:
            log.info("removed %d unfinished layer upload(s) from %s", removed, self.location)
        return removed

    # -- reads --------------------------------------------------------------------------------
    def presigned_url(self, digest: str) -> str:
        return self._presigned_url(self.key(digest))

    def _presigned_url(self, key: str) -> str:
        return str(self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.redirect_seconds))

    def send(self, digest: str) -> Response:
        """The answer to ``GET|HEAD /v1/images/<id>/layer``: a 302 to a presigned URL (with
        ``INDEX_S3_REDIRECT``), else the bytes streamed from S3, honouring ``Range``.
        FileNotFoundError when the blob is missing."""
        return self.send_object(self.key(digest))

    def send_object(self, key: str) -> Response:
        """``send`` for any object of the bucket (by key)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(key) from None
            raise _s3_failure("read the layer store", exc) from None
        if self.redirect and request.method == "GET":
            # The URL carries a signature that expires: no cache may keep this answer.
            return Response(status=302, headers={"Location": self._presigned_url(key), "Cache-Control": "no-store"})
        size = int(head["ContentLength"])
        wanted = request.range.range_for_length(size) if request.range is not None else None
        if request.range is not None and wanted is None:
            answer = Response(status=416)
            answer.headers["Content-Range"] = f"bytes */{size}"
            answer.headers["Accept-Ranges"] = "bytes"
            return answer
        start, stop = wanted if wanted is not None else (0, size)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(stop - start)}
        if wanted is not None:
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        status = 206 if wanted is not None else 200
        if request.method == "HEAD" or stop == start:
            return Response(status=status, headers=headers, mimetype="application/octet-stream")
        try:
            options = {"Range": f"bytes={start}-{stop - 1}"} if wanted is not None else {}
            body = self.client.get_object(Bucket=self.bucket, Key=key, **options)["Body"]
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(key) from None
            raise _s3_failure("read the layer", exc) from None
        return Response(_stream(body), status=status, headers=headers,
                        mimetype="application/octet-stream", direct_passthrough=True)


def _stream(body: Any) -> Iterator[bytes]:
    try:
        while chunk := body.read(READ_CHUNK):
            yield chunk
    finally:
        body.close()


def _is_client_error(exc: Exception) -> bool:
    module = type(exc).__module__
    return module.startswith("botocore") or module.startswith("boto3") or module.startswith("urllib3")


class _MultipartWriter:
    """The ``write`` function of one upload: fills PART_SIZE parts and sends them, at most
    PARTS_IN_FLIGHT at a time, on a small pool; a body smaller than one part is one PutObject."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._pending = bytearray()
        self._upload_id: str | None = None
        self._futures: list[Future[dict[str, Any]]] = []
        self._slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT)
        self._pool: ThreadPoolExecutor | None = None
        self.part_count = 0

    def write(self, chunk: bytes) -> None:
        self._pending += chunk
        if len(self._pending) >= PART_SIZE:
            self._send(self._take())

    def _take(self) -> bytearray:
        """The pending bytes up to one part; the rest (less than a chunk) starts the next part.
        The part is the buffer itself, cut in place: no second copy of 8 MiB."""
        part, rest = self._pending, self._pending[PART_SIZE:]
        del part[PART_SIZE:]
        self._pending = rest
        return part

    def _send(self, data: bytearray) -> None:
        for future in self._futures:  # an earlier part failed: stop at once
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)["UploadId"]
            self._pool = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self.part_count += 1
        self._slots.acquire()  # blocks while PARTS_IN_FLIGHT parts are on their way
        assert self._pool is not None
        future = self._pool.submit(self._upload_part, self.part_count, data)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _upload_part(self, number: int, data: bytearray) -> dict[str, Any]:
        answer = self._client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                          PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def finish(self) -> None:
        """Send what is left and complete the object under the temporary key."""
        if self._upload_id is None:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=self._take())
            return
        if self._pending:
            self._send(self._take())
        parts = [future.result() for future in self._futures]
        self._shutdown()
        self._client.complete_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                               MultipartUpload={"Parts": parts})
        self._upload_id = None

    def abort(self) -> None:
        """Give up: abort the multipart upload (or delete the object) so nothing stays behind."""
        self._pending = bytearray()
        for future in self._futures:
            with contextlib.suppress(Exception):
                future.result()
        self._shutdown()
        try:
            if self._upload_id is not None:
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
            else:
                self._client.delete_object(Bucket=self._bucket, Key=self._key)
        except Exception as exc:  # remove_stale_uploads gets it later
            log.warning("could not abort the upload %s: %s", self._key, s3_error_text(exc))

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
