"""One error shape everywhere, and bad input of every kind: a clear 4xx, never a 500, never a write."""
from __future__ import annotations

import json

import pytest

from index import create_app
from tests.conftest import ADMIN, basic, disk_state, image_id

ADMIN_AUTH = basic(*ADMIN)

# (method, url, a valid body): every index endpoint that reads a JSON body, as the admin.
WRITES = [
    ("post", "/v1/users/", {"username": "bob_1", "password": "secret1", "email": "b@example.com"}),
    ("post", "/v1/users", {"username": "bob_1", "password": "secret1", "email": "b@example.com"}),
    ("put", "/v1/users/admin/", {"email": "admin@example.com"}),
    ("put", "/v1/repositories/alice/app/", [{"id": image_id(1)}]),
    ("put", "/v1/repositories/busybox/", [{"id": image_id(1)}]),
    ("put", "/v1/repositories/alice/app/images", [{"id": image_id(1)}]),
    ("put", "/v1/repositories/busybox/images", [{"id": image_id(1)}]),
]
WRITE_IDS = [f"{method.upper()} {url}" for method, url, _ in WRITES]


def seeded_client(data_dir, **settings):
    """An index where alice/app and library/busybox exist, so every WRITES url accepts a good body."""
    app = create_app({"TESTING": True, "DATA_DIR": data_dir, "SECRET_KEY": "t", "BCRYPT_ROUNDS": 4,
                      "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1], **settings})
    client = app.test_client()
    for url in ("/v1/repositories/alice/app/", "/v1/repositories/busybox/"):
        response = client.put(url, data=json.dumps([{"id": image_id(9)}]), headers=ADMIN_AUTH,
                              content_type="application/json")
        assert response.status_code == 200
    return client


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    # Shared by the module: every test below either is refused (and checks that nothing on disk
    # changed) or repeats an idempotent good request, so one index serves them all.
    return seeded_client(tmp_path_factory.mktemp("errors") / "data")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return seeded_client(tmp_path_factory.mktemp("small") / "data", MAX_JSON_BYTES=512)


def parsed(response) -> bool:
    """The body was read as JSON and accepted (a second registration answers "already exists")."""
    return response.status_code in (200, 201, 204) or response.data == b'"Username or email already exists"'


def send(client, method, url, raw, content_type="application/json"):
    kwargs = {"content_type": content_type} if content_type else {}
    return getattr(client, method)(url, data=raw, headers=ADMIN_AUTH, **kwargs)


def assert_json_error(response, status: int, contains: str = "") -> None:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert contains in body["error"]


@pytest.mark.parametrize("method,url,good", WRITES, ids=WRITE_IDS)
def test_the_good_body_works(seeded, method, url, good):
    # The control for the rows below: the same request with a valid body succeeds.
    assert parsed(send(seeded, method, url, json.dumps(good)))


BAD_RAW = [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"\n\t ", "empty", id="whitespace"),
    pytest.param(b"\xff\xfe\x00", "UTF-8", id="invalid-utf8"),
    pytest.param(b"\xc3(", "UTF-8", id="truncated-utf8"),
    pytest.param(b'{"a": "\xed\xa0\x80"}', "UTF-8", id="encoded-surrogate"),
    pytest.param(b"[" * 200_000 + b"]" * 200_000, "nested too deeply", id="deep-list"),
    pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply", id="deep-object"),
    pytest.param(b'{"username": "a\x00b"}', "not valid JSON", id="raw-nul"),
    pytest.param(b"\x00", "not valid JSON", id="only-nul"),
    pytest.param(b"{'a': 1}", "not valid JSON", id="single-quotes"),
    pytest.param(b"[1,]", "not valid JSON", id="trailing-comma"),
    pytest.param(b"[] []", "not valid JSON", id="two-documents"),
    pytest.param(b"\xef\xbb\xbf[]", "not valid JSON", id="utf8-bom"),
    pytest.param(b"[" + b"1" * 5000 + b"]", "not valid JSON", id="huge-integer"),
]


@pytest.mark.parametrize("raw,message", BAD_RAW)
@pytest.mark.parametrize("method,url,good", WRITES, ids=WRITE_IDS)
def test_bad_raw_bodies_are_400_and_change_nothing(seeded, method, url, good, raw, message):
    before = disk_state(seeded.application.config["DATA_DIR"])
    assert_json_error(send(seeded, method, url, raw), 400, message)
    assert disk_state(seeded.application.config["DATA_DIR"]) == before


WRONG_TYPES = {
    "post /v1/users/": [  # "carol" is never registered
        {"username": ["bob_1"], "password": "secret1", "email": "b@example.com"},
        {"username": "carol", "password": {"p": 1}, "email": "b@example.com"},
        {"username": "carol", "password": "secret1", "email": True},
        {"username": "bob_1\u0000", "password": "secret1", "email": "b@example.com"},
        {"username": "carol", "password": "sec\u0000ret", "email": "b@example.com"},
        {"username": "carol", "password": "secret1", "email": "b\u0000@example.com"},
        {"username": "carol", "password": "secret1", "email": "b@example.com\n"},
        {"username": "carol", "password": float("nan"), "email": "b@example.com"},
        [], "carol", 5, None, True,
    ],
    "put /v1/users/admin/": [
        {"password": 123456}, {"email": ["b@example.com"]}, {"password": "a\u0000bcdef"},
        {"password": None}, {"email": {}}, [], "newpass1", None,
    ],
    "put /v1/repositories/alice/app/": [
        {"id": image_id(1)}, [image_id(1)], [{"id": image_id(1)[:-1] + "\u0000"}],
        [{"id": [image_id(1)]}], [{"id": image_id(1), "checksum": ["x"]}],
        [{"id": image_id(1), "Tag": {"name": "latest"}}], [{"id": image_id(1)}, 5], [None], "[]", None,
    ],
}


@pytest.mark.parametrize("key,body", [(key, body) for key, bodies in WRONG_TYPES.items() for body in bodies],
                         ids=lambda value: value if isinstance(value, str) and value.startswith(("post", "put")) else None)
def test_wrong_types_are_400_and_change_nothing(seeded, key, body):
    method, url = key.split(" ")
    before = disk_state(seeded.application.config["DATA_DIR"])
    response = send(seeded, method, url, json.dumps(body))
    assert_json_error(response, 400)
    assert response.data != b'"Username or email already exists"'
    assert disk_state(seeded.application.config["DATA_DIR"]) == before


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/json", "application/xml", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "application/octet-stream", "application/jsonp",
])
@pytest.mark.parametrize("method,url,good", WRITES, ids=WRITE_IDS)
def test_other_content_types_are_415(seeded, method, url, good, content_type):
    before = disk_state(seeded.application.config["DATA_DIR"])
    response = send(seeded, method, url, json.dumps(good), content_type=content_type)
    assert_json_error(response, 415, "application/json")
    assert disk_state(seeded.application.config["DATA_DIR"]) == before


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/problem+json", None])
@pytest.mark.parametrize("method,url,good", WRITES, ids=WRITE_IDS)
def test_json_content_types_are_accepted(seeded, method, url, good, content_type):
    assert parsed(send(seeded, method, url, json.dumps(good), content_type=content_type))


@pytest.mark.parametrize("method,url,good", WRITES, ids=WRITE_IDS)
def test_oversize_bodies_are_413_and_change_nothing(small, method, url, good):
    client = small
    padded = json.dumps(good)[:-1] + ("," if isinstance(good, list) and good else "")
    padded += (f'"pad":"{"x" * 600}"}}' if isinstance(good, dict) else f'{{"id":"{image_id(2)}","x":"{"x" * 600}"}}]')
    before = disk_state(client.application.config["DATA_DIR"])
    assert_json_error(send(client, method, url, padded), 413, "512 bytes")
    assert disk_state(client.application.config["DATA_DIR"]) == before


@pytest.mark.parametrize("url", [
    "/nope", "/v1", "/v1/", "/v1/nope", "/v1/repositories", "/v1/repositories/a/b/c/d/",
    "/v1/images/" + image_id(1) + "/nothing", "/v1/search/", "/v2/nope",
])
def test_unknown_urls_are_404_json(seeded, url):
    assert_json_error(seeded.get(url), 404)


@pytest.mark.parametrize("method,url,allowed", [
    ("delete", "/v1/users/", {"GET", "POST"}),
    ("put", "/v1/users/", {"GET", "POST"}),
    ("get", "/v1/users/alice/", {"PUT"}),
    ("post", "/v1/repositories/alice/app/", {"PUT", "DELETE"}),
    ("patch", "/v1/repositories/alice/app/images", {"GET", "PUT"}),
    ("post", "/v1/search", {"GET"}),
    ("put", "/v1/_ping", {"GET"}),
])
def test_wrong_methods_are_405_json_with_allow(seeded, method, url, allowed):
    response = getattr(seeded, method)(url)
    assert_json_error(response, 405)
    listed = {value.strip() for value in response.headers["Allow"].split(",")}
    assert allowed <= listed


@pytest.mark.parametrize("url", [
    "/v1/repositories/alice/app%00/images",
    "/v1/repositories/alice%00/app/images",
    "/v1/repositories/alice/app%0A/images",
    "/v1/repositories/alice/a..b/images",
    "/v1/repositories/%2E%2E/images",
    "/v1/repositories/alice/%C3%A4pp/images",
    "/v1/repositories/alice/" + "a" * 200 + "/images",
])
def test_bad_names_in_urls_are_400(seeded, url):
    assert_json_error(seeded.get(url, headers={"X-Docker-Token": "true"}), 400)


def test_invalid_utf8_in_the_url_is_400(seeded):
    assert_json_error(seeded.get("/v1/repositories/alice/%FF%FE/images"), 400, "repository name")


def test_unexpected_errors_are_json_without_details(settings):
    app = create_app(settings)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert_json_error(response, 500, "internal server error")
    assert b"secret internals" not in response.data


def test_error_bodies_have_no_trailing_newline(client):
    response = client.get("/nope")
    assert not response.data.endswith(b"\n")
    assert response.data.startswith(b'{"error":')
