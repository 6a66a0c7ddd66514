"""A data dir written by the code before image versions (tests/registry/legacy/) opens and works:
records become versions of the repositories' owners, layer files become blobs."""
from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from index import create_app
from tests.conftest import ADMIN, basic, image_id

from . import storage
from .test_routes import read_token

ARCHIVE = Path(__file__).parent / "legacy" / "datadir.tar.gz"
ALICE = basic("alice", "secret1")


@pytest.fixture
def legacy(tmp_path):
    data_dir = tmp_path / "data"
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(data_dir, filter="data")
    layers = {path.stem: path.read_bytes() for path in (data_dir / "layers").rglob("*.layer")}
    assert len(layers) == 4
    settings = {"TESTING": True, "DATA_DIR": data_dir, "SECRET_KEY": "legacy-secret", "BCRYPT_ROUNDS": 4,
                "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1]}
    return settings, layers


def write_token(client, remote, ids, auth=ALICE):
    announced = client.put(f"/v1/repositories/{remote}/", data=json.dumps([{"id": i} for i in ids]),
                           headers={**auth, "X-Docker-Token": "true"}, content_type="application/json")
    assert announced.status_code == 200
    return {"Authorization": "Token " + announced.headers["X-Docker-Token"]}


def test_an_older_data_dir_is_converted_at_start_and_serves_the_same_bytes(legacy):
    settings, layers = legacy
    app = create_app(settings)
    client = app.test_client()
    data_dir = settings["DATA_DIR"]
    assert not (data_dir / "layers").exists()
    assert sorted(path.name for path in storage.blob_files(data_dir)) == sorted(
        hashlib.sha256(body).hexdigest() for body in layers.values())

    base = storage.versions(data_dir, image_id(0x51))
    assert sorted(base) == ["alice"]  # bobby/seed only announced it: bobby gets no version
    assert base["alice"]["refs"] == ["alice/app", "alice/tool"] and base["alice"]["state"] == "complete"
    assert storage.versions(data_dir, image_id(0x54))["alice"]["state"] == "json"  # unfinished upload
    assert sorted(storage.versions(data_dir, image_id(0x61))) == ["admin"]

    # Pulls get the bytes the old code stored.
    for remote, image in (("alice/app", 0x52), ("alice/tool", 0x53), ("base", 0x61)):
        token = read_token(client, remote)
        top = client.get(f"/v1/repositories/{remote}/tags/latest", headers=token).get_json()
        assert top == image_id(image)
        for ancestor in client.get(f"/v1/images/{top}/ancestry", headers=token).get_json():
            assert client.get(f"/v1/images/{ancestor}/layer", headers=token).data == layers[ancestor]

    # A re-push skips everything; bobby's token does not see alice's base.
    token = write_token(client, "alice/app", [image_id(0x51), image_id(0x52)])
    assert all(client.get(f"/v1/images/{image_id(n)}/json", headers=token).status_code == 200 for n in (0x51, 0x52))
    bobby = write_token(client, "bobby/seed", [image_id(0x51)], auth=basic("bobby", "secret1"))
    assert client.get(f"/v1/images/{image_id(0x51)}/json", headers=bobby).status_code == 404

    # A second start changes nothing; deletes free what only they held.
    create_app(settings)
    for remote in ("alice/app", "alice/tool"):
        assert client.delete(f"/v1/repositories/{remote}/",
                             headers={**ALICE, "X-Docker-Endpoints": "localhost"}).status_code == 200
    assert [path.name for path in storage.blob_files(data_dir)] == [
        hashlib.sha256(layers[image_id(0x61)]).hexdigest()]
