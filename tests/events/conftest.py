"""Fixtures of the events tests: an app that may reach loopback receivers, a real receiver, pushes."""
from __future__ import annotations

import io
import json

import pytest

from index.events import EXTENSION_KEY
from tests.conftest import basic, image_id
from tests.registry.layers import chain

from .receiver import Receiver


@pytest.fixture
def settings(settings):
    # Receivers listen on 127.0.0.1; retries come due after 1 s here, not 10 s.
    return {**settings, "WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_RETRY_SECONDS": 1,
            "WEBHOOK_RETRY_MAX_SECONDS": 4}


@pytest.fixture
def events(app):
    return app.extensions[EXTENSION_KEY]


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def push(client, remote: str, first: int, tag: str = "latest", auth=("alice", "secret1")) -> list[str]:
    """The requests of one ``docker push`` of two new images tagged ``tag``; returns their ids."""
    layers = chain([image_id(first), image_id(first + 1)])
    entries = [{"id": layer.image_id} for layer in layers]
    announced = client.put(f"/v1/repositories/{remote}/", data=json.dumps(entries),
                           headers={**basic(*auth), "X-Docker-Token": "true"}, content_type="application/json")
    assert announced.status_code == 200, announced.data
    token = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
    for layer in layers:
        sent = client.put(f"/v1/images/{layer.image_id}/json", data=layer.json_bytes, headers=token,
                          content_type="application/json")
        if sent.status_code == 409:
            continue  # pushed before: docker skips images the registry has
        assert sent.status_code == 200, sent.data
        assert client.put(f"/v1/images/{layer.image_id}/layer", input_stream=io.BytesIO(layer.body),
                          headers={**token, "Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True}).status_code == 200
        assert client.put(f"/v1/images/{layer.image_id}/checksum",
                          headers={**token, "X-Docker-Checksum": layer.tarsum,
                                   "X-Docker-Checksum-Payload": layer.payload_checksum}).status_code == 200
    assert client.put(f"/v1/repositories/{remote}/tags/{tag}", data=json.dumps(layers[-1].image_id),
                      headers=token, content_type="application/json").status_code == 200
    done = client.put(f"/v1/repositories/{remote}/images", data=json.dumps(entries),
                      headers={**basic(*auth), "X-Docker-Token": "true", "X-Docker-Endpoints": "localhost"},
                      content_type="application/json")
    assert done.status_code == 204, done.data
    return [layer.image_id for layer in layers]


def api(client, method: str, path: str, body=None, auth=("alice", "secret1")):
    headers = basic(*auth) if auth else {}
    if body is None:
        return client.open(path, method=method, headers=headers)
    return client.open(path, method=method, headers=headers, data=json.dumps(body), content_type="application/json")
