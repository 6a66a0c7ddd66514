"""Embedding a real index in another project's tests, written as that project would write them:
only the public ``index.testing`` API and plain HTTP, nothing from the index's own tests.

The ``index_server`` fixture comes from ``pytest_plugins = ["index.testing"]`` in the root
conftest.py, where pytest wants plugin declarations.
"""
from __future__ import annotations

import json
import socket

import pytest

from index.testing import IndexServer, running_index
from tests.conftest import basic
from tests.processes import http_call


def call(server: IndexServer, method: str, path: str, body=None, auth=None, headers=None):
    return http_call(server.url, method, path, body, {**(headers or {}), **(basic(*auth) if auth else {})})


def test_context_manager_serves_a_fresh_index_and_cleans_up():
    with running_index() as server:
        assert server.url == f"http://{server.host}"
        assert server.host.startswith("127.0.0.1:")
        assert call(server, "GET", "/v1/_ping")[0] == 200
        assert call(server, "GET", "/v1/users/", auth=(server.admin_username, server.admin_password))[0] == 200
        assert server.data_dir.is_dir()
        port = int(server.host.split(":")[1])
    assert not server.data_dir.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_fixture_push_and_pull_like_docker(index_server: IndexServer):
    admin = (index_server.admin_username, index_server.admin_password)
    image = {"id": "9" * 64, "Tag": "latest"}
    status, headers, _ = call(index_server, "PUT", "/v1/repositories/busybox/", [image], admin,
                              {"X-Docker-Token": "true"})
    assert status == 200
    assert headers["X-Docker-Endpoints"] == index_server.host
    token = headers["X-Docker-Token"]
    status, _, body = call(index_server, "GET", "/v1/repositories/library/busybox/images",
                           headers={"Authorization": f"Token {token}"})
    assert status == 200 and json.loads(body)[0]["id"] == image["id"]
    assert call(index_server, "PUT", "/v1/repositories/busybox/images", [], admin,
                {"X-Docker-Token": "true", "X-Docker-Endpoints": index_server.url + "/v1/"})[0] == 204
    # New repositories are private (INDEX_DEFAULT_VISIBILITY): publish it for anonymous pulls.
    assert call(index_server, "POST", "/api/v1/repository/library/busybox/changevisibility",
                {"visibility": "public"}, admin)[0] == 200
    status, headers, _ = call(index_server, "GET", "/v1/repositories/busybox/images", headers={"X-Docker-Token": "true"})
    assert status == 200 and headers["X-Docker-Token"].endswith('repository="library/busybox",access=read')


def test_each_test_gets_its_own_index(index_server: IndexServer):
    # The push of the previous test is not here.
    assert call(index_server, "GET", "/v1/repositories/busybox/images")[0] == 404


def test_settings_can_be_changed():
    with running_index({"REGISTRATION": "closed"}, admin_username="root") as server:
        assert server.admin_username == "root"
        status, _, _ = call(server, "POST", "/v1/users/", {"username": "alice", "password": "secret1",
                                                           "email": "a@example.com"})
        assert status == 401
