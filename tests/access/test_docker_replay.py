"""docker 1.x push and pull, replayed request by request against a real gunicorn server, on a
private repository: as its owner, as a writer and a reader someone granted, as a stranger, as a
robot; and docker-registry-client 0.5.2 reading without tokens (issue 12)."""
from __future__ import annotations

import json

import pytest
import requests
from docker_registry_client._BaseClient import BaseClientV1

from tests.conftest import image_id
from tests.registry.conftest import running_server
from tests.registry.layers import chain
from tests.registry.v1client import V1Client, basic_header

PASSWORD = "secret1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("access-server")
    with running_server(folder / "data", folder / "server.log",
                        extra_env={"INDEX_DEFAULT_VISIBILITY": "private"}) as started:
        yield started


def api(client: V1Client, method: str, path: str, value=None):
    body = json.dumps(value).encode() if value is not None else None
    return client.request(method, f"/api/v1{path}", body,
                          {**basic_header(*client.credentials), "Content-Type": "application/json"})


def test_private_repository_push_and_pull_by_role(server):
    owner = server.register("owner1")
    writer = server.register("writer1")
    reader = server.register("reader1")
    stranger = server.register("stranger1")
    second = chain([image_id(0xC00 + n) for n in range(3)], salt="replay")
    first = second[:2]
    owner.push("owner1/secret", first)
    for who, role in (("writer1", "write"), ("reader1", "read")):
        answer = api(owner, "PUT", f"/repository/owner1/secret/permissions/user/{who}", {"role": role})
        assert answer.status == 200, answer.body

    # The writer pushes a second image on top, under another tag; only new layers go up.
    report = writer.push("owner1/secret", second, tag="v2")
    assert report.uploaded == [second[-1].image_id] and report.skipped == [l.image_id for l in first]

    # The reader pulls both tags byte for byte, and cannot push.
    for tag, layers in (("latest", first), ("v2", second)):
        pulled = reader.pull("owner1/secret", tag)
        assert pulled == {layer.image_id: (layer.json_bytes, layer.body) for layer in layers}
    assert reader.announce("owner1/secret", first).status == 403

    # A stranger and an anonymous client see nothing: exactly what a missing repository answers.
    for client in (stranger, server.client()):
        headers = {"X-Docker-Token": "true", **(basic_header(*client.credentials) if client.credentials else {})}
        hidden = client.request("GET", "/v1/repositories/owner1/secret/images", headers=headers)
        missing = client.request("GET", "/v1/repositories/owner1/nothing/images", headers=headers)
        assert (hidden.status, missing.status) == (404, 404)
        assert hidden.json() == {"error": "repository owner1/secret not found"}
        assert missing.json() == {"error": "repository owner1/nothing not found"}
        assert client.request("GET", f"/v1/images/{first[-1].image_id}/layer", headers=headers).status == 404
    assert stranger.announce("owner1/secret", first).status == 403
    searched = stranger.request("GET", "/v1/search?q=secret", headers=basic_header(*stranger.credentials)).json()
    assert searched["num_results"] == 0
    assert reader.request("GET", "/v1/search?q=secret", headers=basic_header(*reader.credentials)).json()[
        "results"][0]["name"] == "owner1/secret"

    # Read grant removed: the reader's next pull finds nothing.
    token, registry = reader.read_token("owner1/secret")
    assert api(owner, "DELETE", "/repository/owner1/secret/permissions/user/reader1").status == 204
    assert reader.request("GET", "/v1/repositories/owner1/secret/tags",
                          headers={"Authorization": f"Token {token}"}, host=registry).status == 404


def test_robot_logs_in_pushes_and_pulls(server):
    owner = server.register("robotowner")
    made = api(owner, "PUT", "/user/robots/ci")
    assert made.status == 201
    robot_name, token = made.json()["name"], made.json()["token"]
    assert robot_name == "robotowner+ci"
    robot = server.client((robot_name, token))
    # docker login -u robotowner+ci -p <token>: the POST says "exists", the GET logs in.
    login = robot.request("POST", "/v1/users/", json.dumps({"username": robot_name, "password": token,
                                                           "email": "ci@example.com", "auth": ""}).encode(),
                          {"Content-Type": "application/json; charset=utf-8"})
    assert login.status == 400 and login.body == b'"Username or email already exists"'
    assert robot.request("GET", "/v1/users/", headers=basic_header(robot_name, token)).status == 200

    layers = chain([image_id(0xD00 + n) for n in range(2)], salt="robot")
    assert robot.announce("robotowner/app", layers).status == 403  # no grant: cannot create
    owner.push("robotowner/app", layers[:1])
    assert robot.announce("robotowner/app", layers).status == 403  # cannot see it either
    assert api(owner, "PUT", "/repository/robotowner/app/permissions/user/robotowner+ci",
               {"role": "write"}).status == 200
    report = robot.push("robotowner/app", layers, tag="ci")
    assert report.uploaded == [layers[1].image_id]
    assert robot.pull("robotowner/app", "ci") == {l.image_id: (l.json_bytes, l.body) for l in layers}

    # Regenerated: the old token stops at once, on every route.
    renewed = api(owner, "POST", "/user/robots/ci/regenerate").json()["token"]
    assert robot.request("GET", "/v1/users/", headers=basic_header(robot_name, token)).status == 401
    assert robot.request("GET", "/v1/repositories/robotowner/app/tags",
                         headers=basic_header(robot_name, token)).status == 401
    assert server.client((robot_name, renewed)).pull("robotowner/app", "ci")


def test_docker_registry_client_reads_public_anonymously_and_private_with_a_grant(server):
    owner = server.register("drcowner")
    reader = server.register("drcreader")
    layers = chain([image_id(0xE00 + n) for n in range(2)], salt="drc")
    owner.push("drcowner/open", layers)
    owner.push("drcowner/closed", layers)
    assert api(owner, "POST", "/repository/drcowner/open/changevisibility", {"visibility": "public"}).status == 200
    assert api(owner, "PUT", "/repository/drcowner/closed/permissions/user/drcreader", {"role": "read"}).status == 200

    anonymous = BaseClientV1(f"http://{server.host}")
    assert anonymous.get_repository_tags("drcowner", "open") == {"latest": layers[-1].image_id}
    assert anonymous.get_image_ancestry(layers[-1].image_id) == [l.image_id for l in reversed(layers)]
    for layer in layers:
        assert anonymous.get_image_layer(layer.image_id)["id"] == layer.image_id
        response = anonymous._http_response(BaseClientV1.IMAGE_LAYER, requests.get, image_id=layer.image_id)
        assert response.content == layer.body
    with pytest.raises(requests.HTTPError) as refused:
        anonymous.get_repository_tags("drcowner", "closed")
    assert refused.value.response.status_code == 404

    granted = BaseClientV1(f"http://{server.host}", username=reader.credentials[0], password=PASSWORD)
    assert granted.get_repository_tags("drcowner", "closed") == {"latest": layers[-1].image_id}
