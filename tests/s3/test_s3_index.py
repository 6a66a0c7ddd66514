"""The index with its layers in S3 (a real Swift + s3api): the start-up check of ``make run``, a
redirected pull, deletes that free objects, and a second host taking over from a backup."""
from __future__ import annotations

import hashlib
import os
import time
import urllib.request

import pytest

from index.ops.backup import create_backup, restore_backup
from index.store import Store
from tests.conftest import image_id
from tests.ops.processes import run_serve
from tests.processes import free_port
from tests.registry.conftest import running_server
from tests.registry.layers import chain

from .fixtures import blobs_for, new_bucket


def index_env(swift, bucket: str, **more: str) -> dict[str, str]:
    return {**swift.environment(), "INDEX_LAYER_STORAGE": f"s3://{bucket}/index", "INDEX_S3_PATH_STYLE": "true", **more}


@pytest.mark.parametrize("change,line", [
    ({"INDEX_LAYER_STORAGE": "s3://no-such-bucket"},
     "error: INDEX_LAYER_STORAGE: s3://no-such-bucket/ at {endpoint} is not usable: the bucket 'no-such-bucket' does not exist"),
    ({"AWS_SECRET_ACCESS_KEY": "not-the-key"},
     "error: INDEX_LAYER_STORAGE: s3://{bucket}/index/ at {endpoint} is not usable: the credentials were refused (SignatureDoesNotMatch)"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:{closed}"},
     "error: INDEX_LAYER_STORAGE: s3://{bucket}/index/ at http://127.0.0.1:{closed} is not usable: cannot connect "
     "(Could not connect to the endpoint URL: \"http://127.0.0.1:{closed}/{bucket}/index/uploads/access-check-"),
    ({"INDEX_LAYER_STORAGE": "s3://Bad_Bucket"},
     "error: INDEX_LAYER_STORAGE: 'Bad_Bucket' is not an S3 bucket name (3-63 of a-z 0-9 . -)"),
])
def test_make_run_stops_with_one_line_naming_what_is_wrong(swift_s3, tmp_path, change, line):
    bucket = new_bucket(swift_s3)
    closed = free_port()
    settings = index_env(swift_s3, bucket, INDEX_DATA_DIR=str(tmp_path / "data"), INDEX_PORT=str(free_port()))
    settings.update({name: value.format(closed=closed) for name, value in change.items()})
    finished = run_serve(settings)
    assert finished.returncode == 2
    expected = line.format(endpoint=swift_s3.endpoint, bucket=bucket, closed=closed)
    lines = finished.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), finished.stderr


def test_redirected_pull_and_deletes_free_the_objects(swift_s3, tmp_path):
    bucket = new_bucket(swift_s3)
    env = index_env(swift_s3, bucket, INDEX_S3_REDIRECT="true", INDEX_S3_REDIRECT_SECONDS="120")
    blobs = blobs_for(swift_s3, f"s3://{bucket}/index")
    layers = chain([image_id(0xA10 + n) for n in range(3)], salt="redirect")
    with running_server(tmp_path / "data", tmp_path / "server.log", extra_env=env) as server:
        erin = server.register("erin")
        erin.push("erin/app", layers)
        erin.push("erin/copy", layers[:2])  # shares two layers
        token, registry = erin.read_token("erin/app")
        for layer in layers:
            answer = erin.request("GET", f"/v1/images/{layer.image_id}/layer",
                                  headers={"Authorization": f"Token {token}"}, host=registry)
            assert answer.status == 302 and answer.headers["Cache-Control"] == "no-store"
            location = answer.headers["Location"]
            assert location.startswith(f"{swift_s3.endpoint}/{bucket}/index/blobs/sha256/")
            assert "X-Amz-Expires=120" in location
            with urllib.request.urlopen(location, timeout=10) as fetched:  # what docker does with the 302
                assert fetched.read() == layer.body
        # HEAD is answered by the index (no redirect: a presigned GET does not sign a HEAD).
        head = erin.request("HEAD", f"/v1/images/{layers[0].image_id}/layer",
                            headers={"Authorization": f"Token {token}"}, host=registry)
        assert head.status == 200 and int(head.headers["Content-Length"]) == len(layers[0].body)

        digests = {"sha256:" + hashlib.sha256(layer.body).hexdigest() for layer in layers}
        assert set(blobs.digests()) == digests
        erin.delete("erin/app")
        # The top layer was only erin/app's: its object is gone; the two shared ones stay.
        assert set(blobs.digests()) == {"sha256:" + hashlib.sha256(layer.body).hexdigest() for layer in layers[:2]}
        erin.delete("erin/copy")
        assert list(blobs.digests()) == [] and blobs.temporary_objects() == []


def test_a_second_host_restored_from_a_backup_serves_the_pulls_from_the_same_bucket(swift_s3, tmp_path):
    """The restore order of the README: the bucket is there (here: untouched), then the metadata
    backup is restored into the new host's data dir, then that host starts."""
    bucket = new_bucket(swift_s3)
    env = index_env(swift_s3, bucket)
    layers = chain([image_id(0xB10 + n) for n in range(2)], salt="second host")
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    with running_server(first_dir, tmp_path / "first.log", extra_env=env) as first:
        first.register("frank").push("frank/app", layers)
    store = Store(first_dir)
    store.open()
    archive = tmp_path / "backup.tar.gz"
    create_backup(store, archive, layers_elsewhere=f"s3://{bucket}/index/")
    store.close()
    restore_backup(archive, second_dir)
    assert not list(second_dir.rglob("blobs/sha256/*/*"))  # no layer bytes came with the metadata
    with running_server(second_dir, tmp_path / "second.log", extra_env=env) as second:
        pulled = second.client().pull("frank/app")
        assert [pulled[layer.image_id] for layer in layers] == [(layer.json_bytes, layer.body) for layer in layers]


def test_docker_index_gc_deletes_unused_objects_and_stale_uploads(swift_s3, tmp_path, monkeypatch):
    """What a crash can leave in the bucket: a blob no image version uses (killed between the
    copy and the record), a dead multipart upload and a finished temporary object; ``docker-index
    gc`` removes them and nothing that a version uses."""
    import io

    from index import create_app
    from index.ops import gc
    from tests.registry.layers import Entry, Layer
    bucket = new_bucket(swift_s3)
    env = index_env(swift_s3, bucket)
    layers = chain([image_id(0xC10)], salt="kept")
    with running_server(tmp_path / "data", tmp_path / "server.log", extra_env=env) as server:
        server.register("gina").push("gina/app", layers)
    blobs = blobs_for(swift_s3, f"s3://{bucket}/index")
    orphan = Layer(image_id(0xC11), None, [Entry("orphan.txt", b"no version uses me\n")])
    orphan_digest = blobs.commit(blobs.receive(io.BytesIO(orphan.body), orphan.json_bytes))
    dead = blobs.client.create_multipart_upload(Bucket=bucket, Key=f"{blobs.uploads_prefix}dead")
    blobs.client.put_object(Bucket=bucket, Key=f"{blobs.uploads_prefix}finished-never-committed", Body=b"x")
    kept = "sha256:" + hashlib.sha256(layers[0].body).hexdigest()
    assert set(blobs.digests()) == {kept, orphan_digest} and len(blobs.temporary_objects()) == 2

    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in swift_s3.environment().items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path / "data", "SECRET_KEY": "registry-test-secret",
                      "BCRYPT_ROUNDS": 4, "LAYER_STORAGE": f"s3://{bucket}/index", "S3_PATH_STYLE": "true"})
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["gc", "--dry-run"])
    assert dry.exit_code == 0 and f"would remove layer blob {orphan_digest}" in dry.output, dry.output
    assert set(blobs.digests()) == {kept, orphan_digest}
    young = runner.invoke(args=["gc"])  # uploads younger than a day may still be running: kept
    assert young.exit_code == 0 and "removed 1 layer blob(s)" in young.output, young.output
    assert list(blobs.digests()) == [kept] and len(blobs.temporary_objects()) == 2
    monkeypatch.setattr(gc, "STALE_UPLOAD_AGE", 0)
    time.sleep(1.1)  # Swift rounds an upload's time up to the next second: make "older than 0 s" true
    old = runner.invoke(args=["gc"])
    assert old.exit_code == 0 and "removed 2 unfinished layer upload(s)" in old.output, old.output
    assert list(blobs.digests()) == [kept] and blobs.temporary_objects() == []
    assert dead["UploadId"]
