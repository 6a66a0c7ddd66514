"""Registry routes through Flask's test client: authorization, validation, tags, external mode."""
from __future__ import annotations

import io
import json

import pytest

from index import create_app
from tests.conftest import ADMIN, basic, image_id

from .layers import chain

ANON_BASIC = {"Authorization": "Basic Og=="}


class Pusher:
    """The registry requests of one push, through the test client."""

    def __init__(self, client, remote: str, layers, auth=("alice", "secret1")) -> None:
        self.client = client
        self.layers = layers
        entries = [{"id": layer.image_id} for layer in layers]
        entries[-1]["Tag"] = "latest"
        announced = client.put(f"/v1/repositories/{remote}/", data=json.dumps(entries),
                               headers={**basic(*auth), "X-Docker-Token": "true"},
                               content_type="application/json")
        assert announced.status_code == 200, announced.data
        self.token = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}

    def put_json(self, layer, headers=None, data=None):
        return self.client.put(f"/v1/images/{layer.image_id}/json", data=data or layer.json_bytes,
                               headers=headers or self.token, content_type="application/json")

    def put_layer(self, layer, headers=None, body=None):
        # Chunked, as docker sends it: no Content-Length, the server reads to the end.
        return self.client.put(f"/v1/images/{layer.image_id}/layer",
                               input_stream=io.BytesIO(layer.body if body is None else body),
                               headers={**(headers or self.token), "Transfer-Encoding": "chunked"},
                               environ_overrides={"wsgi.input_terminated": True})

    def put_checksum(self, layer, headers=None, tarsum=None, payload=None):
        return self.client.put(f"/v1/images/{layer.image_id}/checksum",
                               headers={**(headers or self.token),
                                        "X-Docker-Checksum": tarsum or layer.tarsum,
                                        "X-Docker-Checksum-Payload": payload or layer.payload_checksum})

    def upload_all(self) -> None:
        for layer in self.layers:
            assert self.put_json(layer).status_code == 200
            assert self.put_layer(layer).status_code == 200
            assert self.put_checksum(layer).status_code == 200


@pytest.fixture
def pushed(client, alice):
    """alice/app with a complete chain of two images, tagged latest."""
    pusher = Pusher(client, "alice/app", chain([image_id(1), image_id(2)]))
    pusher.upload_all()
    tagged = client.put("/v1/repositories/alice/app/tags/latest",
                        data=json.dumps(image_id(2)), headers=pusher.token, content_type="application/json")
    assert tagged.status_code == 200
    return pusher


def read_token(client, remote: str) -> dict[str, str]:
    listed = client.get(f"/v1/repositories/{remote}/images", headers={"X-Docker-Token": "true"})
    return {"Authorization": "Token " + listed.headers["X-Docker-Token"]}


# -- authorization ----------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, ANON_BASIC])
def test_anonymous_reads_of_a_public_repository_need_no_token(client, pushed, headers):
    """Issue 12: anonymous callers read public repositories through the registry routes too."""
    assert client.get(f"/v1/images/{image_id(2)}/json", headers=headers).status_code == 200
    assert client.get("/v1/repositories/alice/app/tags", headers=headers).status_code == 200
    refused = client.put(f"/v1/images/{image_id(2)}/json", data="{}", headers=headers,
                         content_type="application/json")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("headers", [{}, ANON_BASIC])
def test_reads_without_a_token_or_account_are_401_when_anonymous_pull_is_off(settings, headers):
    from index import create_app
    client = create_app({**settings, "ANONYMOUS_PULL": "false"}).test_client()
    reply = client.get(f"/v1/images/{image_id(2)}/json", headers=headers)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Token"
    assert client.get("/v1/repositories/alice/app/tags", headers=headers).status_code == 401


def test_read_token_reads_but_cannot_write(client, pushed):
    token = read_token(client, "alice/app")
    assert client.get(f"/v1/images/{image_id(2)}/json", headers=token).status_code == 200
    refused = pushed.put_json(pushed.layers[0], headers=token)
    assert refused.status_code == 403 and "grants read" in refused.get_json()["error"]


def test_tokens_are_bound_to_their_repository_and_its_images(client, pushed, docker):
    assert docker.register("bobby", "secret2").status_code == 201
    other = Pusher(client, "bobby/app", chain([image_id(9)]), auth=("bobby", "secret2"))
    # bobby's token may not touch alice's images (not announced in bobby/app), nor her tags.
    assert client.get(f"/v1/images/{image_id(2)}/json", headers=other.token).status_code == 403
    assert client.get("/v1/repositories/alice/app/tags", headers=other.token).status_code == 403
    tampered = {"Authorization": other.token["Authorization"].replace("signature=", "signature=x")}
    assert client.get(f"/v1/images/{image_id(9)}/json", headers=tampered).status_code == 401


def test_basic_auth_reads_everything_and_writes_only_where_allowed(client, pushed, docker):
    assert docker.register("bobby", "secret2").status_code == 201
    bob = basic("bobby", "secret2")
    assert client.get(f"/v1/images/{image_id(1)}/ancestry", headers=bob).get_json() == [image_id(1)]
    assert client.get("/v1/repositories/alice/app/tags", headers=bob).get_json() == {"latest": image_id(2)}
    layer = chain([image_id(5)])[0]
    client.put("/v1/repositories/alice/app/", data=json.dumps([{"id": image_id(5)}]),
               headers={**basic("alice", "secret1"), "X-Docker-Token": "true"}, content_type="application/json")
    assert pushed.put_json(layer, headers=bob).status_code == 403
    assert pushed.put_json(layer, headers=basic("alice", "secret1")).status_code == 200
    assert pushed.put_json(layer, headers=basic(*ADMIN)).status_code == 200
    bad = client.get(f"/v1/images/{image_id(1)}/json", headers=basic("bobby", "wrong"))
    assert bad.status_code == 401


# -- image json, layer and checksum -------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    (b"[]", "JSON object"),
    (b'{"id": "' + b"f" * 64 + b'"}', "the URL says"),
    (b'{"id": "%s", "parent": "%s"}' % (image_id(1).encode(), image_id(1).encode()), "own parent"),
    (b'{"id": "%s", "parent": "../x"}' % image_id(1).encode(), "invalid image id"),
    (b"{not json", "not valid JSON"),
])
def test_bad_image_json_is_400(client, alice, body, message):
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    reply = pusher.put_json(pusher.layers[0], data=body)
    assert reply.status_code == 400 and message in reply.get_json()["error"]


def test_complete_images_answer_409_image_already_exists_on_every_put(client, pushed):
    layer = pushed.layers[0]
    for reply in (pushed.put_json(layer), pushed.put_layer(layer), pushed.put_checksum(layer)):
        assert reply.status_code == 409
        assert reply.get_json() == {"error": "Image already exists"}


def test_checksum_needs_a_header_and_a_layer(client, alice):
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    layer = pusher.layers[0]
    pusher.put_json(layer)
    no_layer = pusher.put_checksum(layer)
    assert no_layer.status_code == 400 and "no layer yet" in no_layer.get_json()["error"]
    pusher.put_layer(layer)
    bare = client.put(f"/v1/images/{layer.image_id}/checksum", headers=pusher.token)
    assert bare.status_code == 400 and "header required" in bare.get_json()["error"]
    # docker 0.7/0.8 send only the tarsum: enough when it matches.
    only_tarsum = client.put(f"/v1/images/{layer.image_id}/checksum",
                             headers={**pusher.token, "X-Docker-Checksum": layer.tarsum})
    assert only_tarsum.status_code == 200


def test_not_a_tar_is_400_and_leaves_no_file(client, alice, app):
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    pusher.put_json(pusher.layers[0])
    reply = pusher.put_layer(pusher.layers[0], body=b"this is not a layer" * 100)
    assert reply.status_code == 400 and "nothing was stored" in reply.get_json()["error"]
    data_dir = app.config["DATA_DIR"]
    assert list((data_dir / "uploads").glob("*")) == []
    assert not (data_dir / "layers").exists() or list((data_dir / "layers").rglob("*.layer")) == []


def test_new_json_for_an_unfinished_image_drops_its_old_layer(client, alice, app):
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    layer = pusher.layers[0]
    pusher.put_json(layer)
    pusher.put_layer(layer)
    path = app.config["DATA_DIR"] / "layers" / image_id(1)[:2] / f"{image_id(1)}.layer"
    assert path.read_bytes() == layer.body
    changed = json.dumps({"id": image_id(1), "comment": "rebuilt"}).encode()
    assert pusher.put_json(layer, data=changed).status_code == 200
    assert not path.exists()
    assert pusher.put_checksum(layer).status_code == 400


@pytest.mark.parametrize("parent", ["", None])
def test_an_empty_or_null_parent_means_a_base_image(client, alice, app, parent):
    """docker omits an empty parent; docker-registry reads "" and null as none too (schema: nullable, may be "")."""
    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    layer = pusher.layers[0]
    body = json.dumps({"id": image_id(1), "parent": parent}).encode()
    assert pusher.put_json(layer, data=body).status_code == 200
    record = json.loads((app.config["DATA_DIR"] / "db" / "images" / "00.json").read_text())
    assert record["images"][image_id(1)]["parent"] is None
    assert record["images"][image_id(1)]["ancestry"] == [image_id(1)]


def test_image_records_are_sharded_by_id_prefix(client, pushed, app):
    shards = sorted(p.name for p in (app.config["DATA_DIR"] / "db" / "images").glob("*.json"))
    assert shards == ["00.json"]
    record = json.loads((app.config["DATA_DIR"] / "db" / "images" / "00.json").read_text())
    stored = record["images"][image_id(2)]
    assert stored["state"] == "complete" and stored["ancestry"] == [image_id(2), image_id(1)]
    assert stored["json"].encode() == pushed.layers[1].json_bytes


# -- tags -------------------------------------------------------------------------------------
def test_tag_rules(client, pushed):
    token = pushed.token
    put = lambda tag, value: client.put(f"/v1/repositories/alice/app/tags/{tag}", data=json.dumps(value),
                                        headers=token, content_type="application/json")
    assert put("v1", image_id(1)).status_code == 200
    assert put("v2", image_id(77)).status_code == 404          # unknown image
    assert put("bad tag", image_id(1)).status_code in (400, 404)
    assert put("v3", "not-an-id").status_code == 400
    reader = read_token(client, "alice/app")
    assert client.get("/v1/repositories/alice/app/tags/v1", headers=reader).get_json() == image_id(1)
    assert client.get("/v1/repositories/alice/app/tags/nope", headers=reader).status_code == 404
    # Deleting a tag needs delete rights: a write token is not enough, the owner's Basic is.
    assert client.delete("/v1/repositories/alice/app/tags/v1", headers=token).status_code == 403
    owner = basic("alice", "secret1")
    assert client.delete("/v1/repositories/alice/app/tags/v1", headers=owner).status_code == 200
    assert client.delete("/v1/repositories/alice/app/tags/v1", headers=owner).status_code == 404
    assert client.get("/v1/repositories/alice/app/tags", headers=reader).get_json() == {"latest": image_id(2)}
    assert client.get("/v1/repositories/alice/nothing/tags", headers=owner).status_code == 404


def test_library_tags_answer_on_both_url_forms_without_redirects(client, alice):
    pusher = Pusher(client, "busybox", chain([image_id(3)]), auth=ADMIN)
    pusher.upload_all()
    assert client.put("/v1/repositories/busybox/tags/latest", data=json.dumps(image_id(3)),
                      headers=pusher.token, content_type="application/json").status_code == 200
    reader = read_token(client, "busybox")
    for path in ("/v1/repositories/busybox/tags", "/v1/repositories/library/busybox/tags"):
        reply = client.get(path, headers=reader)
        assert reply.status_code == 200 and reply.get_json() == {"latest": image_id(3)}
    assert client.get("/v1/repositories/busybox/tags/latest", headers=reader).get_json() == image_id(3)


def test_registry_delete_needs_a_delete_token(client, pushed):
    assert client.delete("/v1/repositories/alice/app/", headers=pushed.token).status_code == 403
    started = client.delete("/v1/repositories/alice/app/",
                            headers={**basic("alice", "secret1"), "X-Docker-Token": "true"})
    assert started.status_code == 202
    delete_token = {"Authorization": "Token " + started.headers["X-Docker-Token"]}
    reply = client.delete("/v1/repositories/alice/app/tags", headers=delete_token)
    assert reply.status_code == 200
    # Tags and layers are gone; the index record waits for the final step.
    assert client.get("/v1/repositories/alice/app/tags", headers=delete_token).status_code == 403
    assert client.get(f"/v1/images/{image_id(1)}/json", headers=basic("alice", "secret1")).status_code == 404


# -- external registry mode -------------------------------------------------------------------
@pytest.fixture
def external(settings):
    return create_app({**settings, "REGISTRY_ENDPOINTS": "reg-a.example:5000,reg-b.example:5000"}).test_client()


def test_external_mode_turns_the_registry_off_and_serves_its_token_checks(external):
    assert external.post("/v1/users/", data=json.dumps({"username": "alice", "password": "secret1",
                                                        "email": "a@example.com"}),
                         content_type="application/json").status_code == 201
    announced = external.put("/v1/repositories/alice/app/",
                             data=json.dumps([{"id": image_id(1)}, {"id": image_id(2), "Tag": "latest"}]),
                             headers={**basic("alice", "secret1"), "X-Docker-Token": "true"},
                             content_type="application/json")
    assert announced.headers.getlist("X-Docker-Endpoints") == ["reg-a.example:5000", "reg-b.example:5000"]
    token = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
    # What docker-registry 0.9 (standalone=false) calls on every request it serves.
    checked = external.get("/v1/repositories/alice/app/images", headers=token)
    assert checked.status_code == 200
    assert [entry["id"] for entry in checked.get_json()] == [image_id(1), image_id(2)]
    assert external.get("/v1/repositories/alice/other/images", headers=token).status_code in (403, 404)
    assert external.get("/v1/repositories/alice/app/images",
                        headers={"Authorization": "Token signature=x,repository=\"alice/app\",access=write"}
                        ).status_code == 401
    access = f"/v1/repositories/alice/app/layer/{image_id(1)}/access"
    assert external.get(access, headers=token).get_json() == {"access": True}
    assert external.get(f"/v1/repositories/alice/app/layer/{image_id(7)}/access",
                        headers=token).get_json() == {"access": False}
    # The registry routes are not served here.
    assert external.get(f"/v1/images/{image_id(1)}/json", headers=token).status_code == 404
    assert external.get("/v1/repositories/alice/app/tags", headers=token).status_code == 404
    assert external.delete("/v1/repositories/alice/app/", headers=token).status_code == 401


# -- what a delete removes ------------------------------------------------------------------
def test_delete_keeps_parents_other_repositories_tag_through_ancestry(client, pushed, app):
    # alice/child announces only its own image, whose parent lives in alice/app.
    base = pushed.layers[-1]
    child = chain([image_id(3)])[0]
    child.parent = base.image_id
    other = Pusher(client, "alice/child", [child])
    other.upload_all()
    assert client.put("/v1/repositories/alice/child/tags/latest", data=json.dumps(image_id(3)),
                      headers=other.token, content_type="application/json").status_code == 200

    owner = basic("alice", "secret1")
    started = client.delete("/v1/repositories/alice/app/", headers={**owner, "X-Docker-Token": "true"})
    token = {"Authorization": "Token " + started.headers["X-Docker-Token"]}
    assert client.delete("/v1/repositories/alice/app/", headers=token).status_code == 200
    assert client.delete("/v1/repositories/alice/app/",
                         headers={**owner, "X-Docker-Endpoints": "http://localhost/v1/"}).status_code == 200

    layers_dir = app.config["DATA_DIR"] / "layers"
    kept = sorted(path.stem for path in layers_dir.rglob("*.layer"))
    assert kept == [image_id(1), image_id(2), image_id(3)]
    reader = read_token(client, "alice/child")
    assert client.get(f"/v1/images/{image_id(3)}/ancestry", headers=reader).get_json() == \
        [image_id(3), image_id(2), image_id(1)]

    # Without the final index step (a client that stops after step 2), a later index-only
    # delete still cleans up: deleting alice/child now frees everything.
    started = client.delete("/v1/repositories/alice/child/", headers={**owner, "X-Docker-Token": "true"})
    assert started.status_code == 202
    assert client.delete("/v1/repositories/alice/child/",
                         headers={**owner, "X-Docker-Endpoints": "http://localhost/v1/"}).status_code == 200
    assert list(layers_dir.rglob("*.layer")) == []
    assert json.loads((app.config["DATA_DIR"] / "db" / "images" / "00.json").read_text())["images"] == {}


def test_a_full_disk_during_an_upload_is_507_and_leaves_nothing(client, alice, app, monkeypatch):
    import errno
    import os

    from index.registry import layers as layers_module

    class FullDisk:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fsync(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

    pusher = Pusher(client, "alice/app", chain([image_id(1)]))
    layer = pusher.layers[0]
    pusher.put_json(layer)
    monkeypatch.setattr(layers_module, "os", FullDisk())
    reply = pusher.put_layer(layer)
    assert reply.status_code == 507 and "disk is full" in reply.get_json()["error"]
    monkeypatch.undo()
    assert list((app.config["DATA_DIR"] / "uploads").glob("*")) == []
    assert pusher.put_checksum(layer).status_code == 400      # still no layer
    assert pusher.put_layer(layer).status_code == 200          # and the next try works
    assert pusher.put_checksum(layer).status_code == 200


def test_cli_repository_delete_also_frees_unshared_layers(app, client, pushed):
    layers_dir = app.config["DATA_DIR"] / "layers"
    assert len(list(layers_dir.rglob("*.layer"))) == 2
    result = app.test_cli_runner().invoke(args=["repositories", "delete", "alice/app", "--yes"])
    assert result.exit_code == 0, result.output
    assert list(layers_dir.rglob("*.layer")) == []
    assert client.get(f"/v1/images/{image_id(2)}/json", headers=basic("alice", "secret1")).status_code == 404
