"""Damaged files stop the start loudly; temp files are cleaned; the read cache never serves stale data."""
import json
import os
import time

import pytest

from index import create_app
from index.store import AlreadyExists, CorruptDataFile, Store
from index.store.files import STAMP_KEY, DataFile
from tests.conftest import image_id


@pytest.fixture
def filled(tmp_path):
    store = Store(tmp_path / "data")
    store.open()
    store.create_user("alice", "hash", "alice@example.com")
    store.announce_repository("alice", "app", [{"id": image_id(1)}], owner="alice")
    return store


@pytest.mark.parametrize("content", [b"", b'{"repositories": {"app": ', b"[]", b"\x00\x00\x00\x00"])
def test_a_damaged_file_stops_the_start_and_names_it(filled, settings, content):
    settings["DATA_DIR"] = filled.root
    damaged = filled.root / "db" / "namespaces" / "alice.json"
    damaged.write_bytes(content)
    with pytest.raises(CorruptDataFile) as caught:
        create_app(settings)
    message = str(caught.value)
    assert str(damaged) in message and "restore" in message and "backup" in message
    assert damaged.read_bytes() == content  # never "repaired" into an empty file


def test_a_file_damaged_while_running_is_never_treated_as_empty(filled, settings):
    settings["DATA_DIR"] = filled.root
    client = create_app(settings).test_client()
    damaged = filled.root / "db" / "namespaces" / "alice.json"
    damaged.write_bytes(b"{not json")
    answer = client.get("/v1/repositories/alice/app/images")
    assert answer.status_code == 500 and "backup" in answer.get_json()["error"]
    with pytest.raises(CorruptDataFile):
        filled.announce_repository("alice", "new", [], owner="alice")
    assert damaged.read_bytes() == b"{not json"


def test_leftover_temp_files_are_removed_at_start(filled):
    users_temp = filled.root / "db" / "users.json.tmp-x1y2"
    ns_temp = filled.root / "db" / "namespaces" / "alice.json.tmp-abc"
    users_temp.write_text('{"half": ')
    ns_temp.write_text("")
    reopened = Store(filled.root)
    reopened.open()
    assert not users_temp.exists() and not ns_temp.exists()
    assert reopened.find_user("alice") is not None
    assert reopened.get_repository("alice", "app")["images"] == [{"id": image_id(1)}]


def test_every_write_is_a_new_file_replacing_the_old(filled):
    path = filled.root / "db" / "namespaces" / "alice.json"
    before = os.stat(path).st_ino
    filled.set_description("alice", "app", "new")  # new image ids go to the journal instead
    assert os.stat(path).st_ino != before  # os.replace of a temp file, not an in-place overwrite
    assert list(json.loads(path.read_bytes()))[0] == STAMP_KEY


def test_another_process_writes_are_seen_through_the_read_cache(filled):
    other = Store(filled.root)  # its own DataFile objects and caches, like another gunicorn worker
    other.open()
    assert len(filled.get_repository("alice", "app")["images"]) == 1
    other.merge_images("alice", "app", [{"id": image_id(2)}])
    assert len(filled.get_repository("alice", "app")["images"]) == 2
    other.set_description("alice", "app", "new words")
    assert filled.get_repository("alice", "app")["description"] == "new words"


def test_same_inode_size_and_mtime_with_new_content_is_not_served_from_cache(filled):
    """What inode reuse plus a coarse clock can produce: only the write stamp tells the versions apart."""
    path = filled.root / "db" / "namespaces" / "alice.json"
    filled.set_description("alice", "app", "aaaa")
    assert filled.get_repository("alice", "app")["description"] == "aaaa"
    info = os.stat(path)
    raw = path.read_bytes()
    data = json.loads(raw)
    data[STAMP_KEY] = "f" * len(data[STAMP_KEY])
    data["repositories"]["app"]["description"] = "bbbb"
    changed = json.dumps(data, separators=(",", ":")).encode()
    assert len(changed) == len(raw)
    with open(path, "r+b") as handle:  # same inode, same size
        handle.write(changed)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # same mtime
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (info.st_ino, info.st_size, info.st_mtime_ns)
    assert filled.get_repository("alice", "app")["description"] == "bbbb"


def test_a_method_that_fails_half_way_writes_nothing(filled):
    path = filled.root / "db" / "users.json"
    before = path.read_bytes(), os.stat(path).st_ino
    with pytest.raises(AlreadyExists):
        filled.create_user("bobby", "hash", "ALICE@example.com")
    assert (path.read_bytes(), os.stat(path).st_ino) == before


def test_reading_unknown_names_creates_nothing(filled):
    for n in range(50):
        assert filled.get_repository(f"nobody{n}", "app") is None
    assert not any(path.name.startswith("nobody") for path in (filled.root / "db" / "namespaces").iterdir())
    assert len(filled.tables._files) == 2  # users.json and alice.json: no object per unknown name


def test_damaged_file_read_directly(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('"a string"')
    with pytest.raises(CorruptDataFile, match="top level is not a JSON object"):
        DataFile(path).check()


@pytest.mark.live
def test_a_starting_worker_never_removes_the_temp_file_of_a_running_write(filled):
    """Store.open() cleans temp files under each file's lock: a live writer's one is left alone.

    The writer uses a DataFile made before the fork, as a worker of ``gunicorn --preload`` does.
    """
    datafile = DataFile(filled.root / "db" / "users.json")
    temp = filled.root / "db" / "users.json.tmp-live"
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a writer in another process, half-way through its write
        try:
            with datafile.locked():
                temp.write_text(json.dumps({"users": {}}))
                os.write(ready_write, b"x")
                time.sleep(0.5)
                os.replace(temp, datafile.path)
            os._exit(0)
        finally:
            os._exit(1)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"x", "the writer failed before it held the lock"
    os.close(ready_read)
    started = time.monotonic()
    Store(filled.root).open()  # a worker starting meanwhile: waits for the lock
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # its rename found the temp file
    assert time.monotonic() - started > 0.2
    assert json.loads(datafile.path.read_text()) == {"users": {}}


@pytest.mark.parametrize("content,read", [
    ({"users": []}, lambda store: store.find_user("alice")),
    ({"users": {"alice": "not an object"}}, lambda store: store.find_user("alice")),
    ({"repositories": ["app"]}, lambda store: store.get_repository("alice", "app")),
    ({"repositories": {"app": 7}}, lambda store: store.get_repository("alice", "app")),
])
def test_a_record_or_table_of_the_wrong_shape_is_a_damaged_file(filled, content, read):
    """Look-ups by key read the parsed file directly; a wrong shape is reported, never a TypeError."""
    target = "users.json" if "users" in content else "namespaces/alice.json"
    (filled.root / "db" / target).write_text(json.dumps(content))
    with pytest.raises(CorruptDataFile, match="is not a JSON object"):
        read(filled)


def test_records_handed_out_are_copies(filled):
    """Callers may change what they get: the shared parse behind every reader stays as it was."""
    user = filled.find_user("alice")
    user["emails"].append("mallory@example.com")
    user["admin"] = True
    repository = filled.get_repository("alice", "app")
    repository["images"].append({"id": image_id(9)})
    repository["description"] = "changed"
    assert filled.find_user("alice")["emails"] == ["alice@example.com"]
    assert filled.find_user("alice")["admin"] is False
    assert filled.get_repository("alice", "app")["images"] == [{"id": image_id(1)}]
    assert filled.get_repository("alice", "app")["description"] == ""


def test_a_namespace_file_damaged_inside_passes_the_start_and_fails_at_first_use(filled, settings):
    # The start only checks a namespace file's framing (a whole object), so it stays fast at
    # 100,000 repositories; the full parse at first use still refuses the file, naming it.
    settings["DATA_DIR"] = filled.root
    damaged = filled.root / "db" / "namespaces" / "alice.json"
    damaged.write_bytes(b'{"repositories": {"app": \x00\x00}}')
    client = create_app(settings).test_client()
    answer = client.get("/v1/repositories/alice/app/images")
    assert answer.status_code == 500 and "backup" in answer.get_json()["error"]
    assert damaged.read_bytes() == b'{"repositories": {"app": \x00\x00}}'


def test_a_damaged_users_file_is_parsed_whole_at_start(filled, settings):
    settings["DATA_DIR"] = filled.root
    users = filled.root / "db" / "users.json"
    users.write_bytes(b'{"users": {"alice": \x00}}')
    with pytest.raises(CorruptDataFile):
        create_app(settings)
