"""Layer upload/download throughput of the built-in registry, next to ``cat`` of the same file.

    .venv/bin/python bench/layer_throughput.py                 # 1 GiB layer (the issue's figure)
    .venv/bin/python bench/layer_throughput.py --size-mib 64   # a quick run
    .venv/bin/python bench/layer_throughput.py --content files # many small files

Starts the server as `make run` does (1 worker, 4 threads) on a free 127.0.0.1 port with a temporary data dir on the
same disk as the layer file, pushes one image the way docker does (json, chunked layer, checksum),
pulls the layer back, and prints MB/s for each next to ``cat layer > /dev/null``, plus the
worker's resident memory: idle, peak (sampled every 20 ms, and the kernel's VmHWM).

``--content random`` (default) makes a layer of random bytes, gzip'd at level 0 so that building a
1 GiB layer takes seconds (the server then inflates stored blocks: its cheapest case).
``--content text`` makes compressible text at gzip level 1, where inflating dominates.
``--content files`` makes many small files (about 6 KiB on average, text, gzip level 1): a tar
header every few blocks, so parsing headers weighs more.
``--send length`` sends the layer with a Content-Length instead of chunked (docker 1.x chunks).

Before timing, the layer file is flushed to disk (so the upload does not compete with writing it
back), and a "disk" line times writing the same bytes to a file next to the data dir with fsync,
which is what an upload must end with: the reference for "near disk speed".
"""
from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from procstat import status_kib  # noqa: E402
from server import running  # noqa: E402

from index.ops.v1client import Reply, V1Client, basic_header  # noqa: E402
from index.registry.tarsum import LayerDigester  # noqa: E402

MIB = 1 << 20
IMAGE_ID = "be" * 32


class _Content:
    """A file-like source of ``size`` bytes for tarfile.addfile, generated on the fly."""

    def __init__(self, size: int, kind: str) -> None:
        self.left = size
        self.rng = random.Random(42)
        words = [self.rng.randbytes(self.rng.randint(2, 8)).hex().encode() for _ in range(4000)]
        self.text_block = b" ".join(self.rng.choice(words) for _ in range(300_000))[:4 * MIB]
        self.kind = kind

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        if n <= 0:
            return b""
        self.left -= n
        if self.kind == "random":
            return self.rng.randbytes(n)
        offset = self.rng.randrange(0, len(self.text_block) - n) if n < len(self.text_block) else 0
        return (self.text_block * (n // len(self.text_block) + 1))[offset:offset + n]


def build_layer(path: Path, size: int, kind: str) -> int:
    """Write the layer; return how many files it holds."""
    level = 0 if kind == "random" else 1
    files = 0
    with gzip.GzipFile(path, "wb", compresslevel=level, mtime=0) as body:
        with tarfile.open(fileobj=body, mode="w|", format=tarfile.PAX_FORMAT, bufsize=MIB) as archive:
            directory = tarfile.TarInfo("data/")
            directory.type, directory.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(directory)
            if kind == "files":
                content, sizes = _Content(size, "text"), random.Random(7)
                while content.left:
                    # Exponential sizes, mean 6 KiB: mostly small files, a few larger ones.
                    info = tarfile.TarInfo(f"data/d{files // 100:05d}/f{files:07d}.txt")
                    info.size = min(content.left, int(sizes.expovariate(1 / 6144)))
                    info.mode, info.mtime = 0o644, 1_400_000_000
                    archive.addfile(info, content)
                    files += 1
                return files
            info = tarfile.TarInfo("data/blob")
            info.size, info.mode, info.mtime = size, 0o644, 1_400_000_000
            archive.addfile(info, _Content(size, kind))
            return 1


def timed_disk_write(path: Path, target: Path) -> float:
    """Seconds to copy ``path`` (cached) to ``target`` in 1 MiB writes, with fsync: the disk's part."""
    started = time.perf_counter()
    with open(path, "rb") as source, open(target, "wb") as sink:
        while chunk := source.read(MIB):
            sink.write(chunk)
        sink.flush()
        os.fsync(sink.fileno())
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def checksums(path: Path, image_json: bytes) -> tuple[str, str]:
    digester = LayerDigester(image_json)
    with open(path, "rb") as handle:
        while chunk := handle.read(MIB):
            digester.update(chunk)
    return digester.finish()


def timed_cat(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.running = pid, 0, True

    def run(self) -> None:
        deadline = time.monotonic() + 3600
        while self.running and time.monotonic() < deadline:
            self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmRSS"))
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="layer content size (default 1024)")
    parser.add_argument("--content", choices=("random", "text", "files"), default="random")
    parser.add_argument("--send", choices=("chunked", "length"), default="chunked",
                        help="chunked body (docker 1.x, default) or a Content-Length body")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the layer and the data dir go (default: a temp dir under ./bench)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="layer-bench-", dir=args.workdir or ROOT / "bench"))
    try:
        layer = workdir / "layer.tar.gz"
        started = time.perf_counter()
        files = build_layer(layer, args.size_mib * MIB, args.content)
        body_size = layer.stat().st_size
        image_json = json.dumps({"id": IMAGE_ID, "created": "2014-06-01T00:00:00Z"}).encode()
        tarsum, payload = checksums(layer, image_json)
        print(f"layer: {body_size / MIB:.0f} MiB body ({args.content} content, {args.size_mib} MiB in "
              f"{files} file(s) in the tar), built and checksummed in {time.perf_counter() - started:.1f} s")

        os.sync()  # the build's dirty pages go to disk now, not while the upload is timed
        cat_seconds = min(timed_cat(layer) for _ in range(2))
        disk_seconds = timed_disk_write(layer, workdir / "disk-reference")
        os.sync()
        with running(workdir / "data", workdir / "server.log", workers=1) as server:
            pid = server.worker_pids()[0]
            user = V1Client(server.host, ("benchuser", "secret1"))
            user.request("POST", "/v1/users/", json.dumps({"username": "benchuser", "password": "secret1",
                                                           "email": "b@example.com"}).encode(),
                         {"Content-Type": "application/json"})
            announced = user.announce("benchuser/big", [_Announce(IMAGE_ID)])
            auth = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
            reply = user.request("PUT", f"/v1/images/{IMAGE_ID}/json", image_json,
                                 {**auth, "Content-Type": "application/json"})
            assert reply.status == 200, reply.body
            idle_kib = status_kib(pid, "VmRSS")
            sampler = RssSampler(pid)
            sampler.start()

            upload_started = time.perf_counter()
            with open(layer, "rb") as handle:
                if args.send == "chunked":
                    reply = user.request("PUT", f"/v1/images/{IMAGE_ID}/layer",
                                         iter(lambda: handle.read(MIB), b""), auth, chunked=True)
                else:
                    reply = put_with_length(server.host, f"/v1/images/{IMAGE_ID}/layer", handle, body_size, auth)
            upload_seconds = time.perf_counter() - upload_started
            assert reply.status == 200, reply.body
            reply = user.request("PUT", f"/v1/images/{IMAGE_ID}/checksum", b"",
                                 {**auth, "X-Docker-Checksum": tarsum, "X-Docker-Checksum-Payload": payload})
            assert reply.status == 200, reply.body

            download_started = time.perf_counter()
            connection = http.client.HTTPConnection(server.host, timeout=600)
            connection.request("GET", f"/v1/images/{IMAGE_ID}/layer", headers=basic_header("benchuser", "secret1"))
            response = connection.getresponse()
            received = 0
            while chunk := response.read(MIB):
                received += len(chunk)
            connection.close()
            download_seconds = time.perf_counter() - download_started
            assert response.status == 200 and received == body_size, (response.status, received)
            sampler.running = False
            sampler.join()
            hwm_kib = status_kib(pid, "VmHWM")

        mb = body_size / 1e6
        print(f"cat layer > /dev/null : {mb / cat_seconds:8.1f} MB/s  ({cat_seconds:.2f} s, page cache warm)")
        print(f"disk write + fsync    : {mb / disk_seconds:8.1f} MB/s  ({disk_seconds:.2f} s, the same bytes, "
              f"1 MiB writes)")
        print(f"upload (PUT layer)    : {mb / upload_seconds:8.1f} MB/s  ({upload_seconds:.2f} s, {args.send}; "
              f"includes TarSum, sha256 payload, fsync)")
        print(f"download (GET layer)  : {mb / download_seconds:8.1f} MB/s  ({download_seconds:.2f} s)")
        print(f"worker RSS            : idle {idle_kib / 1024:.1f} MiB, peak sampled {sampler.peak_kib / 1024:.1f} MiB "
              f"(+{(sampler.peak_kib - idle_kib) / 1024:.1f} MiB), VmHWM {hwm_kib / 1024:.1f} MiB "
              f"(+{(hwm_kib - idle_kib) / 1024:.1f} MiB)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def put_with_length(host: str, path: str, handle, size: int, headers: dict[str, str]):
    """PUT the open file with a Content-Length header, 1 MiB per send."""
    connection = http.client.HTTPConnection(host, timeout=600, blocksize=MIB)
    try:
        connection.request("PUT", path, body=handle,
                           headers={**headers, "Content-Length": str(size),
                                    "Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


class _Announce:
    """The one field V1Client.announce reads from a layer."""

    def __init__(self, image_id: str) -> None:
        self.image_id = image_id


if __name__ == "__main__":
    main()
