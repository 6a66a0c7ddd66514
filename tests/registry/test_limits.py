"""Issue 11 part 5: what one account can make the registry hold is bounded, and refused cleanly.

Each limit answers a JSON 4xx/507 and leaves nothing behind: no blob, no temp upload, no change
to the version being uploaded.
"""
from __future__ import annotations

import json
import time

import pytest

from index import create_app
from tests.conftest import image_id

from . import storage
from .bombs import gzip_bomb, many_entries
from .layers import Layer, chain
from .test_routes import Pusher


@pytest.fixture(scope="module")
def bomb() -> bytes:
    body = gzip_bomb(1200)
    assert len(body) < 1_300_000  # ~1.2 MB that inflates to 1.2 GiB
    return body


def nothing_stored(data_dir, image: str) -> None:
    assert storage.blob_files(data_dir) == []
    assert list((data_dir / "uploads").glob("*")) == []
    assert all(version["state"] == "json" and version["blob"] is None
               for version in storage.versions(data_dir, image).values())


def limited_client(settings, **limits):
    app = create_app({**settings, **limits})
    client = app.test_client()
    assert client.post("/v1/users/", data=json.dumps({"username": "alice", "password": "secret1",
                                                      "email": "alice@example.com"}),
                       content_type="application/json").status_code == 201
    return app, client


def with_json(pusher: Pusher) -> Layer:
    layer = pusher.layers[0]
    assert pusher.put_json(layer).status_code == 200
    return layer


@pytest.mark.slow
def test_a_gzip_bomb_is_refused_within_seconds_with_the_default_settings(client, alice, app, bomb):
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    layer = with_json(pusher)
    started = time.monotonic()
    reply = pusher.put_layer(layer, body=bomb)
    elapsed = time.monotonic() - started
    assert reply.status_code == 413 and "INDEX_LAYER_MAX_RATIO" in reply.get_json()["error"]
    assert elapsed < 5, elapsed
    nothing_stored(app.config["DATA_DIR"], image_id(1))


def test_the_inflated_size_limit_holds_without_a_ratio_limit(settings):
    app, client = limited_client(settings, LAYER_MAX_RATIO=0, LAYER_MAX_INFLATED_BYTES=32 << 20)
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    reply = pusher.put_layer(with_json(pusher), body=gzip_bomb(64))
    assert reply.status_code == 413 and "INDEX_LAYER_MAX_INFLATED_BYTES" in reply.get_json()["error"]
    nothing_stored(app.config["DATA_DIR"], image_id(1))


@pytest.mark.slow
def test_a_tar_of_300000_entries_is_refused_with_the_default_settings(client, alice, app):
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    reply = pusher.put_layer(with_json(pusher), body=many_entries(300_000))
    assert reply.status_code == 413 and "INDEX_LAYER_MAX_ENTRIES" in reply.get_json()["error"]
    nothing_stored(app.config["DATA_DIR"], image_id(1))


@pytest.mark.parametrize("entries, status", [(40, 200), (41, 413)])
def test_the_entry_limit_is_exact(settings, entries, status):
    _, client = limited_client(settings, LAYER_MAX_ENTRIES=40)
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    assert pusher.put_layer(with_json(pusher), body=many_entries(entries)).status_code == status


def test_the_layer_size_limit_is_checked_from_content_length_and_while_streaming(settings):
    app, client = limited_client(settings, LAYER_MAX_BYTES=300)
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    layer = with_json(pusher)
    body = layer.body
    assert len(body) > 300
    announced = client.put(f"/v1/images/{image_id(1)}/layer", data=body, headers=pusher.token)
    assert announced.status_code == 413 and "INDEX_LAYER_MAX_BYTES" in announced.get_json()["error"]
    chunked = pusher.put_layer(layer)
    assert chunked.status_code == 413 and "INDEX_LAYER_MAX_BYTES" in chunked.get_json()["error"]
    nothing_stored(app.config["DATA_DIR"], image_id(1))


def test_a_big_image_json_is_413_with_the_default_settings_and_stores_nothing(client, alice, app):
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    big = json.dumps({"id": image_id(1), "comment": "x" * (300 << 10)}).encode()
    reply = pusher.put_json(pusher.layers[0], data=big)
    assert reply.status_code == 413 and "INDEX_IMAGE_JSON_MAX_BYTES" in reply.get_json()["error"]
    assert storage.versions(app.config["DATA_DIR"], image_id(1)) == {}


def test_uploads_that_never_complete_expire(settings):
    app, client = limited_client(settings, IMAGE_PENDING_SECONDS=1)
    data_dir = app.config["DATA_DIR"]
    layers = [chain([image_id(n)], salt=str(n))[0] for n in (1, 2, 3)]  # three base images
    pusher = Pusher(client, "alice/app", layers)
    assert pusher.put_json(layers[0]).status_code == 200            # json only
    assert pusher.put_json(layers[1]).status_code == 200
    assert pusher.put_layer(layers[1]).status_code == 200           # json and layer, no checksum
    assert len(storage.blob_files(data_dir)) == 1
    time.sleep(1.5)
    # The next write of that shard drops them, with the blob of the one that had a layer.
    assert pusher.put_json(layers[2]).status_code == 200
    assert storage.versions(data_dir, image_id(1)) == {} and storage.versions(data_dir, image_id(2)) == {}
    assert storage.blob_files(data_dir) == []
    assert pusher.put_checksum(layers[1]).status_code == 404
    # ... and a start drops what no write came near.
    time.sleep(1.5)
    create_app({**settings, "IMAGE_PENDING_SECONDS": 1})
    assert storage.versions(data_dir, image_id(3)) == {}


def test_a_namespace_quota_is_507_for_its_pushes_only_and_the_cli_shows_usage(settings):
    layers = chain([image_id(1), image_id(2)])
    first = len(layers[0].body) + len(layers[0].json_bytes)
    app, client = limited_client(settings, NAMESPACE_QUOTA_BYTES=first + len(layers[1].json_bytes) + 10)
    data_dir = app.config["DATA_DIR"]
    assert client.post("/v1/users/", data=json.dumps({"username": "bobby", "password": "secret2",
                                                      "email": "bobby@example.com"}),
                       content_type="application/json").status_code == 201
    pusher = Pusher(client, "alice/app", layers)
    for reply in (pusher.put_json(layers[0]), pusher.put_layer(layers[0]), pusher.put_checksum(layers[0]),
                  pusher.put_json(layers[1])):
        assert reply.status_code == 200
    refused = pusher.put_layer(layers[1])
    assert refused.status_code == 507 and "INDEX_NAMESPACE_QUOTA_BYTES" in refused.get_json()["error"]
    assert len(storage.blob_files(data_dir)) == 1 and list((data_dir / "uploads").glob("*")) == []
    assert storage.versions(data_dir, image_id(2))["alice"]["state"] == "json"
    # Another namespace is not held back by alice's quota.
    other = Pusher(client, "bobby/app", chain([image_id(9)]), auth=("bobby", "secret2"))
    other.upload_all()

    result = app.test_cli_runner().invoke(args=["usage", "alice"])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[1].split()
    assert row[0] == "alice" and int(row[1]) == first + len(layers[1].json_bytes)
    assert int(row[2]) == first + len(layers[1].json_bytes) + 10
