"""Which requests run on the event loop's thread (index/ops/quick_requests.py): reads that wait on
nothing; never a write, a file, a lock probe, nor a login that still has bcrypt to pay."""
import base64

import pytest

from index.ops.quick_requests import quick_request_test
from index.passwords import VerifiedCredentials


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def credentials():
    remembered = VerifiedCredentials(b"key", ttl_seconds=60)
    remembered.remember("alice", "secret1", "$2b$hash")
    return remembered


def environ(method: str, path: str, authorization: str | None = None) -> dict:
    found = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if authorization is not None:
        found["HTTP_AUTHORIZATION"] = authorization
    return found


@pytest.mark.parametrize(("method", "path", "authorization"), [
    ("GET", "/v1/_ping", None),
    ("HEAD", "/_ping", None),
    ("GET", "/healthz", None),
    ("GET", "/v1/search", None),
    ("GET", "/v1/repositories/alice/app/images", "Token signature=abc,repository=\"alice/app\",access=read"),
    ("GET", "/v1/repositories/app/images", None),  # library
    ("GET", "/v1/users/", basic("alice", "secret1")),
    ("GET", "/v1/repositories/alice/app/images", "Basic Og=="),  # docker's anonymous Basic
])
def test_reads_that_wait_on_nothing_are_quick(credentials, method, path, authorization):
    assert quick_request_test(credentials)(environ(method, path, authorization))


@pytest.mark.parametrize(("method", "path", "authorization"), [
    ("PUT", "/v1/repositories/alice/app/images", None),          # a write: fsync, the store's lock
    ("PUT", "/v1/repositories/alice/app/", basic("alice", "secret1")),
    ("POST", "/v1/users/", None),
    ("GET", "/readyz", None),                                     # waits for the store's lock
    ("GET", "/v1/images/" + "ab" * 32 + "/layer", None),         # a file, perhaps in S3
    ("GET", "/v1/images/" + "ab" * 32 + "/json", None),
    ("GET", "/v1/repositories/alice/app/tags", None),
    ("GET", "/metrics", None),
    ("GET", "/", None),                                           # web pages
    ("GET", "/v1/users/", basic("alice", "wrong")),              # bcrypt to pay
    ("GET", "/v1/users/", basic("bob", "secret1")),
    ("GET", "/v1/users/", basic("alice+robot", "token")),        # robots: not remembered here
    ("GET", "/v1/users/", "Basic %%%not-base64"),
    ("GET", "/v1/users/", "Basic " + base64.b64encode(b"\xff\xfe:x").decode()),
    ("GET", "/v1/users/", "Basic " + base64.b64encode(b"no-colon").decode()),
    ("GET", "/v1/repositories/a/b/c/images", None),
])
def test_everything_else_runs_in_a_request_thread(credentials, method, path, authorization):
    assert not quick_request_test(credentials)(environ(method, path, authorization))


def test_a_remembered_login_stops_being_quick_when_the_cache_is_off():
    off = VerifiedCredentials(b"key", ttl_seconds=0)
    off.remember("alice", "secret1", "$2b$hash")
    assert not quick_request_test(off)(environ("GET", "/v1/users/", basic("alice", "secret1")))


def test_a_changed_password_ends_the_remembered_pair():
    remembered = VerifiedCredentials(b"key", ttl_seconds=60)
    remembered.remember("alice", "old-secret", "$2b$old")
    assert quick_request_test(remembered)(environ("GET", "/v1/users/", basic("alice", "old-secret")))
    assert not remembered.is_verified("alice", "old-secret", "$2b$new")  # the stored hash changed
    assert not quick_request_test(remembered)(environ("GET", "/v1/users/", basic("alice", "old-secret")))
