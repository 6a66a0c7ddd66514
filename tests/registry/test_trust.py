"""Issue 11 part 1: a known image id cannot poison another account's repository.

bobby uploads his own bytes under an id W before alice (or an admin, for library/...) pushes an
image whose ancestry holds W. Each repository must keep serving what its own writers uploaded.
"""
from __future__ import annotations

import json

import pytest

from index import permissions
from tests.conftest import ADMIN, basic, image_id

from . import storage
from .layers import chain
from .test_routes import Pusher, read_token

W = image_id(0x77)
BOBBY = ("bobby", "secret2")
CAROL = ("carol", "secret3")


class Push(Pusher):
    """What docker does: announce, then for each image ask GET json and upload only on 404."""

    def __init__(self, client, remote, layers, auth=("alice", "secret1"), tag="latest") -> None:
        super().__init__(client, remote, layers, auth)
        self.uploaded, self.skipped = [], []
        for layer in layers:
            looked = client.get(f"/v1/images/{layer.image_id}/json", headers=self.token)
            if looked.status_code == 200:
                self.skipped.append(layer.image_id)
                continue
            assert looked.status_code == 404, (looked.status_code, looked.data)
            for reply in (self.put_json(layer), self.put_layer(layer), self.put_checksum(layer)):
                assert reply.status_code == 200, reply.data
            self.uploaded.append(layer.image_id)
        tagged = client.put(f"/v1/repositories/{remote}/tags/{tag}", data=json.dumps(layers[-1].image_id),
                            headers=self.token, content_type="application/json")
        assert tagged.status_code == 200, tagged.data


def pull(client, remote: str, image: str) -> tuple[bytes, bytes, list[str]]:
    """json, layer bytes and ancestry of ``image`` as a pull of ``remote`` gets them."""
    token = read_token(client, remote)
    got_json = client.get(f"/v1/images/{image}/json", headers=token)
    got_layer = client.get(f"/v1/images/{image}/layer", headers=token)
    ancestry = client.get(f"/v1/images/{image}/ancestry", headers=token)
    assert got_json.status_code == got_layer.status_code == ancestry.status_code == 200
    return got_json.data, got_layer.data, ancestry.get_json()


@pytest.fixture
def accounts(alice, docker):
    for name, password in (BOBBY, CAROL):
        assert docker.register(name, password).status_code == 201
    return alice


def two_versions_of_w():
    mine = chain([W, image_id(0x78)], salt="alice")
    theirs = chain([W], salt="bobby")
    assert mine[0].body != theirs[0].body and mine[0].json_bytes == theirs[0].json_bytes
    return mine, theirs[0]


def test_another_accounts_upload_of_a_base_id_does_not_reach_alices_pulls(client, accounts, app):
    alice_layers, bobby_w = two_versions_of_w()
    seed = Push(client, "bobby/seed", [bobby_w], auth=BOBBY)
    assert seed.uploaded == [W]

    base = Push(client, "alice/base", alice_layers)
    # bobby's W does not count for alice/base: docker was told 404 and uploaded alice's own.
    assert base.uploaded == [W, image_id(0x78)] and base.skipped == []

    assert pull(client, "alice/base", W)[:2] == (alice_layers[0].json_bytes, alice_layers[0].body)
    assert pull(client, "alice/base", image_id(0x78))[2] == [image_id(0x78), W]
    assert pull(client, "bobby/seed", W)[:2] == (bobby_w.json_bytes, bobby_w.body)

    # Re-pushes still skip what their own repository's writers uploaded.
    assert Push(client, "alice/base", alice_layers).skipped == [W, image_id(0x78)]
    assert Push(client, "bobby/seed", [bobby_w], auth=BOBBY).skipped == [W]
    versions = storage.versions(app.config["DATA_DIR"], W)
    assert sorted(versions) == ["alice", "bobby"]
    assert versions["alice"]["refs"] == ["alice/base"] and versions["bobby"]["refs"] == ["bobby/seed"]


def test_library_images_pushed_by_an_admin_are_not_poisoned(client, accounts):
    bobby_w = chain([W], salt="bobby")[0]
    Push(client, "bobby/seed", [bobby_w], auth=BOBBY)
    library = chain([W], salt="library")
    pushed = Push(client, "base", library, auth=ADMIN)
    assert pushed.uploaded == [W]
    assert pull(client, "library/base", W)[1] == library[0].body
    assert pull(client, "base", W)[1] == library[0].body


def test_under_alices_token_bobbys_version_is_404_on_every_image_route(client, accounts):
    Push(client, "bobby/seed", [chain([W], salt="bobby")[0]], auth=BOBBY)
    alice_w = chain([W], salt="alice")[0]
    pusher = Pusher(client, "alice/base", [alice_w])
    for route in ("json", "layer", "ancestry"):
        assert client.get(f"/v1/images/{W}/{route}", headers=pusher.token).status_code == 404
    # A checksum or layer without alice's own json: nothing of bobby's is used.
    assert pusher.put_layer(alice_w).status_code == 404
    assert pusher.put_checksum(alice_w).status_code == 404


def test_a_parent_is_resolved_through_the_repositorys_writers_only(client, accounts):
    Push(client, "bobby/seed", [chain([W], salt="bobby")[0]], auth=BOBBY)
    child = chain([image_id(0x79)], salt="child")[0]
    child.parent = W
    pusher = Pusher(client, "alice/child", [child])
    refused = pusher.put_json(child)
    assert refused.status_code == 400 and "parent image" in refused.get_json()["error"]
    # Once alice has her own W, the same child builds on hers.
    Push(client, "alice/child", chain([W], salt="alice"), tag="base")
    assert pusher.put_json(child).status_code == 200


def test_tags_can_only_point_at_versions_of_the_repositorys_writers(client, accounts):
    Push(client, "bobby/seed", [chain([W], salt="bobby")[0]], auth=BOBBY)
    pusher = Pusher(client, "alice/base", chain([W], salt="alice"))
    tagged = client.put("/v1/repositories/alice/base/tags/latest", data=json.dumps(W),
                        headers=pusher.token, content_type="application/json")
    assert tagged.status_code == 404


def test_basic_reads_never_see_a_version_only_unreadable_repositories_hold(client, accounts, monkeypatch):
    alice_layers, bobby_w = two_versions_of_w()
    Push(client, "bobby/seed", [bobby_w], auth=BOBBY)
    carol = basic(*CAROL)
    # Every repository is public: the oldest version wins (bobby's).
    assert client.get(f"/v1/images/{W}/layer", headers=carol).data == bobby_w.body

    readable = permissions.can_read

    def private_bobby(user, name):
        return name.namespace != "bobby" and readable(user, name)
    monkeypatch.setattr(permissions, "can_read", private_bobby)
    assert client.get(f"/v1/images/{W}/json", headers=carol).status_code == 404
    Push(client, "alice/base", alice_layers)
    assert client.get(f"/v1/images/{W}/layer", headers=carol).data == alice_layers[0].body


def test_a_writer_who_lost_write_access_no_longer_satisfies_the_repository(client, accounts, monkeypatch):
    """Versions count for R only while their uploader may write R (asked at every request)."""
    layers = chain([W], salt="alice")
    Push(client, "alice/base", layers)
    token = read_token(client, "alice/base")
    assert client.get(f"/v1/images/{W}/json", headers=token).status_code == 200
    writable = permissions.can_write
    monkeypatch.setattr(permissions, "can_write",
                        lambda user, name: user is not None and user["username"] != "alice" and writable(user, name))
    assert client.get(f"/v1/images/{W}/json", headers=token).status_code == 404


def test_identical_bytes_are_stored_once_and_freed_when_no_version_uses_them(client, accounts, app):
    same = chain([W], salt="same")
    Push(client, "bobby/seed", same, auth=BOBBY)
    Push(client, "alice/base", same)
    data_dir = app.config["DATA_DIR"]
    assert sorted(storage.versions(data_dir, W)) == ["alice", "bobby"]
    assert len(storage.blob_files(data_dir)) == 1

    def delete(remote, auth):
        started = client.delete(f"/v1/repositories/{remote}/", headers={**basic(*auth), "X-Docker-Token": "true"})
        token = {"Authorization": "Token " + started.headers["X-Docker-Token"]}
        assert client.delete(f"/v1/repositories/{remote}/", headers=token).status_code == 200
        assert client.delete(f"/v1/repositories/{remote}/",
                             headers={**basic(*auth), "X-Docker-Endpoints": "localhost"}).status_code == 200

    delete("bobby/seed", BOBBY)
    assert sorted(storage.versions(data_dir, W)) == ["alice"]
    assert len(storage.blob_files(data_dir)) == 1
    assert pull(client, "alice/base", W)[1] == same[0].body
    delete("alice/base", ("alice", "secret1"))
    assert storage.versions(data_dir, W) == {} and storage.blob_files(data_dir) == []


def test_credentialed_layer_answers_are_not_stored_by_caches(client, accounts):
    Push(client, "alice/base", chain([W], salt="alice"))
    for headers in (basic("alice", "secret1"), read_token(client, "alice/base")):
        reply = client.get(f"/v1/images/{W}/layer", headers=headers)
        assert reply.status_code == 200 and reply.headers.getlist("Cache-Control") == ["no-store"]


def test_garbage_collection_deletes_only_blobs_no_version_uses(client, accounts, app):
    from index.services import EXTENSION_KEY
    registry = app.extensions[EXTENSION_KEY].registry
    Push(client, "alice/base", chain([W], salt="alice"))
    data_dir = app.config["DATA_DIR"]
    kept = storage.layer_file(data_dir, W)
    # What a process killed between dropping a version and releasing its blob leaves behind.
    stray = registry.blobs.path("sha256:" + "ee" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"left over")
    registry.images.add_blob_user("sha256:" + "ee" * 32, image_id(0x99), "bobby", 9, commit=lambda: None)
    assert registry.collect_garbage() == 1
    assert storage.blob_files(data_dir) == [kept]
    assert pull(client, "alice/base", W)[1] == kept.read_bytes()


def test_an_upload_under_way_is_not_overtaken_by_another_accounts_upload_of_the_id(client, accounts):
    """What the README once listed as a known limit: bobby reads W from alice's public image list
    while her push runs and uploads his own W first; alice's upload still completes as hers."""
    alice_w = chain([W], salt="alice")[0]
    alice = Pusher(client, "alice/base", [alice_w])
    assert alice.put_json(alice_w).status_code == 200
    Push(client, "bobby/seed", [chain([W], salt="bobby")[0]], auth=BOBBY)
    assert alice.put_layer(alice_w).status_code == 200
    assert alice.put_checksum(alice_w).status_code == 200
    assert client.put("/v1/repositories/alice/base/tags/latest", data=json.dumps(W), headers=alice.token,
                      content_type="application/json").status_code == 200
    assert pull(client, "alice/base", W)[1] == alice_w.body
