"""Store methods for repositories: what a write changes on disk, and what it leaves alone."""
from tests.conftest import image_id


def _file_state(store, namespace):
    """The namespace file and its journal (where new image ids of an existing repository go)."""
    path = store.db_dir / "namespaces" / f"{namespace}.json"
    journal = path.with_name(path.name + ".journal")
    info = path.stat()
    return info.st_ino, path.read_bytes(), journal.read_bytes() if journal.exists() else None


def test_a_re_push_announcing_nothing_new_does_not_rewrite_the_file(store):
    store.announce_repository("alice", "app", [{"id": image_id(1)}, {"id": image_id(2)}], owner="alice")
    before = _file_state(store, "alice")
    again = store.announce_repository("alice", "app", [{"id": image_id(2)}, {"id": image_id(1), "Tag": "latest"}],
                                      owner="alice")
    assert _file_state(store, "alice") == before  # same inode, same bytes: nothing was written
    assert [entry["id"] for entry in again["images"]] == [image_id(1), image_id(2)]


def test_a_re_push_with_a_new_image_or_after_a_delete_request_is_written(store):
    store.announce_repository("alice", "app", [{"id": image_id(1)}], owner="alice")
    first = _file_state(store, "alice")
    store.announce_repository("alice", "app", [{"id": image_id(1)}, {"id": image_id(3)}], owner="alice")
    second = _file_state(store, "alice")
    assert second != first
    assert [e["id"] for e in store.get_repository("alice", "app")["images"]] == [image_id(1), image_id(3)]

    store.mark_deleting("alice", "app")
    store.announce_repository("alice", "app", [{"id": image_id(1)}], owner="alice")  # same images
    assert store.get_repository("alice", "app")["state"] == "active"
