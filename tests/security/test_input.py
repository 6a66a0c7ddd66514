"""Hostile input: every request here gets a clear 4xx JSON error and changes nothing on disk."""
from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path

import pytest

from tests.conftest import ADMIN, basic, image_id

NESTED = "[" * 5000 + "]" * 5000
MODERATELY_NESTED = "[" * 40 + "]" * 40  # under Python's recursion limit, over ours


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under the data dir with a hash of its bytes (lock files are not data)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.name.endswith(".lock")}


@pytest.fixture
def seeded(alice, settings):
    """alice with one repository, and the data dir's state to compare against."""
    assert alice.put_repository("alice/app", [{"id": image_id(1)}]).status_code == 200
    return settings["DATA_DIR"]


ALICE = basic("alice", "secret1")
JSON_HEADERS = {**ALICE, "Content-Type": "application/json"}

BAD_BODIES = [
    pytest.param(NESTED, 400, id="deeply-nested"),
    pytest.param(MODERATELY_NESTED, 400, id="nested-past-limit"),
    pytest.param('{"id": "' + "a" * 64 + '"}', 400, id="object-not-list"),
    pytest.param('"just a string"', 400, id="string"),
    pytest.param("[1, 2, 3]", 400, id="numbers"),
    pytest.param('[{"id": 12345}]', 400, id="id-wrong-type"),
    pytest.param('[{"id": null}]', 400, id="id-null"),
    pytest.param('[{"id": "' + "a" * 64 + '\\n"}]', 400, id="id-trailing-newline"),
    pytest.param('[{"id": "' + "a" * 63 + '\\u0000"}]', 400, id="id-nul"),
    pytest.param('[{"id": "' + "a" * 64 + '", "checksum": ["x"]}]', 400, id="checksum-list"),
    pytest.param('[{"id": "' + "a" * 64 + '", "Tag": "\\u202elatest"}]', 400, id="tag-bidi"),
    pytest.param('[{"id": "' + "a" * 64 + '", "Tag": "../../etc"}]', 400, id="tag-traversal"),
    pytest.param('[{"id": "' + "\u0430" * 64 + '"}]', 400, id="id-cyrillic-lookalike"),
    pytest.param("[{\"id\": \"\ud800\"}]", 400, id="lone-surrogate"),
    pytest.param("[1e999999]", 400, id="huge-number"),
    pytest.param("[NaN]", 400, id="nan"),
    pytest.param("", 400, id="empty"),
    pytest.param("\x00\x00\x00", 400, id="nul-bytes"),
    pytest.param(b"\xff\xfe[]", 400, id="not-utf8"),
    pytest.param("[" + ",".join(['{"id":"' + "b" * 64 + '"}'] * 20001) + "]", 400, id="too-many-images"),
]


@pytest.mark.parametrize("body, status", BAD_BODIES)
@pytest.mark.parametrize("method, path", [("PUT", "/v1/repositories/alice/app/"),
                                          ("PUT", "/v1/repositories/alice/app/images")])
def test_bad_image_lists_are_refused_without_a_write(seeded, client, method, path, body, status):
    before = snapshot(seeded)
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    answer = client.open(path, method=method, data=raw, headers=JSON_HEADERS)
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.is_json and "error" in answer.get_json()
    assert snapshot(seeded) == before


@pytest.mark.parametrize("depth, status", [(30, 201), (40, 400), (5000, 400)])
def test_nesting_is_limited_even_where_the_field_is_ignored(seeded, client, depth, status):
    """docker sends an ignored "auth" field at registration: nesting there is refused all the same."""
    body = ('{"username": "deepuser", "password": "secret1", "email": "d@example.com", "auth": '
            + "[" * depth + "]" * depth + "}")
    before = snapshot(seeded)
    answer = client.post("/v1/users/", data=body, content_type="application/json")
    assert answer.status_code == status
    if status == 400:
        assert "nested too deeply" in answer.get_json()["error"]
        assert snapshot(seeded) == before


def test_an_oversized_body_is_413_without_a_write(seeded, client, settings):
    before = snapshot(seeded)
    huge = json.dumps([{"id": image_id(n)} for n in range(60_000)])  # ~4.7 MB > 4 MiB default
    answer = client.put("/v1/repositories/alice/app/images", data=huge, headers=JSON_HEADERS)
    assert answer.status_code == 413
    assert answer.get_json()["error"].startswith("request body is larger than")
    assert snapshot(seeded) == before


def test_live_a_huge_content_length_is_413_before_the_body_is_read(live_server):
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    try:
        connection.putrequest("PUT", "/v1/repositories/liar/")
        for name, value in _admin_json({"Content-Length": str(10**12)}).items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(b"[]")  # far less than announced: the answer must not wait for the rest
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"].startswith("request body is larger than")
    finally:
        connection.close()


USER_BODIES = [
    {"username": ["alice2"], "password": "secret1", "email": "a@example.com"},
    {"username": "alice2", "password": {"x": 1}, "email": "a@example.com"},
    {"username": "alice2", "password": "secret1", "email": 42},
    {"username": "alice2\n", "password": "secret1", "email": "a@example.com"},
    {"username": "alice2\x00", "password": "secret1", "email": "a@example.com"},
    {"username": "Alice2", "password": "secret1", "email": "a@example.com"},
    {"username": "ａｌｉｃｅ2", "password": "secret1", "email": "a@example.com"},  # full-width
    {"username": "../../x", "password": "secret1", "email": "a@example.com"},
    {"username": "alice2", "password": "secret1", "email": "a@example.com\n"},
    {"username": "alice2", "password": "secret1", "email": "a\u202e@example.com"},
    {"username": "alice2", "password": "secret1", "email": "a\u200b@example.com"},
    {"username": "alice2", "password": "secret1", "email": "a\ud800@example.com"},
    {"username": "alice2", "password": "secret1", "email": "a\x00@example.com"},
    {"username": "alice2", "password": "secret1", "email": "a@" + "x" * 300 + ".com"},
    {"username": "alice2", "password": "secret1"},
    [],
    None,
]


@pytest.mark.parametrize("body", USER_BODIES, ids=range(len(USER_BODIES)))
def test_bad_registrations_are_refused_without_a_write(seeded, client, body):
    before = snapshot(seeded)
    answer = client.post("/v1/users/", data=json.dumps(body), content_type="application/json")
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.is_json
    assert snapshot(seeded) == before


@pytest.mark.parametrize("body", [{"email": "bad"}, {"password": 1}, {"role": "admin"}, {"admin": True},
                                  {"email": "ok@example.com", "active": False}, {}, [], "x"])
def test_bad_account_changes_are_refused_without_a_write(seeded, client, body):
    before = snapshot(seeded)
    answer = client.put("/v1/users/alice/", data=json.dumps(body), headers=JSON_HEADERS)
    assert answer.status_code == 400
    assert snapshot(seeded) == before


BAD_PATHS = [
    "/v1/repositories/alice/app%0A/images",        # trailing newline
    "/v1/repositories/alice%0A/app/images",
    "/v1/repositories/alice/./images",
    "/v1/repositories/alice/../images",
    "/v1/repositories/alice/%2e%2e/images",
    "/v1/repositories/alice/.../images",
    "/v1/repositories/alice%2Fapp/images",         # encoded slash
    "/v1/repositories/alice%2fapp/x/images",
    "/v1/repositories/..%2F..%2Fetc/images",
    "/v1/repositories/alice%5Capp/images",         # encoded backslash
    "/v1/repositories/alice/app%00/images",
    "/v1/repositories/ALICE/app/images",
    "/v1/repositories/alice/APP/images",
    "/v1/repositories/al/app%20x/images",
    "/v1/repositories/-alice/app/images",
    "/v1/repositories/alice--x/app/images",
    "/v1/repositories/alice/" + "a" * 129 + "/images",
    "/v1/repositories/alice/app/layer/" + "A" * 64 + "/access",
    "/v1/repositories/alice/app/layer/" + "a" * 64 + "%0A/access",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_names_in_paths_are_400(seeded, client, path):
    before = snapshot(seeded)
    for method in ("GET", "PUT"):
        answer = client.open(path, method=method, data="[]", headers=JSON_HEADERS)
        assert answer.status_code in (400, 404, 405), (method, answer.status_code)
        assert answer.status_code != 200
        assert answer.is_json
    # Every one of them reaches a route and is refused by name checks (not just unrouted).
    assert client.get(path, headers=ALICE).status_code in (400, 404)
    assert snapshot(seeded) == before


def test_encoded_slash_is_refused_even_where_it_would_route(seeded, client):
    # Decoded, this is exactly alice/app: without the raw-path check it would be served.
    answer = client.get("/v1/repositories/alice%2Fapp/images", headers=ALICE)
    assert answer.status_code == 400
    assert "percent-encoded" in answer.get_json()["error"]
    assert client.get("/v1/repositories/alice/app/images", headers=ALICE).status_code == 200


def test_odd_search_queries_are_answered_not_crashed(seeded, client):
    for query in ("\x00", "%00", "\u202e", "a" * 256, "../../", "*", "[", "\\"):
        answer = client.get("/v1/search", query_string={"q": query})
        assert answer.status_code == 200
    for raw in ("q=%ED%A0%80", "q=%FF%FE", "q=%C0%AF", "q"):  # a surrogate, not UTF-8, overlong "/"
        assert client.get("/v1/search?" + raw).status_code == 200
    for bad in ({"q": "a" * 257}, {"n": "0"}, {"n": "abc"}, {"page": "-1"}, {"n": "1e3"},
                {"n": "9" * 400}, [("n", "5"), ("n", "6")]):
        answer = client.get("/v1/search", query_string=bad)
        assert answer.status_code == 400, bad
        assert answer.is_json


def test_wrong_content_type_is_415(seeded, client):
    answer = client.put("/v1/repositories/alice/app/images", data="[]",
                        headers={**ALICE, "Content-Type": "text/plain"})
    assert answer.status_code == 415


@pytest.mark.parametrize("header", ["Basic !!!notbase64", "Basic " + "QQ" * 5000, "Basic",
                                    "Token", "Token ,,,,", "Token " + "signature=" * 2000,
                                    "Bearer abc", "Basic /w==", "\x00"])
def test_malformed_authorization_headers_are_4xx(seeded, client, header):
    # A public pull needs no credentials: what is not Basic or Token is an anonymous caller.
    answer = client.get("/v1/repositories/alice/app/images", headers={"Authorization": header})
    assert answer.status_code in (200, 400, 401)
    assert answer.is_json
    answer = client.put("/v1/repositories/alice/app/", data="[]",
                        headers={"Authorization": header, "Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500


def test_store_paths_stay_inside_the_data_dir(store, settings):
    """The only path built from a name is a namespace's file; names.py decides what reaches it."""
    from index import names
    root = Path(settings["DATA_DIR"]).resolve()
    for namespace in ("alice", "a_b", "x-y", "library", "00"):
        names.repo_name(namespace, "app")
        path = store.namespace_file(namespace).path.resolve()
        assert path.parent == root / "db" / "namespaces"
    for hostile in ("..", "../x", "a/b", "/etc", "a\x00", "a\n", ".", "", "x" * 31):
        with pytest.raises(names.ValidationError):
            names.repo_name(hostile, "app")


def test_paths_built_from_image_ids_stay_inside_the_data_dir(app, settings):
    """Image-record shards are named by image ids (only 64 hex digits get there), blob files by
    sha256 digests the server computed (checked again when the path is built)."""
    from index import names
    from index.registry.core import Registry
    root = Path(settings["DATA_DIR"]).resolve()
    found = app.extensions["docker_index"]
    assert isinstance(found.registry, Registry)
    image = "ab" * 32
    assert found.registry.blobs.path("sha256:" + image).parent == root / "blobs" / "sha256" / "ab"
    assert found.registry.images._shard(image).path.resolve().parent == root / "db" / "images"
    for hostile in ("../" + "a" * 61, "a" * 63, "A" * 64, "a" * 64 + "\n", "..", "/etc/passwd"):
        with pytest.raises(names.ValidationError):
            names.image_id(hostile)
        with pytest.raises(ValueError):
            found.registry.blobs.path("sha256:../../" + hostile)


# -- through a real server: what a socket sends, not what a test client builds ------------------

def _admin_json(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**basic(*ADMIN), "Content-Type": "application/json", **(extra or {})}


def test_live_oversized_body_is_413(live_server):
    body = b"[" + b",".join([b'{"id":"' + b"c" * 64 + b'"}'] * 2000) + b"]"  # ~150 KB > 64 KiB
    status, _, payload = live_server.request("PUT", "/v1/repositories/big/", body=body, headers=_admin_json())
    assert status == 413
    assert json.loads(payload)["error"].startswith("request body is larger than")


def test_live_nested_and_odd_bodies_are_400(live_server):
    for body in (NESTED.encode(), MODERATELY_NESTED.encode(), b"\x00\x01\x02", b"\xff\xfe",
                 '[{"id": "\ud800"}]'.encode("utf-8", "surrogatepass"), b"[1e999999]"):
        status, headers, payload = live_server.request("PUT", "/v1/repositories/nested/", body=body,
                                                       headers=_admin_json())
        assert status == 400, (body[:20], status, payload[:200])
        assert headers["content-type"] == "application/json"


def test_live_raw_paths_are_refused(live_server):
    for path in ("/v1/repositories/admin%2Fapp/images", "/v1/repositories/admin/app%0A/images",
                 "/v1/repositories/admin/%2e%2e/images", "/v1/repositories/admin%5c..%5capp/images",
                 "/v1/repositories/admin/app%00/images"):
        status, _, payload = live_server.request("GET", path)
        assert status in (400, 404), (path, status)
        assert "error" in json.loads(payload)


def test_live_nothing_was_written_and_nothing_crashed(live_server):
    test_live_oversized_body_is_413(live_server)
    test_live_nested_and_odd_bodies_are_400(live_server)
    namespaces = live_server.data_dir / "db" / "namespaces"
    assert not namespaces.exists() or not any(namespaces.iterdir())
    log = live_server.log()
    assert "Traceback" not in log and "unhandled error" not in log
