"""Users: register, check a login, update; registration policy and admin bootstrap (docs/protocol.md 6)."""
from __future__ import annotations

import pytest

from index import create_app
from index.services import EXTENSION_KEY
from tests.conftest import ADMIN, basic, disk_state, json_post

ALREADY_EXISTS = b'"Username or email already exists"'
USER_FORMS = ["/v1/users", "/v1/users/"]


def new_user(username="bob_1", password="secret1", email=None):
    return {"username": username, "password": password, "auth": "",
            "email": email if email is not None else f"{username}@example.com"}


# -- POST: register -------------------------------------------------------------------------

@pytest.mark.parametrize("url", USER_FORMS)
def test_register_creates_an_active_account(client, store, url):
    response = json_post(client, url, new_user())
    assert response.status_code == 201
    assert response.data == b'"User Created"'
    assert response.mimetype == "application/json"
    user = store.find_user("bob_1")
    assert user["active"] is True and user["admin"] is False
    assert user["emails"] == ["bob_1@example.com"]
    assert "secret1" not in user["password_hash"]
    assert client.get(url, headers=basic("bob_1", "secret1")).status_code == 200


@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8",   # docker login
    "application/json",
    "application/vnd.docker+json",
    None,                                 # curl -d without -H
])
def test_register_accepts_json_content_types(client, content_type):
    import json
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post("/v1/users/", data=json.dumps(new_user()), **kwargs)
    assert response.status_code == 201, response.data


@pytest.mark.parametrize("second", [
    new_user("alice", "secret1"),                 # docker login of an existing user
    new_user("alice", "wrong-password"),
    new_user("alice", "secret1", email=""),       # docker login sends an empty e-mail
    new_user("alice", "secret1", email="not-an-email"),
    new_user("alice", "", email=""),
    new_user("alice", "x"),
    {"username": "alice"},
    {"username": "alice", "password": 5, "email": None},
    new_user("someone", "secret1", email="alice@example.com"),   # e-mail taken
    new_user("someone", "secret1", email="ALICE@example.COM"),   # e-mails compare case-insensitively
])
def test_existing_username_or_email_answers_the_exact_body(alice, client, second):
    before = disk_state(client.application.config["DATA_DIR"])
    response = json_post(client, "/v1/users/", second)
    assert response.status_code == 400
    assert response.data == ALREADY_EXISTS     # byte-exact: quotes, no newline
    assert disk_state(client.application.config["DATA_DIR"]) == before


@pytest.mark.parametrize("body,field", [
    (new_user("abc"), "username"),
    (new_user("a" * 31), "username"),
    (new_user("Bob_1"), "username"),
    (new_user("bob-1"), "username"),
    (new_user("bob_1\n"), "username"),
    ({**new_user(), "username": None}, "username"),
    ({**new_user(), "username": 1234}, "username"),
    ({"password": "secret1", "email": "a@b.io"}, "username"),
    (new_user(password="1234"), "password"),
    (new_user(password=""), "password"),
    (new_user(password="x" * 73), "password"),
    (new_user(password="é" * 37), "password"),
    (new_user(password="abc\x00def"), "password"),
    (new_user(password="abc\ud800def"), "password"),
    ({**new_user(), "password": 123456}, "password"),
    ({**new_user(), "password": None}, "password"),
    ({"username": "bob_1", "email": "a@b.io"}, "password"),
    (new_user(email=""), "email"),
    (new_user(email="plain"), "email"),
    (new_user(email="a@b"), "email"),
    (new_user(email="a@b.io\n"), "email"),
    (new_user(email="a\ud800@b.io"), "email"),
    ({**new_user(), "email": ["a@b.io"]}, "email"),
    ({"username": "bob_1", "password": "secret1"}, "email"),
])
def test_register_validation_failures(client, body, field):
    before = disk_state(client.application.config["DATA_DIR"])
    response = json_post(client, "/v1/users/", body)
    assert response.status_code == 400
    assert response.data != ALREADY_EXISTS
    assert field in response.get_json()["error"]
    assert disk_state(client.application.config["DATA_DIR"]) == before


@pytest.mark.parametrize("raw,status,message", [
    (b"[]", 400, "JSON object"),
    (b'"alice"', 400, "JSON object"),
    (b"null", 400, "JSON object"),
    (b"", 400, "empty"),
    (b"{", 400, "not valid JSON"),
    (b"\xff\xfe{}", 400, "UTF-8"),
])
def test_register_bad_bodies(client, raw, status, message):
    response = client.post("/v1/users/", data=raw, content_type="application/json")
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_register_other_content_type_is_415(client):
    response = client.post("/v1/users/", data="username=bob_1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]


def test_long_password_is_refused_at_registration_and_fails_login(client, store):
    assert json_post(client, "/v1/users/", new_user(password="x" * 72)).status_code == 201
    assert client.get("/v1/users/", headers=basic("bob_1", "x" * 72)).status_code == 200
    # bcrypt would ignore byte 73+; the login must not succeed with a longer password.
    assert client.get("/v1/users/", headers=basic("bob_1", "x" * 73)).status_code == 401


# -- GET: check a login ---------------------------------------------------------------------

@pytest.mark.parametrize("url", USER_FORMS)
def test_login_ok(alice, client, url):
    response = client.get(url, headers=basic("alice", "secret1"))
    assert response.status_code == 200
    assert response.data == b'"OK"'


@pytest.mark.parametrize("headers", [
    {},
    basic("", ""),                                    # "Basic Og==": docker when nobody is logged in
    {"Authorization": "Basic Og=="},
    basic("alice", "wrong1"),
    basic("alice", ""),
    basic("nobody", "secret1"),
    basic("ALICE", "secret1"),
    basic("alice", "secret1" + "x" * 80),
    {"Authorization": "Basic"},
    {"Authorization": "Basic !!!not-base64"},
    {"Authorization": "Basic " + "/w=="},             # not UTF-8 after decoding
    {"Authorization": "Basic YWxpY2U="},              # "alice", no colon
    {"Authorization": "Bearer abc"},
    {"Authorization": "Token signature=x,repository=\"alice/app\",access=read"},
])
@pytest.mark.parametrize("url", USER_FORMS)
def test_login_refused_is_401_with_a_challenge(alice, client, url, headers):
    response = client.get(url, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_login_of_an_inactive_account_is_403(alice, client, store):
    store.update_user("alice", active=False)
    response = client.get("/v1/users/", headers=basic("alice", "secret1"))
    assert response.status_code == 403
    assert "not active" in response.get_json()["error"]
    # ...but a wrong password is still a 401 (do not reveal the state to a guesser).
    assert client.get("/v1/users/", headers=basic("alice", "wrong1")).status_code == 401


@pytest.mark.parametrize("method", ["delete", "patch"])
def test_users_other_methods_are_405(client, method):
    response = getattr(client, method)("/v1/users/")
    assert response.status_code == 405
    assert response.get_json()["error"]
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


# -- PUT: update ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/v1/users/alice/", "/v1/users/alice"])
def test_user_changes_own_password(alice, client, url):
    response = json_post(client, url, {"password": "newpass1"}, basic("alice", "secret1"), method="put")
    assert response.status_code == 204
    assert response.data == b""
    assert client.get("/v1/users/", headers=basic("alice", "secret1")).status_code == 401
    assert client.get("/v1/users/", headers=basic("alice", "newpass1")).status_code == 200


def test_user_adds_an_email_and_keeps_the_old_one(alice, client, store):
    response = json_post(client, "/v1/users/alice/", {"email": "alice@work.example"},
                         basic("alice", "secret1"), method="put")
    assert response.status_code == 204
    assert store.find_user("alice")["emails"] == ["alice@example.com", "alice@work.example"]
    assert client.get("/v1/users/", headers=basic("alice", "secret1")).status_code == 200


def test_user_changes_both(alice, client, store):
    response = json_post(client, "/v1/users/alice/", {"email": "a2@example.com", "password": "newpass1"},
                         basic("alice", "secret1"), method="put")
    assert response.status_code == 204
    assert store.find_user("alice")["emails"][-1] == "a2@example.com"
    assert client.get("/v1/users/", headers=basic("alice", "newpass1")).status_code == 200


def test_admin_changes_another_users_password(alice, client):
    response = json_post(client, "/v1/users/alice/", {"password": "reset123"}, basic(*ADMIN), method="put")
    assert response.status_code == 204
    assert client.get("/v1/users/", headers=basic("alice", "reset123")).status_code == 200


def test_other_user_is_403(alice, client, docker):
    assert docker.register("bob_1", "secret2").status_code == 201
    before = disk_state(client.application.config["DATA_DIR"])
    response = json_post(client, "/v1/users/alice/", {"password": "hijack1"}, basic("bob_1", "secret2"), method="put")
    assert response.status_code == 403
    assert disk_state(client.application.config["DATA_DIR"]) == before


def test_inactive_user_is_403(alice, client, store):
    store.update_user("alice", active=False)
    response = json_post(client, "/v1/users/alice/", {"password": "newpass1"}, basic("alice", "secret1"), method="put")
    assert response.status_code == 403


@pytest.mark.parametrize("headers", [{}, basic("", ""), basic("alice", "wrong1")])
def test_update_without_valid_credentials_is_401(alice, client, headers):
    response = json_post(client, "/v1/users/alice/", {"password": "newpass1"}, headers, method="put")
    assert response.status_code == 401


def test_update_unknown_user_is_404(client):
    response = json_post(client, "/v1/users/nobody/", {"password": "newpass1"}, basic(*ADMIN), method="put")
    assert response.status_code == 404
    assert "nobody" in response.get_json()["error"]


@pytest.mark.parametrize("body,message", [
    ({}, "nothing to change"),
    ({"password": "1234"}, "password"),
    ({"password": "x" * 73}, "password"),
    ({"password": "ab\ud800cdef"}, "password"),
    ({"password": None}, "password"),
    ({"email": "bad"}, "email"),
    ({"email": ""}, "email"),
    ({"email": 5}, "email"),
    ({"email": "bob_1@example.com"}, "email is already used"),      # bob_1's address
    ({"email": "BOB_1@Example.com"}, "email is already used"),
    ({"username": "mallory"}, "unknown field"),
    ({"password": "newpass1", "admin": True}, "unknown field"),
    ([], "JSON object"),
    ("newpass1", "JSON object"),
])
def test_update_bad_fields_are_400_and_change_nothing(alice, client, body, message):
    assert alice.register("bob_1", "secret2").status_code == 201
    before = disk_state(client.application.config["DATA_DIR"])
    response = json_post(client, "/v1/users/alice/", body, basic("alice", "secret1"), method="put")
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert disk_state(client.application.config["DATA_DIR"]) == before


# -- registration policy ----------------------------------------------------------------------

@pytest.fixture
def closed_client(settings):
    app = create_app({**settings, "REGISTRATION": "closed"})
    return app.test_client()


def test_closed_registration_refuses_new_accounts_with_401(closed_client):
    before = disk_state(closed_client.application.config["DATA_DIR"])
    response = json_post(closed_client, "/v1/users/", new_user())
    assert response.status_code == 401                      # docker 0.8+ then tries GET
    assert "closed" in response.get_json()["error"]
    assert disk_state(closed_client.application.config["DATA_DIR"]) == before


def test_closed_registration_still_lets_existing_users_log_in(closed_client):
    # The account is made by an admin (here: straight in the store).
    store = closed_client.application.extensions[EXTENSION_KEY].store
    from index.passwords import hash_password
    store.create_user("alice", hash_password("secret1", 4), "alice@example.com")
    response = json_post(closed_client, "/v1/users/", new_user("alice", "secret1"))
    assert response.status_code == 400 and response.data == ALREADY_EXISTS
    assert closed_client.get("/v1/users/", headers=basic("alice", "secret1")).status_code == 200


def test_registration_setting_from_the_environment(monkeypatch, settings):
    monkeypatch.setenv("INDEX_REGISTRATION", "closed")
    client = create_app(settings).test_client()
    assert json_post(client, "/v1/users/", new_user()).status_code == 401


# -- admin bootstrap --------------------------------------------------------------------------

def test_bootstrap_admin_is_an_active_admin(store, client):
    admin = store.find_user(ADMIN[0])
    assert admin["active"] is True and admin["admin"] is True
    assert client.get("/v1/users/", headers=basic(*ADMIN)).status_code == 200


def test_bootstrap_does_not_touch_an_existing_admin(settings):
    create_app(settings)
    client = create_app({**settings, "ADMIN_PASSWORD": "another1"}).test_client()
    assert client.get("/v1/users/", headers=basic(*ADMIN)).status_code == 200
    assert client.get("/v1/users/", headers=basic(ADMIN[0], "another1")).status_code == 401


def test_no_admin_without_the_settings(settings):
    app = create_app({**settings, "ADMIN_USERNAME": None, "ADMIN_PASSWORD": None})
    assert app.extensions[EXTENSION_KEY].store.list_users() == []


@pytest.mark.parametrize("username,password", [("ad", "adminpass"), ("admin", "abc"), ("Admin", "adminpass")])
def test_bootstrap_with_invalid_settings_stops_the_start(settings, username, password):
    with pytest.raises(ValueError, match="INDEX_ADMIN"):
        create_app({**settings, "ADMIN_USERNAME": username, "ADMIN_PASSWORD": password})


def test_username_library_is_reserved(client):
    response = json_post(client, "/v1/users/", {"username": "library", "password": "secret1",
                                                "email": "lib@example.com"})
    assert response.status_code == 400
    assert "reserved" in response.get_json()["error"]


def test_bootstrap_admin_email_passes_our_own_email_check(store):
    from index import names
    for email in store.find_user(ADMIN[0])["emails"]:
        assert names.email(email) == email


def test_adding_a_known_email_in_other_letter_case_keeps_one(client, store):
    assert json_post(client, "/v1/users/", {"username": "alice", "password": "secret1",
                                            "email": "alice@example.com"}).status_code == 201
    changed = client.put("/v1/users/alice/", json={"email": "ALICE@Example.com"},
                         headers=basic("alice", "secret1"))
    assert changed.status_code == 204
    assert store.find_user("alice")["emails"] == ["alice@example.com"]
