"""S3Blobs against a real S3 server (Swift + s3api): the BlobStore Protocol, aborted uploads, the
stale-upload cleaning, reads with Range/HEAD, presigned redirects, and bounded memory."""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import tarfile
import threading
import time
import tracemalloc
import urllib.request

import pytest
from flask import Flask

from index.config import parse_location
from index.registry.blobs import BlobStore
from index.registry.layers import UploadBroken
from index.registry.s3blobs import PART_SIZE, S3Blobs, make_client
from index.registry.tarsum import TarError
from index.store.errors import StorageFailure
from tests.registry.layers import Entry, Layer
from tests.registry.test_layer_files import Trickle, many_files_layer

ID = "ab" * 32


@pytest.fixture
def blobs(s3_bucket) -> S3Blobs:
    return S3Blobs(parse_location(f"s3://{s3_bucket}/some/prefix"), path_style=True)


@pytest.fixture(scope="module")
def big_layer():
    """A layer of several parts (about 20 MiB: three multipart parts), body and sums once."""
    layer = many_files_layer(count=4000, seed=7)
    body = layer.body
    assert len(body) > 2 * PART_SIZE
    return layer, body, layer.tarsum


def small_layer(text: bytes = b"hello\n") -> Layer:
    return Layer(ID, None, [Entry("etc/", kind=tarfile.DIRTYPE, mode=0o755), Entry("etc/motd", text)])


def all_keys(blobs: S3Blobs) -> list[str]:
    client = make_client(path_style=True)
    answer = client.list_objects_v2(Bucket=blobs.bucket)
    return sorted(item["Key"] for item in answer.get("Contents", []))


def unfinished_uploads(blobs: S3Blobs) -> list[str]:
    client = make_client(path_style=True)
    return [upload["Key"] for upload in client.list_multipart_uploads(Bucket=blobs.bucket).get("Uploads", [])]


def test_satisfies_the_protocol(blobs):
    store: BlobStore = blobs  # mypy checks this assignment; at run time the methods must exist
    for name in ("receive", "commit", "discard", "exists", "size", "delete", "digests", "remove_stale_uploads"):
        assert callable(getattr(store, name))


@pytest.mark.parametrize("raw,bucket,prefix", [
    ("s3://layers", "layers", ""),
    ("s3://layers/", "layers", ""),
    ("s3://my.bucket-1/a/b/", "my.bucket-1", "a/b/"),
])
def test_locations(raw, bucket, prefix):
    location = parse_location(raw)
    assert (location.bucket, location.prefix) == (bucket, prefix)


@pytest.mark.parametrize("raw", ["layers", "s3://", "s3://UPPER", "s3://a", "s3://ok-bucket/../x",
                                 "s3://ok-bucket/a//b", "http://bucket"])
def test_bad_locations_are_refused(raw):
    with pytest.raises(ValueError):
        parse_location(raw)


def test_empty_location_means_the_data_dir():
    assert parse_location("") is None


def test_multipart_upload_commit_and_dedup(blobs, big_layer):
    layer, body, tarsum = big_layer
    received = blobs.receive(Trickle(body, 300_000), layer.json_bytes)
    assert received.size == len(body)
    assert received.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert received.checksum == tarsum
    assert received.payload_checksum == "sha256:" + hashlib.sha256(layer.json_bytes + b"\n" + body).hexdigest()
    assert received.extra["parts"] == -(-len(body) // PART_SIZE)
    # Whole and a valid tar: already copied to its content key (outside the registry's locks).
    assert all_keys(blobs) == sorted([received.temp_key, blobs.key(received.digest)])
    assert blobs.commit(received) == received.digest
    assert blobs.exists(received.digest) and blobs.size(received.digest) == len(body)
    assert all_keys(blobs) == [blobs.key(received.digest)]  # the temporary object is gone
    assert unfinished_uploads(blobs) == []

    # The same bytes again (another image, another account): one blob, no copy left behind.
    again = blobs.receive(io.BytesIO(body), layer.json_bytes)
    assert again.temp_key != received.temp_key
    blobs.commit(again)
    assert list(blobs.digests()) == [received.digest]
    assert all_keys(blobs) == [blobs.key(received.digest)]

    blobs.delete(received.digest)
    blobs.delete(received.digest)  # missing is fine
    assert not blobs.exists(received.digest) and list(blobs.digests()) == []
    with pytest.raises(FileNotFoundError):
        blobs.size(received.digest)


def test_a_small_layer_is_one_object_and_discard_drops_the_temporary_one(blobs):
    layer = small_layer()
    received = blobs.receive(io.BytesIO(layer.body), layer.json_bytes)
    assert received.extra["parts"] == 0 and received.checksum == layer.tarsum
    assert all_keys(blobs) == sorted([received.temp_key, blobs.key(received.digest)])
    blobs.discard(received)
    # The content object stays for the garbage collection (another upload may use it by now).
    assert all_keys(blobs) == [blobs.key(received.digest)] and blobs.temporary_objects() == []


def test_commit_copies_again_when_the_object_went_after_receive(blobs):
    """A delete or the garbage collection may remove the object while no version uses it yet,
    between receive and commit: commit then copies it from the temporary object once more."""
    layer = small_layer(b"raced\n")
    received = blobs.receive(io.BytesIO(layer.body), layer.json_bytes)
    blobs.delete(received.digest)
    assert not blobs.exists(received.digest)
    blobs.commit(received)
    assert blobs.exists(received.digest) and all_keys(blobs) == [blobs.key(received.digest)]


def test_a_body_that_breaks_off_after_some_parts_aborts_the_multipart_upload(blobs, big_layer):
    layer, body, _ = big_layer
    with pytest.raises(UploadBroken):
        blobs.receive(Trickle(body, 1 << 20, break_after=2 * PART_SIZE + 5), layer.json_bytes)
    assert unfinished_uploads(blobs) == [] and all_keys(blobs) == []
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(("layer-", "s3-part"))]


def test_not_a_tar_is_refused_and_leaves_nothing(blobs):
    body = b"\x1f\x8b" + bytes(3 * PART_SIZE)  # gzip magic, then garbage: several parts' worth
    with pytest.raises(TarError):
        blobs.receive(io.BytesIO(body), b"{}")
    assert unfinished_uploads(blobs) == [] and all_keys(blobs) == []


def test_a_truncated_layer_is_refused_after_all_parts_were_sent(blobs, big_layer):
    layer, body, _ = big_layer
    with pytest.raises(TarError):
        blobs.receive(io.BytesIO(body[: len(body) - 1000]), layer.json_bytes)
    assert unfinished_uploads(blobs) == [] and all_keys(blobs) == []


def test_storage_refusing_is_a_storage_failure_and_leaves_nothing(s3_environment):
    blobs = S3Blobs(parse_location("s3://no-such-bucket-here"), path_style=True)
    layer = small_layer()
    with pytest.raises(StorageFailure, match="NoSuchBucket"):
        blobs.receive(io.BytesIO(layer.body), layer.json_bytes)


def test_stale_uploads_are_removed_live_ones_kept(blobs, big_layer):
    """What a killed process leaves: a multipart upload with parts, and a finished temporary
    object that was never committed."""
    layer, body, _ = big_layer
    client = make_client(path_style=True)
    dead = client.create_multipart_upload(Bucket=blobs.bucket, Key=f"{blobs.uploads_prefix}dead")
    client.upload_part(Bucket=blobs.bucket, Key=f"{blobs.uploads_prefix}dead", UploadId=dead["UploadId"],
                       PartNumber=1, Body=bytes(PART_SIZE))
    leftover = blobs.receive(io.BytesIO(small_layer().body), small_layer().json_bytes)
    committed = blobs.commit(blobs.receive(io.BytesIO(body), layer.json_bytes))
    blobs.delete(leftover.digest)  # (receive copied it to its content key already)
    assert sorted(blobs.temporary_objects()) == sorted([f"{blobs.uploads_prefix}dead", leftover.temp_key])

    assert blobs.remove_stale_uploads(older_than=3600) == 0  # all younger than an hour
    assert len(blobs.temporary_objects()) == 2
    time.sleep(1.1)  # Swift rounds an upload's time up to the next second: make "older than 0 s" true
    assert blobs.remove_stale_uploads(older_than=0) == 2
    assert blobs.temporary_objects() == [] and unfinished_uploads(blobs) == []
    assert list(blobs.digests()) == [committed]  # blobs are never touched by the cleaning


def app_for_reads() -> Flask:
    return Flask(__name__)


def test_reads_whole_ranged_head_and_unsatisfiable(blobs, big_layer):
    layer, body, _ = big_layer
    digest = blobs.commit(blobs.receive(io.BytesIO(body), layer.json_bytes))
    app = app_for_reads()
    with app.test_request_context("/", method="GET"):
        answer = blobs.send(digest)
        assert answer.status_code == 200 and answer.headers["Accept-Ranges"] == "bytes"
        assert answer.headers["Content-Length"] == str(len(body))
        assert b"".join(answer.response) == body
    with app.test_request_context("/", method="GET", headers={"Range": f"bytes={PART_SIZE - 10}-"}):
        answer = blobs.send(digest)
        assert answer.status_code == 206
        assert answer.headers["Content-Range"] == f"bytes {PART_SIZE - 10}-{len(body) - 1}/{len(body)}"
        assert b"".join(answer.response) == body[PART_SIZE - 10:]
    with app.test_request_context("/", method="GET", headers={"Range": "bytes=5-9"}):
        assert b"".join(blobs.send(digest).response) == body[5:10]
    with app.test_request_context("/", method="HEAD"):
        answer = blobs.send(digest)
        assert answer.status_code == 200 and answer.headers["Content-Length"] == str(len(body))
        assert b"".join(answer.response) == b""
    with app.test_request_context("/", method="GET", headers={"Range": f"bytes={len(body) + 5}-"}):
        answer = blobs.send(digest)
        assert answer.status_code == 416 and answer.headers["Content-Range"] == f"bytes */{len(body)}"
    with app.test_request_context("/", method="GET"), pytest.raises(FileNotFoundError):
        blobs.send("sha256:" + "0" * 64)


def test_redirect_answers_302_to_a_presigned_url_that_serves_the_bytes(s3_bucket):
    blobs = S3Blobs(parse_location(f"s3://{s3_bucket}"), path_style=True, redirect=True, redirect_seconds=60)
    layer = small_layer(b"redirected\n" * 1000)
    digest = blobs.commit(blobs.receive(io.BytesIO(layer.body), layer.json_bytes))
    with app_for_reads().test_request_context("/", method="GET"):
        answer = blobs.send(digest)
    assert answer.status_code == 302 and answer.headers["Cache-Control"] == "no-store"
    location = answer.headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location
    with urllib.request.urlopen(location, timeout=10) as fetched:
        assert fetched.read() == layer.body
    # A changed signature is refused by the server: the URL really is what grants the read.
    tampered = location.replace("X-Amz-Expires=60", "X-Amz-Expires=61")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    assert refused.value.code == 403
    # HEAD is answered by the index itself (a presigned GET URL does not sign a HEAD).
    with app_for_reads().test_request_context("/", method="HEAD"):
        answer = blobs.send(digest)
    assert answer.status_code == 200 and answer.headers["Content-Length"] == str(len(layer.body))


def test_access_check_names_the_problem(s3_bucket, monkeypatch):
    S3Blobs(parse_location(f"s3://{s3_bucket}/p"), path_style=True).check_access()
    assert all_keys(S3Blobs(parse_location(f"s3://{s3_bucket}"), path_style=True)) == []  # probe removed
    with pytest.raises(ValueError, match="does not exist"):
        S3Blobs(parse_location("s3://missing-bucket"), path_style=True).check_access()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(ValueError, match="credentials were refused"):
        S3Blobs(parse_location(f"s3://{s3_bucket}"), path_style=True).check_access()


class ZeroTar(io.RawIOBase):
    """A plain tar holding one file of ``size`` pseudo-random bytes, generated as it is read."""

    def __init__(self, size: int) -> None:
        info = tarfile.TarInfo("big.bin")
        info.size, info.mtime = size, 1_400_000_000
        self._head = info.tobuf(format=tarfile.GNU_FORMAT)
        self._block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB, not compressible to nothing
        self._size = size
        self._tail = bytes(-size % 512) + bytes(1024)
        self._position = 0
        self.total = len(self._head) + size + len(self._tail)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = 1 << 20 if size < 0 else size
        out = bytearray()
        while len(out) < size and self._position < self.total:
            offset = self._position
            if offset < len(self._head):
                piece = self._head[offset:offset + size - len(out)]
            elif offset < len(self._head) + self._size:
                inner = (offset - len(self._head)) % len(self._block)
                left = len(self._head) + self._size - offset
                piece = self._block[inner:inner + min(size - len(out), left)]
            else:
                inner = offset - len(self._head) - self._size
                piece = self._tail[inner:inner + size - len(out)]
            out += piece
            self._position += len(piece)
        return bytes(out)


def test_memory_stays_bounded_whatever_the_layer_size(blobs):
    """96 MiB through receive + commit: Python's allocations peak far below the body (they would
    exceed it if the body were buffered); the 1 GiB RSS figure is in bench/README.md."""
    body = ZeroTar(96 << 20)
    tracemalloc.start()
    try:
        received = blobs.receive(body, b"{}")
        blobs.commit(received)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received.size == body.total
    assert blobs.size(received.digest) == body.total
    assert peak < 48 << 20, f"peak {peak >> 20} MiB"


def test_import_file_uploads_a_local_layer_once(blobs, tmp_path, big_layer):
    layer, body, _ = big_layer
    first, second = tmp_path / "a.layer", tmp_path / "b.layer"
    first.write_bytes(body)
    second.write_bytes(body)
    digest, size = blobs.import_file(first)
    assert (digest, size) == ("sha256:" + hashlib.sha256(body).hexdigest(), len(body))
    assert blobs.import_file(second) == (digest, size)
    assert first.exists() and second.exists()  # the caller removes them (as with LocalBlobs)
    assert all_keys(blobs) == [blobs.key(digest)] and blobs.temporary_objects() == []
    with app_for_reads().test_request_context("/", method="GET"):
        assert b"".join(blobs.send(digest).response) == body


def _use_after_fork(blobs: S3Blobs, parents_client: object, digest: str) -> None:
    # Exit status: 0 when this process built a client of its own and it works.
    os._exit(0 if blobs.client is not parents_client and blobs.exists(digest) else 1)


def test_a_forked_worker_builds_its_own_client(blobs):
    """granian forks its workers from the process that built the app (and checked the bucket
    with a client): a connection pool must not be shared across a fork."""
    digest = blobs.commit(blobs.receive(io.BytesIO(small_layer().body), small_layer().json_bytes))
    parents_client = blobs.client
    worker = multiprocessing.get_context("fork").Process(target=_use_after_fork,
                                                         args=(blobs, parents_client, digest))
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert blobs.client is parents_client  # the parent keeps its own
