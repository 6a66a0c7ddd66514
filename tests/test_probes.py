"""How clients recognise a v1 index (docs/protocol.md 2.2, checklist 11)."""
from __future__ import annotations

import pytest

from tests.conftest import basic


@pytest.mark.parametrize("url", ["/v1/_ping", "/_ping"])
def test_ping(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["X-Docker-Registry-Version"] == "0.9.1"     # docker <= 0.10 require it
    assert response.headers["X-Docker-Registry-Standalone"] == "false"  # else https clients send Basic to the registry
    assert response.data == b"true"
    assert "Docker-Distribution-API-Version" not in response.headers


@pytest.mark.parametrize("headers", [{}, basic("", ""), basic("nobody", "wrong1"), {"Authorization": "Token x"}])
def test_ping_needs_no_auth(client, headers):
    assert client.get("/v1/_ping", headers=headers).status_code == 200


def test_ping_head(client):
    response = client.head("/v1/_ping")
    assert response.status_code == 200
    assert response.headers["X-Docker-Registry-Standalone"] == "false"


@pytest.mark.parametrize("method", ["get", "head"])
def test_v2_is_not_a_v2_registry(client, method):
    response = getattr(client, method)("/v2/")
    assert response.status_code == 404
    assert "Docker-Distribution-API-Version" not in response.headers   # docker 1.5 then falls back to v1
    if method == "get":
        assert "v1" in response.get_json()["error"]


@pytest.mark.parametrize("url", ["/v1/_ping", "/v2/", "/nope", "/v1/users/"])
def test_every_response_carries_the_registry_version(client, url):
    assert client.get(url).headers["X-Docker-Registry-Version"] == "0.9.1"
