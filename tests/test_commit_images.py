"""The final ``PUT .../images`` of a push: ``[]`` (docker 0.8-1.5) and lists with checksums."""
from tests.conftest import image_id


def test_empty_commit_of_an_active_repository_is_204_and_changes_nothing(alice, store):
    assert alice.put_repository("alice/app", [{"id": image_id(1), "Tag": "latest"}]).status_code == 200
    before = store.get_repository("alice", "app")
    response = alice.put_images("alice/app", [])
    assert response.status_code == 204
    assert response.data == b""
    assert store.get_repository("alice", "app") == before


def test_empty_commit_of_a_missing_or_deleted_repository_is_404(alice, store):
    missing = alice.put_images("alice/nothing", [])
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "repository alice/nothing not found"}
    assert alice.put_repository("alice/app", [{"id": image_id(1)}]).status_code == 200
    store.mark_deleting("alice", "app")
    assert alice.put_images("alice/app", []).status_code == 404


def test_empty_commit_still_needs_the_owner(alice, docker):
    assert alice.put_repository("alice/app", [{"id": image_id(1)}]).status_code == 200
    assert docker.register("bobby", "secret2").status_code == 201
    assert docker.put_images("alice/app", [], auth=("bobby", "secret2")).status_code == 403
    assert docker.put_images("alice/app", [], auth=("alice", "wrong")).status_code == 401


def test_a_commit_with_checksums_merges_them(alice, store):
    assert alice.put_repository("alice/app", [{"id": image_id(1)}]).status_code == 200
    checksum = "tarsum+sha256:" + "a" * 64
    assert alice.put_images("alice/app", [{"id": image_id(1), "checksum": checksum}]).status_code == 204
    assert store.get_repository("alice", "app")["images"] == [{"id": image_id(1), "checksum": checksum}]
