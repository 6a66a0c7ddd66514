"""Issue 11 part 6 (the account side): activation links from INDEX_PUBLIC_HOST only, the failed-
login limiter counting first, raw latin-1 Basic credentials, empty path segments, ASCII digits in
search, and stricter e-mail addresses."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from index import create_app, passwords
from index.config import ConfigError
from index.testing import running_index
from tests.conftest import basic, disk_state, image_id

LATIN1_BASIC = "Basic \xe9\xe8\xe0\xff"
EVIL_EMAIL = "x@corp.example>:http://evil.example/account/activate?token=abc"


# -- activation links ---------------------------------------------------------------------------

def test_confirm_refuses_to_start_without_a_public_host(settings):
    with pytest.raises(ConfigError, match="INDEX_PUBLIC_HOST"):
        create_app({**settings, "REGISTRATION": "confirm"})


def test_the_activation_link_never_names_the_request_host(settings, caplog):
    caplog.set_level("INFO", logger="index")
    client = create_app({**settings, "REGISTRATION": "confirm", "PUBLIC_HOST": "index.example.com"}).test_client()
    answer = client.post("/v1/users/", data=json.dumps({"username": "alice", "password": "secret1",
                                                        "email": "alice@example.com"}),
                         content_type="application/json", headers={"Host": "attacker.example"})
    assert answer.status_code == 201
    assert re.search(r"activation link for alice <alice@example.com>: "
                     r"http://index\.example\.com/account/activate\?token=\S+", caplog.text)
    assert "attacker.example" not in caplog.text


# -- the failed-login limiter counts an attempt before bcrypt -------------------------------------

@pytest.mark.slow
def test_parallel_wrong_passwords_get_no_more_bcrypt_checks_than_the_limit(monkeypatch):
    checks = []
    real_check = passwords.check_password
    gate = threading.Barrier(40, timeout=10)

    def counted_check(*args, **kwargs):
        checks.append(1)
        time.sleep(0.05)  # as long as production bcrypt's share of it: the attempts overlap
        return real_check(*args, **kwargs)
    monkeypatch.setattr(passwords, "check_password", counted_check)
    statuses: list[int] = []

    with running_index({"LOGIN_FAILURES_PER_MINUTE": 10}) as index:
        def guess(n: int) -> None:
            request = urllib.request.Request(f"{index.url}/v1/users/", headers=basic("admin", f"wrong{n}"))
            gate.wait()  # all 40 leave together
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
        threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert len(statuses) == 40
    assert len(checks) <= 10
    assert statuses.count(401) == len(checks) and statuses.count(429) == 40 - len(checks)


# -- raw latin-1 after "Authorization: Basic" --------------------------------------------------------

_PARAMETERS = {"namespace": "alice", "repository": "app", "image_id": image_id(1), "tag": "latest",
               "username": "alice", "org": "acme", "team": "devs", "short": "ci", "member": "alice",
               "uuid": "0" * 32, "filename": "style.css", "action": "activate"}


def _every_route(app):
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: _PARAMETERS.get(m.group(1), "x"), rule.rule)
        for method in sorted(rule.methods - {"OPTIONS"}):
            yield method, path


def test_latin1_basic_credentials_are_never_a_500_on_any_route(client, alice, app):
    seen = 0
    for method, path in _every_route(app):
        answer = client.open(path, method=method, headers={"Authorization": LATIN1_BASIC})
        assert answer.status_code < 500, (method, path, answer.status_code, answer.data)
        seen += 1
    assert seen > 20
    for method, path in (("GET", "/v1/users/"), ("PUT", "/v1/repositories/alice/app/"),
                         ("GET", f"/v1/images/{image_id(1)}/json")):
        answer = client.open(path, method=method, headers={"Authorization": LATIN1_BASIC})
        assert answer.status_code in (400, 401) and "error" in answer.get_json()


def test_latin1_basic_bytes_on_the_wire(settings):
    with running_index() as index:
        host, port = index.host.split(":")
        for request_line in (b"GET /v1/users/ HTTP/1.1", b"PUT /v1/repositories/alice/app/ HTTP/1.1"):
            with socket.create_connection((host, int(port)), timeout=5) as connection:
                connection.sendall(request_line + b"\r\nHost: " + index.host.encode() +
                                   b"\r\nAuthorization: Basic \xe9\xe8\xe0\xff\r\nContent-Length: 2\r\n"
                                   b"Content-Type: application/json\r\nConnection: close\r\n\r\n[]")
                reply = b""
                while chunk := connection.recv(65536):
                    reply += chunk
            status = int(reply.split(b" ", 2)[1])
            assert status in (400, 401), reply[:200]


def test_latin1_basic_under_require_tls_is_refused_not_500(settings):
    client = create_app({**settings, "REQUIRE_TLS": True, "TLS_EXEMPT_LOOPBACK": False}).test_client()
    answer = client.get("/v1/users/", headers={"Authorization": LATIN1_BASIC})
    assert answer.status_code == 403


# -- empty path segments ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/repositories/ns//images", f"/v1/images/{image_id(1)}//layer",
                                  "/v1//_ping", "/v1/repositories/alice/app//tags", "/v2",
                                  "//v1/users/"])
def test_a_path_with_an_empty_segment_is_a_json_404_and_no_redirect(client, path):
    answer = client.get(path, headers={"Host": "attacker.example"})
    assert answer.status_code == 404
    assert "Location" not in answer.headers
    assert "error" in answer.get_json()
    assert b"attacker.example" not in answer.data


# -- search paging takes ASCII digits only ------------------------------------------------------------

@pytest.mark.parametrize("value", ["\u0661", "\uff11", "1_0", "+5", " 5", "5 ", "0x10", "1e1", "\u00b2"])
@pytest.mark.parametrize("argument", ["n", "page"])
def test_search_paging_takes_ascii_digits_only(client, argument, value):
    answer = client.get("/v1/search", query_string={"q": "x", argument: value})
    assert answer.status_code == 400
    assert "digits 0-9" in answer.get_json()["error"]


def test_search_paging_with_plain_digits_still_works(client):
    answer = client.get("/v1/search", query_string={"q": "x", "n": "10", "page": "02"})
    assert answer.status_code == 200
    assert (answer.get_json()["page_size"], answer.get_json()["page"]) == (10, 2)


# -- e-mail syntax ----------------------------------------------------------------------------------

@pytest.mark.parametrize("email", [EVIL_EMAIL, "x@corp.example>", "<x@corp.example>", "x@corp.example, y@evil.example",
                                   "x@corp.example:25", "x y@example.com", "x@[127.0.0.1]", "\"x\"@example.com",
                                   "x@-corp.example", "x@corp..example", ".x@example.com", "x@example"])
def test_addresses_that_could_smuggle_text_are_refused(client, alice, app, email):
    before = disk_state(app.config["DATA_DIR"])
    registered = client.post("/v1/users/", data=json.dumps({"username": "mallory", "password": "secret1",
                                                            "email": email}), content_type="application/json")
    assert registered.status_code == 400
    assert "invalid email" in registered.get_json()["error"]
    added = client.put("/v1/users/alice/", data=json.dumps({"email": email}), headers=basic("alice", "secret1"),
                       content_type="application/json")
    assert added.status_code == 400
    assert disk_state(app.config["DATA_DIR"]) == before


@pytest.mark.parametrize("email", ["alice.smith+docker@mail.example.com", "o'brien@example.ie",
                                   "jürgen@exämple.de", "a_b-c@sub-domain.example.org"])
def test_ordinary_addresses_still_register(client, email):
    registered = client.post("/v1/users/", data=json.dumps({"username": "someone", "password": "secret1",
                                                            "email": email}), content_type="application/json")
    assert registered.status_code == 201
