"""Writes the data dir that ``datadir.tar.gz`` holds, with the code of the commit before image
versions (47d61ca): run it from a checkout of that commit, so the files are that code's own.

    git worktree add /tmp/old 47d61ca && cd /tmp/old && \\
        python -B /path/to/make_datadir.py /tmp/legacy-data && \\
        tar -C /tmp/legacy-data -czf datadir.tar.gz .

What it holds (tests/registry/test_migration.py relies on it): alice/app (two images, tagged
latest), alice/tool (shares alice/app's base, plus its own top), library/base pushed by the admin
(one image), bobby/seed announcing alice's base id (never uploaded), and an image whose upload
stopped after its json (alice/app announced it).
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from index import create_app
from tests.conftest import ADMIN, basic, image_id
from tests.registry.layers import chain


def push(client, remote, layers, auth, tag="latest", upload=True):
    entries = [{"id": layer.image_id} for layer in layers]
    announced = client.put(f"/v1/repositories/{remote}/", data=json.dumps(entries),
                           headers={**basic(*auth), "X-Docker-Token": "true"}, content_type="application/json")
    assert announced.status_code == 200, announced.data
    token = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
    for layer in layers if upload else []:
        if client.get(f"/v1/images/{layer.image_id}/json", headers=token).status_code == 200:
            continue
        assert client.put(f"/v1/images/{layer.image_id}/json", data=layer.json_bytes, headers=token,
                          content_type="application/json").status_code == 200
        assert client.put(f"/v1/images/{layer.image_id}/layer", input_stream=io.BytesIO(layer.body),
                          headers={**token, "Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True}).status_code == 200
        assert client.put(f"/v1/images/{layer.image_id}/checksum",
                          headers={**token, "X-Docker-Checksum": layer.tarsum,
                                   "X-Docker-Checksum-Payload": layer.payload_checksum}).status_code == 200
    if upload and tag:
        assert client.put(f"/v1/repositories/{remote}/tags/{tag}", data=json.dumps(layers[-1].image_id),
                          headers=token, content_type="application/json").status_code == 200
    return token


def main(data_dir: str) -> None:
    app = create_app({"DATA_DIR": Path(data_dir), "SECRET_KEY": "legacy-secret", "BCRYPT_ROUNDS": 4,
                      "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1]})
    client = app.test_client()
    for name in ("alice", "bobby"):
        assert client.post("/v1/users/", data=json.dumps({"username": name, "password": "secret1",
                                                          "email": f"{name}@example.com"}),
                           content_type="application/json").status_code == 201
    alice = ("alice", "secret1")
    app_layers = chain([image_id(0x51), image_id(0x52)])
    push(client, "alice/app", app_layers, alice)
    tool = app_layers[:1] + chain([image_id(0x53)], salt="tool")
    tool[1].parent = app_layers[0].image_id
    push(client, "alice/tool", tool, alice)
    push(client, "base", chain([image_id(0x61)], salt="library"), ADMIN)
    push(client, "bobby/seed", app_layers[:1], ("bobby", "secret1"), upload=False)
    pending = chain([image_id(0x54)], salt="pending")[0]
    token = push(client, "alice/app", [pending], alice, upload=False)
    assert client.put(f"/v1/images/{pending.image_id}/json", data=pending.json_bytes, headers=token,
                      content_type="application/json").status_code == 200


if __name__ == "__main__":
    main(sys.argv[1])
