"""LocalBlobs.receive on its own: the body read on the request thread, written and checked on two
helper threads; every outcome leaves either a complete temp file with both checksums, or nothing
(and no helper thread left running)."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import tarfile
import threading
from pathlib import Path

import pytest

from index.ops.v1client import chunks
from index.registry import localblobs as layers_module
from index.registry.layers import UploadBroken
from index.registry.localblobs import LocalBlobs
from index.registry.tarsum import TarError
from index.store.errors import StorageFailure

from .layers import Entry, Layer

ID = "cd" * 32


class Trickle(io.RawIOBase):
    """A body that hands out at most ``piece`` bytes per read (like a socket), and can break off."""

    def __init__(self, data: bytes, piece: int, break_after: int | None = None) -> None:
        self._data, self._piece, self._break_after, self._position = data, piece, break_after, 0

    def read(self, size: int = -1) -> bytes:
        if self._break_after is not None and self._position >= self._break_after:
            raise OSError("connection reset by peer")
        take = self._piece if size < 0 else min(size, self._piece)
        chunk = self._data[self._position:self._position + take]
        self._position += len(chunk)
        return chunk

    @property
    def consumed(self) -> int:
        return self._position


def many_files_layer(count: int = 1500, seed: int = 5) -> Layer:
    """Many small files of odd sizes (headers at every possible block offset), a few large ones,
    directories, links and a long name: what a real layer of a distribution looks like."""
    rng = random.Random(seed)
    entries = [Entry("usr/", kind=tarfile.DIRTYPE, mode=0o755)]
    for number in range(count):
        size = rng.choice([0, 1, 511, 512, 513, 1000, 4096, 7000]) if number % 150 else rng.randint(1, 1 << 20)
        entries.append(Entry(f"usr/share/d{number % 37}/f{number}", rng.randbytes(size),
                             mode=rng.choice([0o644, 0o755]), uid=number % 3, gid=number % 5))
    entries.append(Entry("usr/bin/" + "x" * 120, b"long name\n"))
    entries.append(Entry("usr/bin/sh", kind=tarfile.SYMTYPE, linkname="bash", mode=0o777))
    return Layer(ID, None, entries)


_EARLIER_THREADS: set[int] = set()


def helper_threads() -> list[str]:
    """Upload helper threads started during this test and still running. (Threads of an earlier
    test in this process, such as a server's upload its client abandoned, may still be winding
    down on a loaded machine: they are not this test's.)"""
    return [thread.name for thread in threading.enumerate()
            if thread.name.startswith("layer-") and thread.ident not in _EARLIER_THREADS]


@pytest.fixture
def files(tmp_path):
    _EARLIER_THREADS.clear()
    _EARLIER_THREADS.update(thread.ident for thread in threading.enumerate() if thread.ident is not None)
    return LocalBlobs(tmp_path / "data")


class Built:
    """A layer's body and sums, computed once (Layer recomputes its gzip on every access)."""

    def __init__(self, layer: Layer) -> None:
        self.entries, self.json_bytes, self.body = layer.entries, layer.json_bytes, layer.body
        self.tarsum = layer.tarsum
        self.payload_checksum = "sha256:" + hashlib.sha256(self.json_bytes + b"\n" + self.body).hexdigest()


@pytest.fixture(scope="module")
def big_layer() -> Built:
    return Built(many_files_layer())


@pytest.mark.parametrize("piece", [1 << 20, 65536 + 7, 3000])
def test_many_small_files_in_any_read_size_match_the_oracle(files, big_layer, piece):
    body = big_layer.body
    upload = files.receive(Trickle(body, piece), big_layer.json_bytes)
    assert (upload.checksum, upload.payload_checksum) == (big_layer.tarsum, big_layer.payload_checksum)
    assert upload.size == len(body) and Path(upload.temp_key).read_bytes() == body
    assert upload.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert helper_threads() == []


def test_a_full_disk_while_writing_is_a_storage_failure_and_leaves_nothing(files, big_layer, monkeypatch):
    class FillingFile(io.FileIO):
        """Takes two writes, then the disk is full: the writer thread gets ENOSPC."""

        writes = 0

        def write(self, data):
            FillingFile.writes += 1
            if FillingFile.writes > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    class FullDisk:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fdopen(fd, mode):
            return FillingFile(fd, mode.replace("b", ""))

    monkeypatch.setattr(layers_module, "os", FullDisk())
    # Bytes after the gzip stream are ignored (as Go's reader does): a body long enough that
    # reading on after the failure would show, whatever the threads' timing.
    data = big_layer.body + bytes(32 << 20)
    body = Trickle(data, 1 << 20)
    with pytest.raises(StorageFailure) as failure:
        files.receive(body, big_layer.json_bytes)
    assert failure.value.no_space and "disk is full" in str(failure.value)
    assert body.consumed < len(data) // 2  # stopped reading: a 507 is coming, not a 200
    assert list(files.uploads_dir.iterdir()) == [] and helper_threads() == []


def test_a_body_that_breaks_off_leaves_nothing(files, big_layer):
    with pytest.raises(UploadBroken, match="broke off"):
        files.receive(Trickle(big_layer.body, 65536, break_after=3 << 20), big_layer.json_bytes)
    assert list(files.uploads_dir.iterdir()) == [] and helper_threads() == []


@pytest.mark.parametrize("body, message", [
    (b"\x1f\x8b" + random.Random(3).randbytes(3 << 20), "not valid gzip"),
    (b"not a tar archive at all, " * 120_000, "tar header"),
    (b"", "empty"),
])
def test_not_a_layer_is_read_to_its_end_and_leaves_nothing(files, body, message):
    trickle = Trickle(body, 65536)
    with pytest.raises(TarError, match=message):
        files.receive(trickle, b"{}")
    assert trickle.consumed == len(body)  # so the client reads the 400, not a reset connection
    assert list(files.uploads_dir.iterdir()) == [] and helper_threads() == []


def test_a_truncated_layer_is_a_tar_error(files, big_layer):
    with pytest.raises(TarError, match="truncated"):
        files.receive(Trickle(big_layer.body[:-100], 1 << 20), big_layer.json_bytes)
    assert list(files.uploads_dir.iterdir()) == [] and helper_threads() == []


@pytest.mark.parametrize("send", ["chunked", "length"])
def test_gunicorn_bodies_chunked_and_with_content_length(server, big_layer, send):
    """Through a real gunicorn (its own body readers): docker's chunked body, and a Content-Length
    body in one piece, both stored byte for byte with the sums the client computed."""
    user = server.register(f"layers{send}")
    image = "ef" * 31 + ("01" if send == "chunked" else "02")
    layer = Layer(image, None, big_layer.entries)  # the same body, this image's json and TarSum
    announced = user.announce(f"layers{send}/app", [layer])
    auth = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
    image_json = layer.json_bytes
    assert user.request("PUT", f"/v1/images/{image}/json", image_json,
                        {**auth, "Content-Type": "application/json"}).status == 200
    body = chunks(big_layer.body, 1 << 20) if send == "chunked" else big_layer.body
    reply = user.request("PUT", f"/v1/images/{image}/layer", body, auth, chunked=send == "chunked")
    assert reply.status == 200, reply.body
    payload = "sha256:" + hashlib.sha256(image_json + b"\n" + big_layer.body).hexdigest()
    tarsum = layer.tarsum
    assert user.request("PUT", f"/v1/images/{image}/checksum", b"",
                        {**auth, "X-Docker-Checksum": tarsum, "X-Docker-Checksum-Payload": payload}).status == 200
    assert server.layer_file(image).read_bytes() == big_layer.body
    assert server.layer_file(image).name == hashlib.sha256(big_layer.body).hexdigest()
    assert server.unfinished_uploads() == []
