"""``flask --app wsgi backup|restore`` as a user runs them, against a data dir that is in use."""
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from index.ops.backup import MANIFEST
from index.store import Store
from tests.conftest import image_id

ROOT = Path(__file__).resolve().parents[2]
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


def run(args, data_dir, check=True):
    env = {**os.environ, "INDEX_DATA_DIR": str(data_dir), "INDEX_BCRYPT_ROUNDS": "4"}
    env.pop("INDEX_SECRET_KEY", None)
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def filled(data_dir: Path) -> Store:
    store = Store(data_dir)
    store.open()
    store.create_user("alice", "hash", "alice@example.com")
    store.announce_repository("alice", "app", [{"id": image_id(1)}], owner="alice")
    layer = data_dir / "layers" / image_id(1) / "layer"
    layer.parent.mkdir(parents=True)
    layer.write_bytes(b"layer bytes")
    os.link(layer, data_dir / "layers" / "same-inode")  # e.g. a registry that deduplicates by linking
    (data_dir / "secret_key").write_text("the-key")
    return store


def test_backup_while_writing_then_restore_into_an_empty_dir(tmp_path):
    source = tmp_path / "data"
    store = filled(source)
    stop = threading.Event()
    written = []

    def keep_writing():
        for n in range(2, 10_000):
            if stop.is_set():
                return
            store.merge_images("alice", "app", [{"id": image_id(n)}])
            written.append(n)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        archive = tmp_path / "backup.tar.gz"
        done = run([*FLASK, "backup", str(archive)], source)
    finally:
        stop.set()
        writer.join(30)
    assert "backup written" in done.stdout
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {MANIFEST, "secret_key", "db/users.json", "db/namespaces/alice.json",
            f"layers/{image_id(1)}/layer"} <= names
    assert not any(name.endswith(".lock") or ".tmp-" in name for name in names)
    assert (source / "db" / "namespaces.changes").exists() and "db/namespaces.changes" not in names

    target = tmp_path / "restored"
    done = run([*FLASK, "restore", str(archive)], target)
    assert "restored" in done.stdout
    restored = Store(target)
    restored.open()
    ids = {image["id"] for image in restored.get_repository("alice", "app")["images"]}
    assert image_id(1) in ids
    # A snapshot of one moment: the images the writer had added by then, with no gap.
    assert ids == {image_id(n) for n in range(1, len(ids) + 1)}
    assert restored.find_user("alice") is not None
    assert (target / "secret_key").read_text() == "the-key"
    assert (target / "layers" / image_id(1) / "layer").read_bytes() == b"layer bytes"
    assert (target / "layers" / "same-inode").read_bytes() == b"layer bytes"


def test_restore_refuses_a_dir_with_data_unless_forced_and_keeps_the_old_content(tmp_path):
    source = tmp_path / "data"
    filled(source).close()
    archive = tmp_path / "backup.tar.gz"
    run([*FLASK, "backup", str(archive)], source)

    target = tmp_path / "other"
    other = Store(target)
    other.open()
    other.create_user("carol", "hash", "carol@example.com")
    other.close()
    refused = run([*FLASK, "restore", str(archive)], target, check=False)
    assert refused.returncode != 0 and "--force" in refused.stderr
    assert Store(target).find_user("carol") is not None

    run([*FLASK, "restore", str(archive), "--force"], target)
    restored = Store(target)
    assert restored.find_user("alice") is not None and restored.find_user("carol") is None
    aside = [path for path in target.iterdir() if path.name.startswith(".before-restore-")]
    assert len(aside) == 1 and "carol" in (aside[0] / "db" / "users.json").read_text()


def test_restore_refuses_while_the_index_runs(tmp_path):
    source = tmp_path / "data"
    filled(source).close()
    archive = tmp_path / "backup.tar.gz"
    run([*FLASK, "backup", str(archive)], source)
    running = Store(source)
    running.open()  # this test process now serves the data dir, like a gunicorn worker
    refused = run([sys.executable, "-m", "index", "restore", str(archive), "--force"], source, check=False)
    assert refused.returncode != 0 and "stop every index process" in refused.stderr
    running.close()
    run([sys.executable, "-m", "index", "restore", str(archive), "--force"], source)


def _archive(path: Path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in {MANIFEST: b"{}", **members}.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))


@pytest.mark.parametrize("members, words", [
    ({"../escape": b"x"}, "outside the data dir"),
    ({"/etc/evil": b"x"}, "outside the data dir"),
    ({"db/users.json": None}, "not a plain file"),
    ({"db/users.json": b'{"users": {'}, "damaged"),
])
def test_restore_refuses_a_bad_archive_and_changes_nothing(tmp_path, members, words):
    archive = tmp_path / "bad.tar.gz"
    _archive(archive, members)
    target = tmp_path / "target"
    refused = run([sys.executable, "-m", "index", "restore", str(archive)], target, check=False)
    assert refused.returncode != 0 and words in refused.stderr
    assert not (tmp_path / "escape").exists()
    assert [path.name for path in target.iterdir() if not path.name.endswith(".lock")] == []


def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path):
    archive = tmp_path / "plain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("db/users.json")
        payload = json.dumps({"users": {}}).encode()
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    refused = run([sys.executable, "-m", "index", "restore", str(archive)], tmp_path / "t", check=False)
    assert refused.returncode != 0 and "not an index backup" in refused.stderr


def test_backup_refuses_a_destination_inside_the_data_dir(tmp_path):
    source = tmp_path / "data"
    filled(source).close()
    refused = run([*FLASK, "backup", str(source / "backup.tar.gz")], source, check=False)
    assert refused.returncode != 0 and "inside the data dir" in refused.stderr


def test_the_index_does_not_start_while_a_restore_runs(tmp_path, settings):
    from index import create_app
    from index.store import StorageFailure
    from index.store.files import exclusive_use
    settings["DATA_DIR"] = tmp_path / "data"
    with exclusive_use(settings["DATA_DIR"]):
        with pytest.raises(StorageFailure, match="being restored"):
            create_app(settings)
    create_app(settings)
