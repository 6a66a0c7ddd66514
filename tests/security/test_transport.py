"""Transport: credentials only over TLS when required; security headers on every response."""
from __future__ import annotations

import json

import pytest

from index import create_app
from index.config import ConfigError, load_config
from tests.conftest import ADMIN, basic

REMOTE = {"REMOTE_ADDR": "192.0.2.10"}  # TEST-NET-1: only a label here, nothing is sent there
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def tls_app(settings):
    return create_app({**settings, "REQUIRE_TLS": True})


def test_basic_over_plain_http_is_refused_when_tls_is_required(tls_app):
    client = tls_app.test_client()
    answer = client.get("/v1/users/", headers=basic(*ADMIN), environ_base=REMOTE)
    assert answer.status_code == 403
    assert "HTTPS" in answer.get_json()["error"]
    # A wrong password is refused the same way: nothing is checked, nothing counted.
    assert client.get("/v1/users/", headers=basic(ADMIN[0], "x"), environ_base=REMOTE).status_code == 403


def test_a_password_in_a_body_over_plain_http_is_refused(tls_app):
    client = tls_app.test_client()
    body = json.dumps({"username": "newuser", "password": "secret1", "email": "n@example.com"})
    answer = client.post("/v1/users/", data=body, content_type="application/json", environ_base=REMOTE)
    assert answer.status_code == 403
    assert tls_app.extensions["docker_index"].store.find_user("newuser") is None


def test_malformed_basic_over_plain_http_is_refused_too(tls_app):
    answer = tls_app.test_client().get("/v1/users/", headers={"Authorization": "Basic !!!"},
                                       environ_base=REMOTE)
    assert answer.status_code == 403


def test_https_and_loopback_are_accepted(tls_app):
    client = tls_app.test_client()
    secure = client.get("/v1/users/", headers=basic(*ADMIN), base_url="https://index.example",
                        environ_base=REMOTE)
    assert secure.status_code == 200
    assert client.get("/v1/users/", headers=basic(*ADMIN), environ_base=LOOPBACK).status_code == 200
    assert client.get("/v1/users/", headers=basic(*ADMIN),
                      environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_loopback_exemption_can_be_turned_off(settings):
    client = create_app({**settings, "REQUIRE_TLS": True, "TLS_EXEMPT_LOOPBACK": False}).test_client()
    assert client.get("/v1/users/", headers=basic(*ADMIN), environ_base=LOOPBACK).status_code == 403


def test_anonymous_and_token_requests_need_no_tls(tls_app):
    client = tls_app.test_client()
    assert client.get("/v1/_ping", environ_base=REMOTE).status_code == 200
    assert client.get("/v1/search?q=x", headers={"Authorization": "Basic Og=="},
                      environ_base=REMOTE).status_code == 200
    # A registry checking a token over plain HTTP inside a private network still gets its answer.
    answer = client.get("/v1/repositories/admin/app/images", environ_base=REMOTE,
                        headers={"Authorization": 'Token signature=x,repository="admin/app",access=read'})
    assert answer.status_code == 401


def test_tls_is_not_required_by_default(client):
    assert client.get("/v1/users/", headers=basic(*ADMIN), environ_base=REMOTE).status_code == 200


def test_tls_settings_parse_from_the_environment(tmp_path):
    config = load_config({}, environ={"INDEX_REQUIRE_TLS": "yes", "INDEX_TLS_EXEMPT_LOOPBACK": "false",
                                      "INDEX_LOGIN_FAILURES_PER_MINUTE": "0"})
    assert config["REQUIRE_TLS"] is True and config["TLS_EXEMPT_LOOPBACK"] is False
    assert config["LOGIN_FAILURES_PER_MINUTE"] == 0
    with pytest.raises(ConfigError, match="INDEX_REQUIRE_TLS"):
        load_config({}, environ={"INDEX_REQUIRE_TLS": "maybe"})
    with pytest.raises(ConfigError, match="INDEX_LOGIN_FAILURES_PER_MINUTE"):
        load_config({}, environ={"INDEX_LOGIN_FAILURES_PER_MINUTE": "-1"})


def _every_kind_of_response(client, alice):
    announced = alice.put_repository("alice/app", [{"id": "a" * 64}])
    return {
        "ping": client.get("/v1/_ping"),
        "token": announced,
        "images": client.get("/v1/repositories/alice/app/images"),
        "no-content": alice.put_images("alice/app", []),
        "unauthorized": client.get("/v1/users/", headers=basic("alice", "nope")),
        "not-found": client.get("/no/such/route"),
        "method": client.delete("/v1/search"),
        "bad-request": client.get("/v1/repositories/alice%2Fapp/images"),
        "search": client.get("/v1/search?q=app"),
        "openapi": client.get("/v1/openapi.json"),
        "v2": client.head("/v2/"),
    }


def test_security_headers_on_every_response(alice, client):
    for kind, response in _every_kind_of_response(client, alice).items():
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", kind
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, kind
        assert headers["X-Frame-Options"] == "DENY", kind
        assert headers["Referrer-Policy"] == "no-referrer", kind
        assert "Strict-Transport-Security" not in headers, kind  # plain HTTP: HSTS means nothing
        for name in ("X-Content-Type-Options", "Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"):
            assert len(headers.getlist(name)) == 1, (kind, name)


def test_hsts_over_tls(alice, client):
    answer = client.get("/v1/_ping", base_url="https://index.example")
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")


def test_answers_to_callers_with_credentials_are_not_stored(alice, client):
    assert client.get("/v1/users/", headers=basic("alice", "secret1")).headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in client.get("/v1/_ping").headers
    # A token answer sets it itself; the after-request hook must not add a second one.
    announced = client.put("/v1/repositories/alice/app/", json=[], headers={**basic("alice", "secret1"),
                                                                           "X-Docker-Token": "true"})
    assert announced.status_code == 200 and announced.headers.getlist("Cache-Control") == ["no-store"]


def test_live_server_sends_the_headers(live_server):
    status, headers, _ = live_server.request("GET", "/v1/_ping")
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "strict-transport-security" not in headers


def test_live_server_honours_a_tls_proxy_header(live_server):
    """gunicorn trusts X-Forwarded-Proto from 127.0.0.1 (forwarded_allow_ips): HSTS appears."""
    status, headers, _ = live_server.request("GET", "/v1/_ping", headers={"X-Forwarded-Proto": "https"})
    assert status == 200
    assert headers["strict-transport-security"].startswith("max-age=")
