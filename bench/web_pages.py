"""Server time of the web pages at scale (issue 13: home, search and a repository page < 50 ms).

Fills a fresh data dir with ``--repositories`` repositories (written in the store's own format,
as bench/storage_scale.py does: 1,000 namespaces), each pushed once and some pulled (the activity
file the home page and search ties read), gives one repository a tag with a three-layer history
in the built-in registry, then times each page in-process through Flask's test client
(``app.test_client()``: the app's own work, no network and no server) and prints p50/p95 in ms.

    .venv/bin/python bench/web_pages.py [--repositories 10000] [--samples 200]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import create_app  # noqa: E402
from index.store.files import STAMP_KEY  # noqa: E402

NAMESPACES = 1000


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({STAMP_KEY: secrets.token_hex(8), **data}, separators=(",", ":")))


def fill(data_dir: Path, repositories: int) -> None:
    per_namespace = max(1, repositories // NAMESPACES)
    activity = {}
    for n in range(NAMESPACES):
        namespace = f"team{n:04d}"
        repos = {}
        for k in range(per_namespace):
            name = f"service-{k}"
            repos[name] = {"namespace": namespace, "name": name, "owner": namespace, "state": "active",
                           "description": f"{name} of {namespace}: a web service built nightly",
                           "created": "2026-01-01T00:00:00+00:00", "updated": "2026-01-01T00:00:00+00:00",
                           "images": {f"{n:032x}{k:032x}": ""}}
            activity[f"{namespace}/{name}"] = {"pulls": (n * k) % 97, "pushes": 1,
                                               "last_push": f"2026-11-{1 + (n + k) % 28:02d}T10:00:00+00:00",
                                               "last_push_by": namespace}
        _write(data_dir / "db" / "namespaces" / f"{namespace}.json", {"repositories": repos})
    _write(data_dir / "db" / "activity.json", {"repositories": activity})


def add_history(app, client) -> str:
    """One repository with a pushed three-layer image, through the real API."""
    import base64
    import gzip
    import hashlib
    import io
    import tarfile
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:adminpass").decode()}
    ids = [f"{n:064x}" for n in (0xA1, 0xA2, 0xA3)]
    entries = [{"id": image_id} for image_id in ids]
    reply = client.put("/v1/repositories/showcase/", json=entries, headers={**auth, "X-Docker-Token": "true"})
    token = {"Authorization": "Token " + reply.headers["X-Docker-Token"]}
    parent = None
    for image_id in ids:
        image_json = json.dumps({"id": image_id, "parent": parent, "created": "2026-11-01T00:00:00Z",
                                 "container_config": {"Cmd": ["/bin/sh", "-c", f"make {image_id[-2:]}"]}}).encode()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(f"file-{image_id[-2:]}")
            payload = os.urandom(4096)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        body = gzip.compress(buffer.getvalue(), mtime=0)
        client.put(f"/v1/images/{image_id}/json", data=image_json, headers=token, content_type="application/json")
        client.put(f"/v1/images/{image_id}/layer", data=body, headers=token)
        checksum = "sha256:" + hashlib.sha256(image_json + b"\n" + body).hexdigest()
        answer = client.put(f"/v1/images/{image_id}/checksum", headers={**token, "X-Docker-Checksum-Payload": checksum})
        assert answer.status_code == 200
        parent = image_id
    client.put("/v1/repositories/showcase/tags/latest", json=ids[-1], headers=token)
    return "/repository/library/showcase"


def timed(client, path: str, samples: int) -> tuple[float, float]:
    durations = []
    for _ in range(samples):
        start = time.perf_counter()
        response = client.get(path)
        durations.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    durations.sort()
    return statistics.median(durations), durations[int(len(durations) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        fill(data_dir, args.repositories)
        app = create_app({"DATA_DIR": data_dir, "SECRET_KEY": "bench-secret-key-" + "x" * 32,
                          "BCRYPT_ROUNDS": 4, "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "adminpass",
                          "DEFAULT_VISIBILITY": "public"} if "DEFAULT_VISIBILITY" in _settings() else
                         {"DATA_DIR": data_dir, "SECRET_KEY": "bench-secret-key-" + "x" * 32,
                          "BCRYPT_ROUNDS": 4, "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "adminpass"})
        client = app.test_client()
        repository_page = add_history(app, client)
        print(f"web pages, {args.repositories:,} repositories, {args.samples} samples each, in-process "
              f"(load average {os.getloadavg()[0]:.2f}):")
        for label, path in (("home", "/"), ("search 'service'", "/search?q=service"),
                            ("search 'team0042/'", "/search?q=team0042/"), ("repository page", repository_page)):
            client.get(path)  # the first request builds per-worker caches (search index)
            p50, p95 = timed(client, path, args.samples)
            print(f"  {label:24} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms")


def _settings() -> dict:
    from index.config import SETTINGS
    return SETTINGS


if __name__ == "__main__":
    main()
