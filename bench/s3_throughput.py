"""A layer pushed and pulled through the index with its layers in S3, beside boto3 on its own.

    .venv/bin/python bench/s3_throughput.py                 # 1 GiB layer (the issue's figure)
    .venv/bin/python bench/s3_throughput.py --size-mib 64   # a quick run

Starts a real S3 server (OpenStack Swift with s3api, tests/s3/swift.py: needs the Debian packages
of .ci/run) and then the index as ``make run`` serves it (granian, 1 worker, 4 threads) with
``INDEX_LAYER_STORAGE=s3://bench``, all on 127.0.0.1. Figures, in MB/s of the layer body (10^6 bytes/s):

- boto3 upload_file / get_object: the same bytes straight to and from the same server (boto3's
  managed upload: 8 MiB parts, 10 threads; the download is one streamed GET, like a pull);
- push: ``PUT layer`` (chunked, 1 MiB pieces) until its 200: streaming into a multipart upload
  while TarSum and sha256 are computed, then the server-side copy to the content key;
- pull: ``GET layer`` streamed from S3 through the index;
- redirected pull: ``GET layer`` with ``INDEX_S3_REDIRECT=true``: the 302, then the bytes
  straight from S3 at the presigned URL.

The worker's resident memory is sampled every 20 ms during push and pull (and VmHWM read), the
"extra" being over its idle size after start. The machine's load average is printed with the
figures: on a shared machine they move with it.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from layer_throughput import MIB, RssSampler, _Announce, build_layer, checksums, status_kib  # noqa: E402

from tests.registry.conftest import running_server  # noqa: E402
from tests.registry.v1client import V1Client, basic_header  # noqa: E402
from tests.s3.swift import running_swift  # noqa: E402

IMAGE_ID = "5e" * 32
WARM_UP_ID = "5f" * 32
BUCKET = "bench"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def worker_pid(master: int) -> int:
    """The one granian worker (``INDEX_WORKERS=1``): the child process of ``python -m index serve``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [int(child) for task in Path(f"/proc/{master}/task").glob("*/children")
                 for child in task.read_text().split()]
        if found:
            return found[0]
        time.sleep(0.1)
    raise RuntimeError(f"no worker process under {master}")


def s3_client(environment: dict[str, str]):
    for name, value in environment.items():
        os.environ[name] = value
    from index.registry.s3blobs import make_client
    return make_client(path_style=True)


def timed_boto3(client, layer: Path) -> tuple[float, float, float]:
    started = time.perf_counter()
    client.upload_file(str(layer), BUCKET, "direct/layer")
    upload = time.perf_counter() - started
    # What a commit costs on top of the upload: the server-side copy to the content key.
    started = time.perf_counter()
    client.copy_object(Bucket=BUCKET, Key="direct/copy", CopySource={"Bucket": BUCKET, "Key": "direct/layer"})
    copy = time.perf_counter() - started
    client.delete_object(Bucket=BUCKET, Key="direct/copy")
    started = time.perf_counter()
    body = client.get_object(Bucket=BUCKET, Key="direct/layer")["Body"]
    received = 0
    while chunk := body.read(MIB):
        received += len(chunk)
    download = time.perf_counter() - started
    assert received == layer.stat().st_size
    client.delete_object(Bucket=BUCKET, Key="direct/layer")
    return upload, copy, download


def push(server, layer: Path, image_id: str, repository: str) -> float:
    """Push one image the way docker does; seconds of its ``PUT layer``."""
    image_json = json.dumps({"id": image_id, "created": "2014-06-01T00:00:00Z"}).encode()
    tarsum, payload = checksums(layer, image_json)
    user = V1Client(server.host, ("benchuser", "secret1"))
    user.request("POST", "/v1/users/", json.dumps({"username": "benchuser", "password": "secret1",
                                                   "email": "b@example.com"}).encode(),
                 {"Content-Type": "application/json"})  # 201 the first time, then 401/400: fine
    announced = user.announce(f"benchuser/{repository}", [_Announce(image_id)])
    auth = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
    reply = user.request("PUT", f"/v1/images/{image_id}/json", image_json, {**auth, "Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    started = time.perf_counter()
    # Not V1Client.request: its 30 s timeout is shorter than a 1 GiB push on a slow machine.
    connection = http.client.HTTPConnection(server.host, timeout=1800)
    with open(layer, "rb") as handle:
        connection.request("PUT", f"/v1/images/{image_id}/layer", body=iter(lambda: handle.read(MIB), b""),
                           headers={**auth, "Content-Type": "application/octet-stream"}, encode_chunked=True)
        response = connection.getresponse()
        answer = response.read()
    connection.close()
    seconds = time.perf_counter() - started
    assert response.status == 200, answer
    reply = user.request("PUT", f"/v1/images/{image_id}/checksum", b"",
                         {**auth, "X-Docker-Checksum": tarsum, "X-Docker-Checksum-Payload": payload})
    assert reply.status == 200, reply.body
    return seconds


def pull(host: str, size: int, follow_redirect: bool) -> tuple[float, int]:
    """Seconds to read the whole layer, and the status of the index's own answer."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, timeout=600)
    connection.request("GET", f"/v1/images/{IMAGE_ID}/layer", headers=basic_header("benchuser", "secret1"))
    response = connection.getresponse()
    status = response.status
    if status == 302 and follow_redirect:
        location = urlsplit(response.headers["Location"])
        response.read()
        connection.close()
        connection = http.client.HTTPConnection(location.netloc, timeout=600)
        connection.request("GET", f"{location.path}?{location.query}")
        response = connection.getresponse()
    received = 0
    while chunk := response.read(MIB):
        received += len(chunk)
    connection.close()
    seconds = time.perf_counter() - started
    assert response.status == 200 and received == size, (response.status, received, size)
    return seconds, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="layer content size (default 1024)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the layer, Swift's disk and the data dir go (default: a temp dir under ./bench)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) afterwards")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="s3-bench-", dir=args.workdir or ROOT / "bench"))
    try:
        layer, small = workdir / "layer.tar.gz", workdir / "small.tar.gz"
        build_layer(layer, args.size_mib * MIB, "random")
        build_layer(small, 64 * 1024, "random")
        size = layer.stat().st_size
        os.sync()
        print(f"layer: {size / MIB:.0f} MiB body (random content, gzip level 0); {load()}")
        with running_swift(workdir / "swift") as swift:
            environment = swift.environment()
            client = s3_client(environment)
            client.create_bucket(Bucket=BUCKET)
            boto3_up, boto3_copy, boto3_down = timed_boto3(client, layer)
            os.sync()
            settings = {**environment, "INDEX_LAYER_STORAGE": f"s3://{BUCKET}", "INDEX_S3_PATH_STYLE": "true"}
            with running_server(workdir / "data", workdir / "server.log", workers=1, extra_env=settings) as server:
                pid = worker_pid(server.process.pid)
                # A small push first: the worker's S3 client (built on first use) is not "extra".
                push(server, small, WARM_UP_ID, "warm-up")
                idle_kib = status_kib(pid, "VmRSS")
                sampler = RssSampler(pid)
                sampler.start()
                push_seconds = push(server, layer, IMAGE_ID, "big")
                pull_seconds, pull_status = pull(server.host, size, follow_redirect=False)
                sampler.running = False
                sampler.join()
                hwm_kib = status_kib(pid, "VmHWM")
            settings["INDEX_S3_REDIRECT"] = "true"
            with running_server(workdir / "data", workdir / "server2.log", workers=1, extra_env=settings) as server:
                redirect_seconds, redirect_status = pull(server.host, size, follow_redirect=True)
        mb = size / 1e6
        print(f"boto3 upload_file         : {mb / boto3_up:8.1f} MB/s  ({boto3_up:.2f} s, 8 MiB parts, 10 threads)")
        print(f"boto3 copy_object         : {mb / boto3_copy:8.1f} MB/s  ({boto3_copy:.2f} s, server-side copy of "
              f"that multipart object: what a commit adds)")
        print(f"boto3 get_object (stream) : {mb / boto3_down:8.1f} MB/s  ({boto3_down:.2f} s)")
        print(f"push (PUT layer -> S3)    : {mb / push_seconds:8.1f} MB/s  ({push_seconds:.2f} s, chunked; "
              f"includes TarSum, sha256, multipart upload and the copy to the final key)")
        print(f"pull (GET layer, {pull_status})    : {mb / pull_seconds:8.1f} MB/s  ({pull_seconds:.2f} s, streamed "
              f"from S3 through the index)")
        print(f"pull redirected ({redirect_status})    : {mb / redirect_seconds:8.1f} MB/s  ({redirect_seconds:.2f} s, "
              f"302 then straight from S3)")
        print(f"worker RSS                : idle {idle_kib / 1024:.1f} MiB, peak sampled {sampler.peak_kib / 1024:.1f} "
              f"MiB (+{(sampler.peak_kib - idle_kib) / 1024:.1f} MiB), VmHWM {hwm_kib / 1024:.1f} MiB "
              f"(+{(hwm_kib - idle_kib) / 1024:.1f} MiB)")
        print(f"after: {load()}")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
