"""Repositories: PUT/DELETE repo, PUT/GET images, PUT auth, layer access (seed 2.1; protocol.md 4, 5, 8, 9)."""
from __future__ import annotations

import io
import json
import re

import pytest
from itsdangerous.timed import TimestampSigner

from index import create_app
from index.services import EXTENSION_KEY
from tests.conftest import ADMIN, DockerActions, basic, disk_state, image_id

WIRE_RE = re.compile(r'signature=[A-Za-z0-9_.\-]+,repository="([^"]+)",access=(read|write|delete)')
CHAIN = [{"id": image_id(1)}, {"id": image_id(2)}, {"id": image_id(3), "Tag": "latest"}]
ALICE = ("alice", "secret1")


def ids(response) -> list[str]:
    return [entry["id"] for entry in response.get_json()]


def signer(client):
    return client.application.extensions[EXTENSION_KEY].signer


def data_dir(client):
    return client.application.config["DATA_DIR"]


def assert_token_headers(response, repository: str, access: str, endpoints=("localhost",)) -> str:
    token = response.headers["X-Docker-Token"]
    match = WIRE_RE.fullmatch(token)
    assert match, token
    assert match.groups() == (repository, access)
    assert response.headers["WWW-Authenticate"] == f"Token {token}"
    assert response.headers.getlist("X-Docker-Endpoints") == list(endpoints)
    return token


def put(client, url, body, headers=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.put(url, data=data, headers=headers or {}, content_type=content_type)


@pytest.fixture
def pushed(alice):
    """alice/app announced with CHAIN; returns the write token."""
    response = alice.put_repository("alice/app", CHAIN)
    assert response.status_code == 200
    return response.headers["X-Docker-Token"]


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 1_700_000_000}
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now["t"])
    return now


# -- PUT /v1/repositories/<ns>/<repo>/ ----------------------------------------------------------

@pytest.mark.parametrize("url", ["/v1/repositories/alice/app/", "/v1/repositories/alice/app"])
def test_put_repository_creates_and_hands_out_a_write_token(alice, client, store, url):
    response = put(client, url, CHAIN, {**basic(*ALICE), "X-Docker-Token": "true"})
    assert response.status_code == 200
    assert response.data == b'""'
    assert response.mimetype == "application/json"
    assert_token_headers(response, "alice/app", "write")
    assert response.headers["Cache-Control"] == "no-store"
    record = store.get_repository("alice", "app")
    assert [entry["id"] for entry in record["images"]] == [image_id(1), image_id(2), image_id(3)]
    assert record["owner"] == "alice"


def test_put_repository_spelled_content_type_like_docker_15(alice, client):
    # docker 1.5 sends "Content-type" (Werkzeug headers are case-insensitive anyway).
    response = client.put("/v1/repositories/alice/app/", data=json.dumps(CHAIN),
                          headers={**basic(*ALICE), "X-Docker-Token": "true", "Content-type": "application/json"})
    assert response.status_code == 200


def test_repush_answers_200_with_a_fresh_token_and_merges(pushed, alice, store):
    again = alice.put_repository("alice/app", [{"id": image_id(3)}, {"id": image_id(4), "Tag": "v2"}])
    assert again.status_code == 200                       # never 409 for the owner
    assert_token_headers(again, "alice/app", "write")
    images = store.get_repository("alice", "app")["images"]
    assert [entry["id"] for entry in images] == [image_id(n) for n in (1, 2, 3, 4)]


def test_first_known_checksum_is_kept(alice, store):
    first = "tarsum+sha256:" + "1" * 64
    alice.put_repository("alice/app", [{"id": image_id(1), "checksum": first}])
    alice.put_repository("alice/app", [{"id": image_id(1), "checksum": "tarsum+sha256:" + "2" * 64}])
    assert store.get_repository("alice", "app")["images"] == [{"id": image_id(1), "checksum": first}]


def test_library_repository_needs_an_admin(alice, client, store):
    refused = alice.put_repository("busybox", CHAIN)
    assert refused.status_code == 403
    assert "administrators" in refused.get_json()["error"]
    refused = alice.put_repository("library/busybox", CHAIN)
    assert refused.status_code == 403
    assert store.get_repository("library", "busybox") is None
    created = alice.put_repository("busybox", CHAIN, auth=ADMIN)
    assert created.status_code == 200
    assert_token_headers(created, "library/busybox", "write")


def test_admin_may_write_any_namespace(alice, store):
    response = alice.put_repository("alice/tools", CHAIN, auth=ADMIN)
    assert response.status_code == 200
    assert_token_headers(response, "alice/tools", "write")


@pytest.mark.parametrize("auth,status", [
    (None, 401),
    (("", ""), 401),                    # "Basic Og==": docker pushing without login -> it offers to log in
    (("alice", "wrong1"), 401),
    (("nobody", "secret1"), 401),
])
def test_put_repository_needs_a_login(alice, client, auth, status):
    headers = {"X-Docker-Token": "true", **(basic(*auth) if auth else {})}
    before = disk_state(data_dir(client))
    response = put(client, "/v1/repositories/alice/app/", CHAIN, headers)
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "X-Docker-Token" not in response.headers
    assert disk_state(data_dir(client)) == before


def test_put_repository_of_another_namespace_is_403(alice, docker, client):
    docker.register("bob_1", "secret2")
    before = disk_state(data_dir(client))
    response = docker.put_repository("alice/app", CHAIN, auth=("bob_1", "secret2"))
    assert response.status_code == 403
    assert "alice" in response.get_json()["error"]
    assert disk_state(data_dir(client)) == before


def test_put_repository_by_an_inactive_account_is_403(alice, store):
    store.update_user("alice", active=False)
    response = alice.put_repository("alice/app", CHAIN)
    assert response.status_code == 403
    assert store.get_repository("alice", "app") is None


BAD_BODIES = [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"[", "not valid JSON"),
    (b"{\"id\": 1", "not valid JSON"),
    (b"\xff\xfe[]", "UTF-8"),
    (b"[\"a\x00\"]", "not valid JSON"),                       # raw control character
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"{}", "JSON list"),
    (b"\"x\"", "JSON list"),
    (b"null", "JSON list"),
    (b"[1]", "image 0 must be a JSON object"),
    (b"[{}]", "has no \"id\""),
    (json.dumps([{"id": "a" * 63}]).encode(), "image id"),
    (json.dumps([{"id": "A" * 64}]).encode(), "image id"),
    (json.dumps([{"id": "a" * 64 + "\n"}]).encode(), "image id"),
    (json.dumps([{"id": 5}]).encode(), "image id must be a string"),
    (json.dumps([{"id": image_id(1)}, {"id": "../etc/passwd"}]).encode(), "image id"),
    (json.dumps([{"id": image_id(1), "checksum": 7}]).encode(), "checksum"),
    (json.dumps([{"id": image_id(1), "checksum": "md5"}]).encode(), "checksum"),
    (json.dumps([{"id": image_id(1), "Tag": "no spaces"}]).encode(), "tag"),
    (json.dumps([{"id": image_id(1), "Tag": 1}]).encode(), "tag"),
]


@pytest.mark.parametrize("raw,message", BAD_BODIES)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_put_repository_bad_bodies_are_400_and_write_nothing(alice, client, raw, message, existing):
    if existing:
        assert alice.put_repository("alice/app", [{"id": image_id(9)}]).status_code == 200
    before = disk_state(data_dir(client))
    response = put(client, "/v1/repositories/alice/app/", raw, {**basic(*ALICE), "X-Docker-Token": "true"})
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert "X-Docker-Token" not in response.headers
    assert disk_state(data_dir(client)) == before


BAD_NAMES = [
    ("alice/App", "repository"),
    ("alice/a..b", "repository"),
    ("alice/..", "repository"),
    ("alice/app%0A", "repository"),          # trailing newline
    ("alice/app%00", "NUL"),
    ("alice/a%20b", "repository"),
    ("Alice/app", "namespace"),
    ("al--ice/app", "namespace"),
    ("a/app", "namespace"),
    ("..", "repository"),                    # library form
    ("App", "repository"),
]


@pytest.mark.parametrize("remote,field", BAD_NAMES)
def test_put_repository_bad_names_are_400(alice, client, remote, field):
    before = disk_state(data_dir(client))
    response = put(client, f"/v1/repositories/{remote}/", CHAIN, {**basic(*ADMIN), "X-Docker-Token": "true"})
    assert response.status_code == 400
    assert field in response.get_json()["error"]
    assert disk_state(data_dir(client)) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/octet-stream"])
def test_put_repository_other_content_types_are_415(alice, client, content_type):
    response = put(client, "/v1/repositories/alice/app/", CHAIN, basic(*ALICE), content_type=content_type)
    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/vnd.docker.index+json", None])
def test_put_repository_json_content_types(alice, client, content_type):
    response = client.put("/v1/repositories/alice/app/", data=json.dumps(CHAIN), headers=basic(*ALICE),
                          **({"content_type": content_type} if content_type else {}))
    assert response.status_code == 200


def test_oversize_body_is_413(settings):
    client = create_app({**settings, "MAX_JSON_BYTES": 1000}).test_client()
    body = json.dumps([{"id": image_id(n)} for n in range(50)])
    response = put(client, "/v1/repositories/busybox/", body, basic(*ADMIN))
    assert response.status_code == 413
    assert "1000 bytes" in response.get_json()["error"]


def test_oversize_chunked_body_is_413(settings):
    client = create_app({**settings, "MAX_JSON_BYTES": 1000}).test_client()
    body = json.dumps([{"id": image_id(n)} for n in range(50)]).encode()
    # No Content-Length: the limit must hold while reading. gunicorn marks such input as
    # terminated (wsgi.input_terminated), so Werkzeug hands the stream through.
    chunked = {"headers": {**basic(*ADMIN), "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
               "environ_overrides": {"wsgi.input_terminated": True}}
    response = client.put("/v1/repositories/busybox/", input_stream=io.BytesIO(body), **chunked)
    assert response.status_code == 413
    small = client.put("/v1/repositories/busybox/", input_stream=io.BytesIO(b"[]"), **chunked)
    assert small.status_code == 200


@pytest.mark.parametrize("configured,expected", [
    ("registry-1.example:5000", ["registry-1.example:5000"]),
    ("r1.example:5000, r2.example", ["r1.example:5000", "r2.example"]),   # one header line each
])
def test_configured_endpoints(settings, configured, expected):
    client = create_app({**settings, "REGISTRY_ENDPOINTS": configured}).test_client()
    response = put(client, "/v1/repositories/busybox/", CHAIN, basic(*ADMIN))
    assert_token_headers(response, "library/busybox", "write", expected)


def test_default_endpoint_is_the_request_host(alice, client):
    response = client.put("/v1/repositories/alice/app/", data=json.dumps(CHAIN), headers=basic(*ALICE),
                          content_type="application/json", base_url="http://127.0.0.1:5000")
    assert response.headers.getlist("X-Docker-Endpoints") == ["127.0.0.1:5000"]   # bare host:port


# -- repositories whose names look like suffixes --------------------------------------------------

@pytest.mark.parametrize("repo", ["images", "auth", "layer"])
def test_user_repositories_named_like_suffixes(alice, store, repo):
    assert alice.put_repository(f"alice/{repo}", CHAIN).status_code == 200
    assert store.get_repository("alice", repo) is not None
    assert alice.put_images(f"alice/{repo}", []).status_code == 204
    assert ids(alice.get_images(f"alice/{repo}")) == [image_id(n) for n in (1, 2, 3)]
    assert store.get_repository("library", "alice") is None


# -- PUT .../images -------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [[], [{"id": image_id(2)}]])
def test_put_images_merges_and_answers_exactly_204(pushed, alice, store, body):
    response = alice.put_images("alice/app", body)
    assert response.status_code == 204
    assert response.data == b""
    assert len(store.get_repository("alice", "app")["images"]) == 3


def test_put_images_adds_checksums_and_new_ids(pushed, alice, store):
    checksum = "tarsum+sha256:" + "c" * 64
    response = alice.put_images("alice/app", [{"id": image_id(3), "checksum": checksum, "Tag": "latest"},
                                              {"id": image_id(5), "checksum": checksum}])
    assert response.status_code == 204
    images = store.get_repository("alice", "app")["images"]
    assert images == [{"id": image_id(1)}, {"id": image_id(2)}, {"id": image_id(3), "checksum": checksum},
                      {"id": image_id(5), "checksum": checksum}]


def test_put_images_of_an_unknown_repository_is_404(alice, client):
    before = disk_state(data_dir(client))
    response = alice.put_images("alice/nothing", [])
    assert response.status_code == 404
    assert "alice/nothing" in response.get_json()["error"]
    assert disk_state(data_dir(client)) == before


def test_put_images_library(alice):
    assert alice.put_repository("busybox", CHAIN, auth=ADMIN).status_code == 200
    assert alice.put_images("busybox", [], auth=ADMIN).status_code == 204
    assert alice.put_images("library/busybox", [], auth=ADMIN).status_code == 204
    assert alice.put_images("busybox", []).status_code == 403


@pytest.mark.parametrize("auth,status", [(("", ""), 401), (("alice", "wrong1"), 401), (ADMIN, 204)])
def test_put_images_auth(pushed, alice, auth, status):
    assert alice.put_images("alice/app", [], auth=auth).status_code == status


def test_put_images_other_user_is_403(pushed, docker):
    docker.register("bob_1", "secret2")
    assert docker.put_images("alice/app", [], auth=("bob_1", "secret2")).status_code == 403


@pytest.mark.parametrize("raw,message", BAD_BODIES)
def test_put_images_bad_bodies_are_400_and_write_nothing(pushed, client, raw, message):
    before = disk_state(data_dir(client))
    response = put(client, "/v1/repositories/alice/app/images", raw, basic(*ALICE))
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert disk_state(data_dir(client)) == before


# -- GET .../images -------------------------------------------------------------------------------

def test_anonymous_pull_gets_the_list_and_a_read_token(pushed, client):
    response = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true"})
    assert response.status_code == 200
    assert response.get_json() == CHAIN[:2] + [{"id": image_id(3)}]   # "Tag" is not stored
    token = assert_token_headers(response, "alice/app", "read")
    assert signer(client).verify(token).user is None


def test_pull_with_basic_gets_a_token_of_that_user(pushed, client):
    response = client.get("/v1/repositories/alice/app/images",
                          headers={"X-Docker-Token": "true", **basic(*ALICE)})
    assert response.status_code == 200
    assert signer(client).verify(response.headers["X-Docker-Token"]).user == "alice"


def test_pull_with_empty_basic_is_anonymous(pushed, client):
    response = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true", **basic("", "")})
    assert response.status_code == 200
    assert signer(client).verify(response.headers["X-Docker-Token"]).user is None


def test_pull_without_token_request_has_endpoints_but_no_token(pushed, client):
    response = client.get("/v1/repositories/alice/app/images")
    assert response.status_code == 200
    assert "X-Docker-Token" not in response.headers
    assert response.headers.getlist("X-Docker-Endpoints") == ["localhost"]


def test_pull_with_wrong_basic_is_401(pushed, client):
    response = client.get("/v1/repositories/alice/app/images",
                          headers={"X-Docker-Token": "true", **basic("alice", "wrong1")})
    assert response.status_code == 401


def test_pull_by_an_inactive_account_is_403(pushed, client, store):
    store.update_user("alice", active=False)
    response = client.get("/v1/repositories/alice/app/images",
                          headers={"X-Docker-Token": "true", **basic(*ALICE)})
    assert response.status_code == 403


@pytest.mark.parametrize("remote", ["alice/nothing", "nothing", "library/nothing"])
def test_pull_of_an_unknown_repository_is_404(alice, client, remote):
    response = client.get(f"/v1/repositories/{remote}/images", headers={"X-Docker-Token": "true"})
    assert response.status_code == 404
    assert "X-Docker-Token" not in response.headers
    assert response.get_json()["error"].endswith("not found")


@pytest.mark.parametrize("remote,field", BAD_NAMES)
def test_pull_bad_names_are_400(client, remote, field):
    response = client.get(f"/v1/repositories/{remote}/images", headers={"X-Docker-Token": "true"})
    assert response.status_code == 400
    assert field in response.get_json()["error"]


def test_library_pull_both_forms(alice):
    assert alice.put_repository("busybox", CHAIN, auth=ADMIN).status_code == 200
    for remote in ("busybox", "library/busybox"):
        response = alice.get_images(remote)
        assert response.status_code == 200
        assert_token_headers(response, "library/busybox", "read")


# -- GET .../images as a registry validating a token (protocol.md 9) ------------------------------

def test_write_token_validates_and_lists_announced_ids_before_any_checksum(pushed, alice):
    for _ in range(3):
        response = alice.validate("alice/app", pushed)
        assert response.status_code == 200
        assert ids(response) == [image_id(1), image_id(2), image_id(3)]
        assert "X-Docker-Token" not in response.headers


@pytest.mark.parametrize("form", ["Token {t}", "token {t}", "Token {t},{t}", "Token {t}, {t}"])
def test_token_header_forms(pushed, client, form):
    response = client.get("/v1/repositories/alice/app/images",
                          headers={"Authorization": form.format(t=pushed)})
    assert response.status_code == 200


def test_read_token_validates(pushed, alice):
    read = alice.get_images("alice/app").headers["X-Docker-Token"]
    assert alice.validate("alice/app", read).status_code == 200


def test_token_of_another_repository_is_403(pushed, alice):
    assert alice.put_repository("alice/other", CHAIN).status_code == 200
    response = alice.validate("alice/other", pushed)
    assert response.status_code == 403
    assert "alice/app" in response.get_json()["error"]


@pytest.mark.parametrize("tamper", [
    lambda t: t.replace("access=write", "access=read"),
    lambda t: t.replace('repository="alice/app"', 'repository="alice/other"'),
    lambda t: t.replace("signature=", "signature=x"),
    lambda t: "signature=abc,repository=\"alice/app\",access=write",
    lambda t: "",
    lambda t: "garbage",
])
def test_invalid_token_is_401_with_a_token_challenge(pushed, alice, tamper):
    response = alice.validate("alice/app", tamper(pushed))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert response.get_json()["error"]


def test_expired_token_is_401(alice, client, clock):
    token = alice.put_repository("alice/app", CHAIN).headers["X-Docker-Token"]
    clock["t"] += client.application.config["TOKEN_TTL"] + 1
    response = alice.validate("alice/app", token)
    assert response.status_code == 401
    assert "expired" in response.get_json()["error"]


def test_token_ttl_setting(settings, clock):
    client = create_app({**settings, "TOKEN_TTL": "30"}).test_client()
    token = put(client, "/v1/repositories/busybox/", CHAIN, basic(*ADMIN)).headers["X-Docker-Token"]
    clock["t"] += 30
    assert client.get("/v1/repositories/busybox/images", headers={"Authorization": f"Token {token}"}).status_code == 200
    clock["t"] += 1
    assert client.get("/v1/repositories/busybox/images", headers={"Authorization": f"Token {token}"}).status_code == 401


def test_token_from_another_secret_key_is_401(pushed, settings, tmp_path):
    other = create_app({**settings, "SECRET_KEY": "another", "DATA_DIR": tmp_path / "other"}).test_client()
    put(other, "/v1/repositories/busybox/", CHAIN, basic(*ADMIN))
    foreign = put(other, "/v1/repositories/busybox/", CHAIN, basic(*ADMIN)).headers["X-Docker-Token"]
    client = create_app(settings).test_client()
    put(client, "/v1/repositories/busybox/", CHAIN, basic(*ADMIN))
    response = client.get("/v1/repositories/busybox/images", headers={"Authorization": f"Token {foreign}"})
    assert response.status_code == 401


def test_write_token_of_a_deactivated_account_is_401(pushed, alice, store):
    store.update_user("alice", active=False)
    assert alice.validate("alice/app", pushed).status_code == 401


def test_write_token_of_a_demoted_admin_is_403(alice, store):
    token = alice.put_repository("alice/app", CHAIN, auth=ADMIN).headers["X-Docker-Token"]
    store.update_user(ADMIN[0], admin=False)
    assert alice.validate("alice/app", token).status_code == 403


def test_library_token_validates_on_both_url_forms(alice):
    token = alice.put_repository("busybox", CHAIN, auth=ADMIN).headers["X-Docker-Token"]
    assert alice.validate("busybox", token).status_code == 200
    assert alice.validate("library/busybox", token).status_code == 200


def test_valid_token_for_a_repository_that_does_not_exist_is_404(alice, client):
    token = signer(client).issue("alice/ghost", "read", None)
    assert alice.validate("alice/ghost", token).status_code == 404


# -- PUT .../auth --------------------------------------------------------------------------------

@pytest.mark.parametrize("remote", ["alice/app"])
def test_auth_ok_for_a_valid_token(pushed, client, remote):
    response = client.put(f"/v1/repositories/{remote}/auth", headers={"Authorization": f"Token {pushed}"})
    assert response.status_code == 200
    assert response.data == b'"OK"'


def test_auth_library_both_forms(alice, client):
    token = alice.put_repository("busybox", CHAIN, auth=ADMIN).headers["X-Docker-Token"]
    for remote in ("busybox", "library/busybox"):
        response = client.put(f"/v1/repositories/{remote}/auth", headers={"Authorization": f"Token {token}"})
        assert response.status_code == 200


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Token garbage"},
    {"Authorization": "Token signature=abc,repository=\"alice/app\",access=write"},
    basic(*ALICE),                                           # Basic is not a token
])
def test_auth_refused_is_403(pushed, client, headers):
    response = client.put("/v1/repositories/alice/app/auth", headers=headers)
    assert response.status_code == 403
    assert "permission denied" in response.get_json()["error"]


def test_auth_with_a_token_of_another_repository_is_403(pushed, alice, client):
    alice.put_repository("alice/other", CHAIN)
    response = client.put("/v1/repositories/alice/other/auth", headers={"Authorization": f"Token {pushed}"})
    assert response.status_code == 403


def test_auth_of_an_unknown_repository_is_404(alice, client):
    from index.store import generation_of
    alice_record = client.application.extensions["docker_index"].store.find_user("alice")
    token = signer(client).issue("alice/ghost", "write", "alice", generation=generation_of(alice_record))
    response = client.put("/v1/repositories/alice/ghost/auth", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 404


# -- GET .../layer/<id>/access ---------------------------------------------------------------------

@pytest.mark.parametrize("n,expected", [(1, True), (3, True), (9, False)])
def test_layer_access(pushed, client, n, expected):
    response = client.get(f"/v1/repositories/alice/app/layer/{image_id(n)}/access",
                          headers={"Authorization": f"Token {pushed}"})
    assert response.status_code == 200
    assert response.get_json() == {"access": expected}


def test_layer_access_with_a_token_of_another_repository_is_false(pushed, alice, client):
    alice.put_repository("alice/other", CHAIN)
    response = client.get(f"/v1/repositories/alice/other/layer/{image_id(1)}/access",
                          headers={"Authorization": f"Token {pushed}"})
    assert response.status_code == 200
    assert response.get_json() == {"access": False}


def test_layer_access_library(alice, client):
    token = alice.put_repository("busybox", CHAIN, auth=ADMIN).headers["X-Docker-Token"]
    response = client.get(f"/v1/repositories/busybox/layer/{image_id(2)}/access",
                          headers={"Authorization": f"Token {token}"})
    assert response.get_json() == {"access": True}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token garbage"}, basic(*ALICE)])
def test_layer_access_without_a_valid_token_is_401(pushed, client, headers):
    # docker-registry treats any non-200 as "no access".
    response = client.get(f"/v1/repositories/alice/app/layer/{image_id(1)}/access", headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize("bad_id", ["a" * 63, "A" * 64, "zz"])
def test_layer_access_bad_id_is_400(pushed, client, bad_id):
    response = client.get(f"/v1/repositories/alice/app/layer/{bad_id}/access",
                          headers={"Authorization": f"Token {pushed}"})
    assert response.status_code == 400
    assert "image id" in response.get_json()["error"]


# -- DELETE (protocol.md 8) -----------------------------------------------------------------------

def delete(client, remote, auth=ALICE, confirm=False):
    headers = {**basic(*auth), "X-Docker-Token": "true"}
    if confirm:
        headers["X-Docker-Endpoints"] = "localhost"
    return client.delete(f"/v1/repositories/{remote}/", headers=headers)


def test_delete_first_call_hides_and_hands_out_a_delete_token(pushed, alice, client, store):
    response = delete(client, "alice/app")
    assert response.status_code == 202
    assert response.data == b'""'
    token = assert_token_headers(response, "alice/app", "delete")
    assert store.get_repository("alice", "app")["state"] == "deleting"
    # Hidden: no pull, no search, no image update, no validation with the old write token...
    assert alice.get_images("alice/app").status_code == 404
    assert client.get("/v1/search?q=app").get_json()["num_results"] == 0
    assert alice.put_images("alice/app", []).status_code == 404
    assert alice.validate("alice/app", pushed).status_code == 404
    # ...but a registry can still check the delete token (both ways).
    checked = alice.validate("alice/app", token)
    assert checked.status_code == 200
    assert ids(checked) == [image_id(1), image_id(2), image_id(3)]
    auth_call = client.put("/v1/repositories/alice/app/auth", headers={"Authorization": f"Token {token}"})
    assert auth_call.status_code == 200


def test_delete_confirmation_removes_the_records(pushed, alice, client, store):
    token = delete(client, "alice/app").headers["X-Docker-Token"]
    response = delete(client, "alice/app", confirm=True)
    assert response.status_code == 200
    assert store.get_repository("alice", "app") is None
    assert alice.validate("alice/app", token).status_code == 404
    # The name is free again.
    assert alice.put_repository("alice/app", [{"id": image_id(8)}]).status_code == 200
    assert ids(alice.get_images("alice/app")) == [image_id(8)]


def test_repush_during_deletion_reopens_the_repository(pushed, alice, client):
    delete(client, "alice/app")
    assert alice.put_repository("alice/app", CHAIN).status_code == 200
    assert alice.get_images("alice/app").status_code == 200


def test_delete_library_needs_an_admin(alice, client, store):
    alice.put_repository("busybox", CHAIN, auth=ADMIN)
    assert delete(client, "busybox").status_code == 403
    assert delete(client, "busybox", auth=ADMIN).status_code == 202
    assert delete(client, "library/busybox", auth=ADMIN, confirm=True).status_code == 200
    assert store.get_repository("library", "busybox") is None


def test_admin_may_delete_a_users_repository(pushed, client):
    response = delete(client, "alice/app", auth=ADMIN)
    assert response.status_code == 202
    assert_token_headers(response, "alice/app", "delete")


@pytest.mark.parametrize("auth,status", [(("", ""), 401), (("alice", "wrong1"), 401)])
def test_delete_needs_a_login(pushed, client, store, auth, status):
    assert delete(client, "alice/app", auth=auth).status_code == status
    assert store.get_repository("alice", "app")["state"] == "active"


def test_delete_by_another_user_is_403(pushed, docker, client, store):
    docker.register("bob_1", "secret2")
    assert delete(client, "alice/app", auth=("bob_1", "secret2")).status_code == 403
    assert delete(client, "alice/app", auth=("bob_1", "secret2"), confirm=True).status_code == 403
    assert store.get_repository("alice", "app")["state"] == "active"


def test_delete_by_an_inactive_owner_is_403(pushed, client, store):
    store.update_user("alice", active=False)
    assert delete(client, "alice/app").status_code == 403


@pytest.mark.parametrize("confirm", [False, True])
def test_delete_of_an_unknown_repository_is_404(alice, client, confirm):
    assert delete(client, "alice/ghost", confirm=confirm).status_code == 404


@pytest.mark.parametrize("remote,field", BAD_NAMES)
def test_delete_bad_names_are_400(alice, client, remote, field):
    response = delete(client, remote, auth=ADMIN)
    assert response.status_code == 400
    assert field in response.get_json()["error"]


def test_delete_without_a_registry_and_with_a_token_is_401(settings):
    # External-registry mode: no registry side here, so a Token DELETE is an index call without Basic.
    app = create_app({**settings, "REGISTRY_ENDPOINTS": "registry.example:5001"})
    client = app.test_client()
    docker = DockerActions(client)
    assert docker.register("alice", "secret1").status_code == 201
    assert docker.put_repository("alice/app", CHAIN).status_code == 200
    token = delete(client, "alice/app").headers["X-Docker-Token"]
    response = client.delete("/v1/repositories/alice/app/", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 401
    assert app.extensions[EXTENSION_KEY].store.get_repository("alice", "app") is not None


@pytest.mark.parametrize("method,url", [
    ("post", "/v1/repositories/alice/app/"),
    ("get", "/v1/repositories/alice/app/"),
    ("delete", "/v1/repositories/alice/app/images"),
    ("post", "/v1/repositories/alice/app/images"),
    ("get", "/v1/repositories/alice/app/auth"),
    ("put", f"/v1/repositories/alice/app/layer/{image_id(1)}/access"),
])
def test_other_methods_are_405_json(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert response.get_json()["error"]
    assert response.headers["Allow"]


# -- X-Docker-Endpoints from the Host header ----------------------------------------------------

@pytest.mark.parametrize("host", [
    "docker_index:5000",        # a compose service name: Werkzeug's host check refuses "_"
    "127.0.0.1:5000",
    "index.example.org",
    "[::1]:5000",
])
def test_endpoint_is_the_host_the_client_used(alice, client, host):
    response = put(client, "/v1/repositories/alice/app/", CHAIN, {**basic(*ALICE), "Host": host})
    assert response.status_code == 200
    assert response.headers.getlist("X-Docker-Endpoints") == [host]
    pulled = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true", "Host": host})
    assert pulled.headers.getlist("X-Docker-Endpoints") == [host]


@pytest.mark.parametrize("host", ["evil.example/x", "a,b", "a b", "http://x", "x:y:z", "h\x7f"])
@pytest.mark.parametrize("method", ["put", "delete"])
def test_unusable_host_header_is_400_before_any_write(pushed, client, host, method):
    # An empty or mangled X-Docker-Endpoints would send the client to "http:///v1/".
    before = disk_state(data_dir(client))
    headers = {**basic(*ALICE), "Host": host, "X-Docker-Token": "true"}
    if method == "put":
        response = put(client, "/v1/repositories/alice/app/", CHAIN + [{"id": image_id(7)}], headers)
    else:
        response = client.delete("/v1/repositories/alice/app/", headers=headers)
    assert response.status_code == 400
    assert "INDEX_REGISTRY_ENDPOINTS" in response.get_json()["error"]
    assert "X-Docker-Endpoints" not in response.headers
    assert disk_state(data_dir(client)) == before


def test_configured_endpoints_do_not_need_the_host_header(settings):
    client = create_app({**settings, "REGISTRY_ENDPOINTS": "registry.example:5000"}).test_client()
    response = put(client, "/v1/repositories/busybox/", CHAIN, {**basic(*ADMIN), "Host": "bad host"})
    assert response.status_code == 200
    assert response.headers.getlist("X-Docker-Endpoints") == ["registry.example:5000"]


def test_delete_confirmation_needs_no_endpoint(pushed, client, store):
    delete(client, "alice/app")
    response = client.delete("/v1/repositories/alice/app/",
                             headers={**basic(*ALICE), "Host": "bad host", "X-Docker-Endpoints": "localhost"})
    assert response.status_code == 200
    assert store.get_repository("alice", "app") is None


def test_pull_with_an_unusable_host_header_is_400(pushed, client):
    response = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true", "Host": "a b"})
    assert response.status_code == 400
    assert "X-Docker-Token" not in response.headers


def test_delete_with_a_token_goes_to_the_registry_side_when_one_is_installed(pushed, app, client, store, monkeypatch):
    # protocol.md 12.15: the same URL is the index call (Basic) and the registry call (Token).
    from flask import Response

    seen = []

    class FakeRegistry:
        def delete_repository(self, name):
            seen.append(name.full)
            return Response("registry", 200)

    monkeypatch.setattr(app.extensions[EXTENSION_KEY], "registry", FakeRegistry())
    token = delete(client, "alice/app").headers["X-Docker-Token"]         # Basic: index, 202
    response = client.delete("/v1/repositories/alice/app/", headers={"Authorization": f"Token {token}"})
    assert (response.status_code, response.data, seen) == (200, b"registry", ["alice/app"])
    assert store.get_repository("alice", "app")["state"] == "deleting"      # the index confirm is separate
    bare = client.delete("/v1/repositories/busybox/", headers={"Authorization": f"Token {token}"})
    assert bare.status_code == 200 and seen[-1] == "library/busybox"
