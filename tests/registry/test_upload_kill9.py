"""kill -9 of the server in the middle of a layer upload, against both layer stores.

After the kill and a restart: the image is not served, no image version points at a blob that is
not there, what the dead upload left (a temp file; a multipart upload in S3) is found and removed
by the stale-upload cleaning (what garbage collection runs), and the next push of the same image
completes with the same bytes.
"""
from __future__ import annotations

import random
import socket
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import image_id
from tests.processes import kill_9_server

from . import storage
from .conftest import LAYER_STORES, layer_storage_env, running_server
from .layers import Entry, Layer

pytestmark = pytest.mark.live  # serves the index in processes and kills one with SIGKILL

WAIT_SECONDS = 30.0


def big_layer() -> Layer:
    """About 20 MiB of body (incompressible): several S3 parts, many 1 MiB chunks."""
    rng = random.Random(9)
    entries = [Entry("data/", kind=tarfile.DIRTYPE, mode=0o755)]
    entries += [Entry(f"data/blob{n}", rng.randbytes(4 << 20)) for n in range(5)]
    return Layer(image_id(0x9A1), None, entries)


def start_upload(host: str, path: str, headers: dict[str, str], body: bytes) -> socket.socket:
    """Send ``body`` as the first chunks of a chunked PUT that promises more; keep it open."""
    address, port = host.rsplit(":", 1)
    sock = socket.create_connection((address, int(port)), timeout=WAIT_SECONDS)
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked",
             "Content-Type: application/octet-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    for start in range(0, len(body), 1 << 20):
        piece = body[start:start + (1 << 20)]
        sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    return sock


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("store", LAYER_STORES)
def test_kill_9_mid_upload_leaves_no_visible_layer_and_leftovers_gc_removes(store, request, tmp_path):
    env = layer_storage_env(request, store)
    layer = big_layer()
    body = layer.body
    data_dir = tmp_path / "data"
    with running_server(data_dir, tmp_path / "first.log", workers=1, extra_env=env) as server:
        alice = server.register("alice")
        announced = alice.announce("alice/app", [layer])
        auth = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
        assert alice.request("PUT", f"/v1/images/{layer.image_id}/json", layer.json_bytes,
                             {**auth, "Content-Type": "application/json"}).status == 200
        # All but the last MiB: past two 8 MiB parts, so S3 holds a multipart upload with parts.
        upload = start_upload(server.host, f"/v1/images/{layer.image_id}/layer", auth, body[: len(body) - (1 << 20)])
        try:
            wait_until(lambda: server.unfinished_uploads(), "the upload to reach its temporary place")
            if server.s3 is not None:
                wait_until(lambda: _parts_sent(server.s3) >= 2, "two parts in S3")
            kill_9_server(server.process.pid)
            server.process.wait(WAIT_SECONDS)
        finally:
            upload.close()
    leftovers = server.unfinished_uploads()
    assert leftovers  # the dead upload's temp file / multipart upload is still there

    with running_server(data_dir, tmp_path / "second.log", workers=1, extra_env=env) as server:
        reader = server.client(("alice", "secret1"))
        assert reader.request("GET", f"/v1/images/{layer.image_id}/layer", headers=reader.basic()).status == 404
        assert reader.request("GET", f"/v1/images/{layer.image_id}/json", headers=reader.basic()).status == 404
        for uploader, version in storage.versions(data_dir, layer.image_id).items():
            if version.get("blob"):  # a version that names a blob: the blob is there
                assert server.layer_file(layer.image_id, uploader).exists()
        # A start does not remove uploads younger than an hour (a live one of another worker may
        # still be running); the garbage collection's cleaning with age 0 removes them.
        assert server.unfinished_uploads() == leftovers
        assert _remove_stale_uploads(server, data_dir) == len(leftovers)
        assert server.unfinished_uploads() == []

        report = alice.__class__(server.host, ("alice", "secret1")).push("alice/app", [layer])
        assert report.uploaded == [layer.image_id]
        pulled = server.client().pull("alice/app")
        assert pulled[layer.image_id] == (layer.json_bytes, body)
        assert server.layer_file(layer.image_id).read_bytes() == body
        assert server.unfinished_uploads() == []


def _parts_sent(s3) -> int:
    client = s3.client
    total = 0
    for upload in client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []):
        parts = client.list_parts(Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        total += len(parts.get("Parts", []))
    return total


def _remove_stale_uploads(server, data_dir: Path) -> int:
    if server.s3 is not None:
        return server.s3.remove_stale_uploads(older_than=0)
    from index.registry.localblobs import LocalBlobs
    return LocalBlobs(data_dir).remove_stale_uploads(older_than=0)
