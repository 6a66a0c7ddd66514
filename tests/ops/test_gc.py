"""``docker-index gc``: each kind of garbage found and removed, nothing in use touched, --dry-run only says."""
from __future__ import annotations

import json
import os
import time

import pytest

from index.ops import gc
from index.services import EXTENSION_KEY
from tests.conftest import image_id
from tests.registry.layers import chain
from tests.registry.test_routes import Pusher

LATER = 3 * 24 * 3600
TOKEN_TTL = 6 * 3600  # the default INDEX_TOKEN_TTL, the grace time of a stuck deletion  # "now" for gc: three days on, so every age limit has passed


@pytest.fixture
def services(app):
    return app.extensions[EXTENSION_KEY]


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=list(args))


def _push(client, remote, ids, tag="latest", auth=("alice", "secret1")):
    pusher = Pusher(client, remote, chain(ids, salt=remote), auth=auth)
    pusher.upload_all()
    tagged = client.put(f"/v1/repositories/{remote}/tags/{tag}", data=json.dumps(ids[-1]),
                        headers=pusher.token, content_type="application/json")
    assert tagged.status_code == 200
    return pusher


def test_stuck_deletions_are_finished_or_undone_after_the_grace_time(client, alice, services):
    _push(client, "alice/gone", [image_id(1)])
    _push(client, "alice/kept", [image_id(2)])
    registry, store = services.registry, services.store
    for name in ("gone", "kept"):   # step 1 of a delete, then the client went away
        assert client.delete(f"/v1/repositories/alice/{name}/",
                             headers={**_basic(), "X-Docker-Token": "true"}).status_code == 202
    registry.forget(_name("alice/gone"))          # the registry step ran only for this one
    grace = TOKEN_TTL
    assert gc.stuck_deletions(store, registry, grace, dry_run=False) == []   # too young yet
    planned = gc.stuck_deletions(store, registry, grace, dry_run=True, now=time.time() + grace + 1)
    assert [line.split(" (")[0] for line in planned] == ["would finish deleting alice/gone",
                                                        "would undo the deletion of alice/kept"]
    assert store.get_repository("alice", "gone")["state"] == "deleting"     # dry run: unchanged
    done = gc.stuck_deletions(store, registry, grace, dry_run=False, now=time.time() + grace + 1)
    assert [line.split(" (")[0] for line in done] == ["finished deleting alice/gone",
                                                     "undid the deletion of alice/kept"]
    assert store.get_repository("alice", "gone") is None
    assert store.get_repository("alice", "kept")["state"] == "active"
    assert client.get("/v1/repositories/alice/kept/tags", headers=_basic()).get_json() == {"latest": image_id(2)}


def _unused_blob(registry, name: str = "ab" * 32):
    """A blob file no image version uses, as a crash between two steps could leave one."""
    path = registry.blobs.blobs_dir / name[:2] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left by a crash")
    return path


def test_unused_blobs_go_used_ones_stay(client, alice, services):
    _push(client, "alice/one", [image_id(10), image_id(11)])
    registry = services.registry
    used = sorted(registry.blobs.digests())
    blob = _unused_blob(registry)
    dry = gc.unused_blobs(registry, dry_run=True)
    assert dry == [f"would remove layer blob sha256:{'ab' * 32} (no image version uses it)"] and blob.exists()
    assert gc.unused_blobs(registry, dry_run=False) == ["removed 1 layer blob(s) no image version uses"]
    assert not blob.exists() and sorted(registry.blobs.digests()) == used


def test_images_in_use_are_never_collected(client, alice, services):
    _push(client, "alice/used", [image_id(20), image_id(21)])
    registry = services.registry
    registry.images.pending_seconds = 0  # every age limit has passed
    blobs = sorted(registry.blobs.digests())
    lines: list[str] = []
    gc.collect_garbage(services.store, registry, services.store.root, 0, False, lines.append)
    assert not any("blob" in line or "image" in line for line in lines), lines
    assert sorted(registry.blobs.digests()) == blobs and registry.images.versions(image_id(21))


def test_uploads_that_never_completed_expire(client, alice, services):
    pusher = Pusher(client, "alice/half", chain([image_id(30), image_id(31)], salt="half"))
    first = pusher.layers[0]
    assert pusher.put_json(first).status_code == 200
    registry = services.registry
    assert pusher.put_layer(first).status_code == 200                # layer, checksum never sent
    assert gc.pending_versions(registry, dry_run=True) == []          # fresh: a push in progress
    in_two_days = time.time() + 2 * 24 * 3600
    assert gc.pending_versions(registry, dry_run=True, now=in_two_days) == [
        f"would remove image {image_id(30)} uploaded by alice (never completed)"]
    registry.images.pending_seconds = 0
    removed = gc.pending_versions(registry, dry_run=False)
    assert removed == ["removed 1 image upload(s) never completed (1 blob(s) freed)"]
    assert registry.images.versions(image_id(30)) == {}
    assert list(registry.blobs.digests()) == []


def test_stale_uploads_and_temp_files(client, alice, services):
    registry, root = services.registry, services.store.root
    registry.blobs.uploads_dir.mkdir(parents=True, exist_ok=True)
    upload = registry.blobs.uploads_dir / "abc.part"
    upload.write_bytes(b"half an upload")
    temp = root / "db" / "users.json.tmp-xyz"
    temp.write_text("{")
    staging = root / ".backup-123"
    staging.mkdir()
    fresh_temp = root / "db" / "namespaces" / "alice.json.tmp-now"
    fresh_temp.parent.mkdir(parents=True, exist_ok=True)
    fresh_temp.write_text("{")
    old = time.time() - 2 * 24 * 3600
    for path in (upload, temp, staging):
        os.utime(path, (old, old))
    lines: list[str] = []
    gc.collect_garbage(services.store, registry, root, TOKEN_TTL, True, lines.append)
    assert len(lines) == 2 and all(line.startswith("would remove") for line in lines), lines
    assert upload.exists() and temp.exists() and staging.exists()
    lines = []
    gc.collect_garbage(services.store, registry, root, TOKEN_TTL, False, lines.append)
    assert len(lines) == 3, lines
    assert not upload.exists() and not temp.exists() and not staging.exists()
    assert fresh_temp.exists()                                   # a write in progress is left alone


def test_gc_command_says_what_it_did(cli, client, alice, services):
    assert cli("gc", "--dry-run").output == "nothing to collect\n"
    blob = _unused_blob(services.registry)
    dry = cli("gc", "--dry-run")
    assert dry.exit_code == 0 and "would remove layer blob" in dry.output and blob.exists()
    assert "run without --dry-run" in dry.output
    done = cli("gc")
    assert done.exit_code == 0 and "removed 1 layer blob(s)" in done.output and not blob.exists()


def _basic():
    from tests.conftest import basic
    return basic("alice", "secret1")


def _name(text):
    from index.names import RepoName
    namespace, repository = text.split("/")
    return RepoName(namespace, repository)


def test_journals_are_folded_into_their_namespace_files(cli, alice, services):
    store = services.store
    store.announce_repository("alice", "app", [{"id": image_id(1)}], owner="alice")
    store.announce_repository("alice", "app", [{"id": image_id(2)}], owner="alice")  # a journal line
    journal = store.namespace_path("alice").with_name("alice.json.journal")
    assert journal.exists()
    before = store.get_repository("alice", "app")
    assert gc.journals(store, dry_run=True) == ["would fold the journal of namespace alice into its file"]
    assert journal.exists()
    result = cli("gc")
    assert result.exit_code == 0, result.output
    assert "folded the journal of namespace alice into its file" in result.output
    assert not journal.exists()
    assert store.get_repository("alice", "app") == before
    on_disk = json.loads(store.namespace_path("alice").read_text())["repositories"]["app"]["images"]
    assert set(on_disk) == {image_id(1), image_id(2)}  # the file itself holds both now
    assert gc.journals(store, dry_run=False) == []
