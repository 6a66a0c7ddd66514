"""gunicorn with 2 workers on a loopback port, concurrent pushes: every acknowledged image stays."""
import base64
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from index.passwords import hash_password
from index.store import Store
from tests.processes import ROOT, clean_env, free_port, http_call, stop, wait_for_http
from tests.store.crashes import image_id

pytestmark = pytest.mark.live  # starts processes

GUNICORN = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
AUTH = "Basic " + base64.b64encode(b"alice:secret1").decode()
PUSHERS = 8
PUSHES = 6  # per pusher


def _request(base, method, path, body=None, headers=None):
    status, _, answer = http_call(base, method, path, body, headers, timeout=30)
    return status, answer


@pytest.fixture(params=[[], ["--preload"]], ids=["workers-load-app", "preload"])
def server(tmp_path, request):
    # Files that exist at start are opened by the app before gunicorn forks when it preloads: the
    # workers then write through objects made in the master process.
    seeded = Store(tmp_path / "data")
    seeded.open()
    seeded.create_user("alice", hash_password("secret1", 4), "alice@example.com")
    seeded.announce_repository("alice", "shared", [], owner="alice")
    seeded.close()
    port = free_port()
    env = clean_env({"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_BCRYPT_ROUNDS": "4",
                     "INDEX_SECRET_KEY": "gunicorn-test-secret-0123456789abcdef",
                     "INDEX_DEFAULT_VISIBILITY": "public"})
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([GUNICORN, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                                    "--graceful-timeout", "5", *request.param, "wsgi:app"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/v1/_ping", process, log_path, timeout=30)
        yield base, tmp_path / "data"
    finally:
        stop(process)


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed in this environment")
def test_concurrent_pushes_through_two_workers_lose_no_image(server):
    base, _ = server
    registered = _request(base, "POST", "/v1/users/", {"username": "bobby", "password": "secret1",
                                                       "email": "bobby@example.com"})
    assert registered[0] == 201
    headers = {"Authorization": AUTH, "X-Docker-Token": "true"}

    def push(pusher: int) -> list[tuple[str, str]]:
        acknowledged = []
        for n in range(PUSHES):
            repo = "alice/shared" if n % 2 else f"alice/own{pusher}"
            first, second = image_id(pusher, n, 1), image_id(pusher, n, 2)
            status, _ = _request(base, "PUT", f"/v1/repositories/{repo}/", [{"id": first}], headers)
            if status == 200:
                acknowledged.append((repo, first))
            status, _ = _request(base, "PUT", f"/v1/repositories/{repo}/images", [{"id": second}], headers)
            if status == 204:
                acknowledged.append((repo, second))
        return acknowledged

    with ThreadPoolExecutor(PUSHERS) as pool:
        acknowledged = [ack for result in pool.map(push, range(PUSHERS)) for ack in result]
    assert len(acknowledged) == PUSHERS * PUSHES * 2  # nothing was refused either

    for repo in {repo for repo, _ in acknowledged}:
        for _ in range(4):  # several requests, so both workers' read caches answer
            status, body = _request(base, "GET", f"/v1/repositories/{repo}/images", headers={"Authorization": AUTH})
            assert status == 200
            seen = {image["id"] for image in json.loads(body)}
            assert seen >= {image for name, image in acknowledged if name == repo}


@pytest.mark.skipif(GUNICORN is None, reason="gunicorn is not installed in this environment")
def test_search_in_either_worker_finds_a_repository_once_its_push_was_answered(server):
    """Each worker's search index follows the change log: read-your-writes across workers."""
    base, _ = server
    headers = {"Authorization": AUTH, "X-Docker-Token": "true"}
    for _ in range(6):  # fresh connections: both workers build their index now, before the pushes
        assert json.loads(_request(base, "GET", "/v1/search?q=alice")[1])["num_results"] == 1

    def push_then_search(pusher: int) -> list[str]:
        missed = []
        for n in range(5):
            name = f"fresh{pusher}x{n}"
            status, _ = _request(base, "PUT", f"/v1/repositories/alice/{name}/", [{"id": image_id(pusher, n, 1)}],
                                 headers)
            assert status == 200
            found = json.loads(_request(base, "GET", f"/v1/search?q={name}")[1])
            if [result["name"] for result in found["results"]] != [f"alice/{name}"]:
                missed.append(name)
        return missed

    with ThreadPoolExecutor(4) as pool:
        missed = [name for result in pool.map(push_then_search, range(4)) for name in result]
    assert missed == []
