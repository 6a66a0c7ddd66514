"""Interoperability: the PyPI ``docker-registry-client`` (v1 API) reads what a docker-style push wrote.

The library is installed from requirements-dev.txt; it speaks Basic auth to the registry routes.
"""
from __future__ import annotations

import pytest
import requests
from docker_registry_client import DockerRegistryClient
from docker_registry_client._BaseClient import BaseClientV1

from tests.conftest import image_id

from .conftest import LAYER_STORES, layer_storage_env, running_server
from .layers import chain

pytestmark = pytest.mark.live  # starts processes


@pytest.fixture(scope="module", params=[*LAYER_STORES, "s3-redirect"])
def server(request, tmp_path_factory):
    """Both layer stores, and S3 with redirected layer GETs (the library's requests follows the 302)."""
    folder = tmp_path_factory.mktemp(f"third-party-{request.param}")
    env = layer_storage_env(request, request.param)
    with running_server(folder / "data", folder / "server.log", extra_env=env) as started:
        yield started


def test_docker_registry_client_pulls_what_was_pushed(server):
    pusher = server.register("interop")
    layers = chain([image_id(0x900 + n) for n in range(3)])
    pusher.push("interop/app", layers)

    client = DockerRegistryClient(f"http://{server.host}", api_version=1,
                                  username="interop", password="secret1", api_timeout=30)
    assert client.api_version == 1
    base = client._base_client
    assert base.check_status() is True

    repository = client.repository("interop/app")
    assert repository.tags() == ["latest"]
    top = repository.image("latest")
    assert top.image_id == layers[-1].image_id
    assert base.get_image_id("interop", "app", "latest") == layers[-1].image_id
    assert base.get_image_ancestry(top.image_id) == [layer.image_id for layer in reversed(layers)]
    for layer in layers:
        assert base.get_image_layer(layer.image_id)["id"] == layer.image_id   # the image json
        # The library's own request path, for the bytes (its get_images_layer decodes JSON).
        response = base._http_response(BaseClientV1.IMAGE_LAYER, requests.get, image_id=layer.image_id)
        assert response.content == layer.body
        redirected = [answer.status_code for answer in response.history] == [302]
        assert redirected == (server.env.get("INDEX_S3_REDIRECT") == "true")

    # Tag management through the library, with the owner's Basic credentials.
    base.set_tag("interop", "app", "stable", layers[0].image_id)
    assert base.get_repository_tags("interop", "app") == {"latest": layers[-1].image_id,
                                                           "stable": layers[0].image_id}
    repository.untag("stable")
    assert base.get_repository_tags("interop", "app") == {"latest": layers[-1].image_id}


def test_tag_metadata_and_repository_listing_of_docker_registry_tools(server):
    """docker-registry 0.9's tag json route, and search names a tool can split on "/"."""
    pusher = server.register("tagmeta")
    layers = chain([image_id(0x950 + n) for n in range(2)], salt="tagmeta")
    pusher.push("tagmeta/app", layers)
    admin = server.client(("admin", "adminpass"))
    admin.push("busybox", chain([image_id(0x960)], salt="library"))

    client = DockerRegistryClient(f"http://{server.host}", api_version=1,
                                  username="tagmeta", password="secret1", api_timeout=30)
    data = client.repository("tagmeta/app").data("latest")
    assert set(data) == {"last_update", "docker_version", "docker_go_version", "arch", "os", "kernel"}
    assert isinstance(data["last_update"], int) and data["last_update"] > 1_600_000_000
    assert data["arch"] == "amd64" and data["os"] == "linux"
    # The library form of the route, and a missing tag: 404 with a JSON error.
    library = requests.get(f"http://{server.host}/v1/repositories/busybox/tags/latest/json",
                           auth=("tagmeta", "secret1"), timeout=30)
    assert library.status_code == 200 and set(library.json()) == set(data)
    missing = requests.get(f"http://{server.host}/v1/repositories/tagmeta/app/tags/nope/json",
                           auth=("tagmeta", "secret1"), timeout=30)
    assert missing.status_code == 404 and "error" in missing.json()

    # The library's repository listing splits every search result on "/": bare names broke it.
    listed = client.repositories()
    assert "library/busybox" in listed and "tagmeta/app" in listed
    assert client.repositories("library")["library/busybox"].repository == "busybox"
