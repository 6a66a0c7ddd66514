"""Interoperability: the PyPI ``docker-registry-client`` (v1 API) reads what a docker-style push wrote.

The library is installed from requirements-dev.txt; it speaks Basic auth to the registry routes.
"""
from __future__ import annotations

import pytest
import requests
from docker_registry_client import DockerRegistryClient
from docker_registry_client._BaseClient import BaseClientV1

from tests.conftest import image_id

from .layers import chain

pytestmark = pytest.mark.live  # starts processes


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

    # Tag management through the library, with the owner's Basic credentials.
    base.set_tag("interop", "app", "stable", layers[0].image_id)
    assert base.get_repository_tags("interop", "app") == {"latest": layers[-1].image_id,
                                                           "stable": layers[0].image_id}
    repository.untag("stable")
    assert base.get_repository_tags("interop", "app") == {"latest": layers[-1].image_id}
