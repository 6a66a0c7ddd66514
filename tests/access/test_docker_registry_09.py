"""The real docker-registry 0.9.1 (Python 2) in front of this index, for a private repository.

docker-registry 0.9.1 runs on Python 2.7 only and pins M2Crypto 0.22.3, which no longer builds
against OpenSSL 3; it imports M2Crypto only for ``privileged_key`` signatures, which this test does
not configure. ``tests/access/docker_registry_09.sh`` installs it (with an import-only M2Crypto
stand-in that raises when used) into a folder; point ``DOCKER_REGISTRY_09`` at that folder to run
this test. Without it the test is skipped, and ``test_external_registry.py`` replays the same
calls request by request.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from index.ops.v1client import V1Client, basic_header, chunks
from tests.conftest import image_id
from tests.processes import free_port, stop
from tests.registry.conftest import running_server
from tests.registry.layers import chain

INSTALLED = os.environ.get("DOCKER_REGISTRY_09", "")
PYTHON2 = os.environ.get("DOCKER_REGISTRY_09_PYTHON", "python2.7")
CONFIG = """
dev:
    loglevel: debug
    standalone: false
    disable_token_auth: false
    index_endpoint: http://{index}
    storage: local
    storage_path: {storage}
    search_backend:
    privileged_key:
"""
# A site dir (not PYTHONPATH): docker_registry is a namespace package declared in .pth files.
LAUNCH = ("import site, sys; site.addsitedir(sys.argv[2]); from werkzeug.serving import run_simple; "
          "from docker_registry.wsgi import application; "
          "run_simple('127.0.0.1', int(sys.argv[1]), application, threaded=True)")

pytestmark = pytest.mark.skipif(not INSTALLED or not Path(INSTALLED, "docker_registry").is_dir(),
                                reason="docker-registry 0.9.1 not installed: set DOCKER_REGISTRY_09 "
                                       "(see tests/access/docker_registry_09.sh)")


def _wait(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"docker-registry exited: {log.read_text()[-3000:]}")
        try:
            reply = V1Client(f"127.0.0.1:{port}").request("GET", "/_ping")
            if reply.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"docker-registry did not start: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docker-registry-09")
    registry_port = free_port()
    with running_server(folder / "data", folder / "index.log",
                        extra_env={"INDEX_DEFAULT_VISIBILITY": "private",
                                   "INDEX_REGISTRY_ENDPOINTS": f"127.0.0.1:{registry_port}"}) as index:
        config = folder / "registry.yml"
        config.write_text(CONFIG.format(index=index.host, storage=folder / "registry-storage"))
        log = folder / "registry.log"
        env = {"PATH": os.environ.get("PATH", ""), "SETTINGS_FLAVOR": "dev",
               "DOCKER_REGISTRY_CONFIG": str(config)}
        with open(log, "wb") as output:
            process = subprocess.Popen([PYTHON2, "-c", LAUNCH, str(registry_port), INSTALLED], env=env,
                                       stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait(registry_port, process, log)
            yield index, f"127.0.0.1:{registry_port}", log
        finally:
            stop(process)


def _push(client: V1Client, registry: str, remote: str, layers, tag: str = "latest") -> None:
    entries = [{"id": layer.image_id} for layer in layers]
    announced = client.request("PUT", f"/v1/repositories/{remote}/", json.dumps(entries).encode(),
                               {**basic_header(*client.credentials), "X-Docker-Token": "true",
                                "Content-Type": "application/json"})
    assert announced.status == 200, announced.body
    assert announced.headers.get_all("X-Docker-Endpoints") == [registry]
    token = {"Authorization": f"Token {announced.headers['X-Docker-Token']}"}
    for layer in layers:
        put = client.request("PUT", f"/v1/images/{layer.image_id}/json", layer.json_bytes,
                             {**token, "Content-Type": "application/json"}, host=registry)
        assert put.status == 200, put.body
        put = client.request("PUT", f"/v1/images/{layer.image_id}/layer", chunks(layer.body),
                             {**token, "Content-Type": "application/octet-stream"}, chunked=True, host=registry)
        assert put.status == 200, put.body
        put = client.request("PUT", f"/v1/images/{layer.image_id}/checksum", b"",
                             {**token, "X-Docker-Checksum": layer.tarsum,
                              "X-Docker-Checksum-Payload": layer.payload_checksum}, host=registry)
        assert put.status == 200, put.body
    tagged = client.request("PUT", f"/v1/repositories/{remote}/tags/{tag}", json.dumps(layers[-1].image_id).encode(),
                            {**token, "Content-Type": "application/json"}, host=registry)
    assert tagged.status == 200, tagged.body
    final = client.request("PUT", f"/v1/repositories/{remote}/images", b"[]",
                           {**basic_header(*client.credentials), "Content-Type": "application/json",
                            "X-Docker-Endpoints": f"http://{registry}/v1/"})
    assert final.status == 204


def _read_token(client: V1Client, remote: str) -> tuple[int, dict[str, str]]:
    headers = {"X-Docker-Token": "true", **(basic_header(*client.credentials) if client.credentials else {})}
    listed = client.request("GET", f"/v1/repositories/{remote}/images", headers=headers)
    if listed.status != 200:
        return listed.status, {}
    return 200, {"Authorization": f"Token {listed.headers['X-Docker-Token']}"}


@pytest.mark.live
def test_private_repository_through_docker_registry_09(stack):
    index, registry, log = stack
    owner, reader, stranger = (index.register(name) for name in ("regowner", "regreader", "regstranger"))
    layers = chain([image_id(0x1200 + n) for n in range(2)], salt="dr09")
    _push(owner, registry, "regowner/secret", layers)
    grant = owner.request("PUT", "/api/v1/repository/regowner/secret/permissions/user/regreader",
                          json.dumps({"role": "read"}).encode(),
                          {**basic_header(*owner.credentials), "Content-Type": "application/json"})
    assert grant.status == 200

    # The reader pulls through the registry, which checks the reader's token with the index.
    status, token = _read_token(reader, "regowner/secret")
    assert status == 200
    tags = reader.request("GET", "/v1/repositories/regowner/secret/tags", headers=token, host=registry)
    assert tags.status == 200, (tags.status, tags.body)
    assert json.loads(tags.body) == {"latest": layers[-1].image_id}
    for layer in layers:
        got = reader.request("GET", f"/v1/images/{layer.image_id}/layer", headers=token, host=registry)
        assert got.status == 200 and got.body == layer.body

    # The stranger gets no token; a token of another repository opens nothing here.
    assert _read_token(stranger, "regowner/secret")[0] == 404
    assert _read_token(index.client(), "regowner/secret")[0] == 404
    own = chain([image_id(0x1300)], salt="own")
    _push(stranger, registry, "regstranger/own", own)
    _, own_token = _read_token(stranger, "regstranger/own")
    # docker-registry 0.9.1 asks the index about an image id (GET .../layer/<id>/access) only when
    # the token's repository is flagged private on the registry; unflagged, any valid token reads
    # any image id there (a limitation of that registry: README, "Who may do what").
    assert stranger.request("GET", f"/v1/images/{layers[0].image_id}/json", headers=own_token,
                            host=registry).status == 200
    announced = stranger.request("PUT", "/v1/repositories/regstranger/own/", b"[]",
                                 {**basic_header(*stranger.credentials), "X-Docker-Token": "true",
                                  "Content-Type": "application/json"})
    write = {"Authorization": f"Token {announced.headers['X-Docker-Token']}"}
    flagged = stranger.request("PUT", "/v1/repositories/regstranger/own/properties",
                               json.dumps({"access": "private"}).encode(),
                               {**write, "Content-Type": "application/json"}, host=registry)
    assert flagged.status == 200, flagged.body
    # Flagged: the registry asks the index, which says no for an image only a hidden repository holds.
    foreign = stranger.request("GET", f"/v1/images/{layers[0].image_id}/json", headers=own_token, host=registry)
    assert foreign.status == 404, (foreign.status, foreign.body)
    mine = stranger.request("GET", f"/v1/images/{own[0].image_id}/json", headers=own_token, host=registry)
    assert mine.status == 200, (mine.status, mine.body)

    # The grant is taken away: the reader's token, already handed out, stops at its next use.
    revoked = owner.request("DELETE", "/api/v1/repository/regowner/secret/permissions/user/regreader",
                            None, basic_header(*owner.credentials))
    assert revoked.status == 204
    again = reader.request("GET", "/v1/repositories/regowner/secret/tags", headers=token, host=registry)
    assert again.status == 401, (again.status, again.body)
