"""Tokens under attack: tampering, replay elsewhere, expiry, foreign keys, accounts gone."""
from __future__ import annotations

import base64
import json
import logging
import time

import pytest
from itsdangerous import TimestampSigner

from index.services import EXTENSION_KEY
from index.tokens import TokenError, TokenSigner
from tests.conftest import ADMIN, basic, image_id

IMAGES = [{"id": image_id(1)}, {"id": image_id(2), "Tag": "latest"}]


@pytest.fixture
def write_token(alice) -> str:
    announced = alice.put_repository("alice/app", IMAGES)
    assert announced.status_code == 200
    return announced.headers["X-Docker-Token"]


def _check(client, remote: str, token: str):
    """Both ways a registry validates: GET images and PUT auth."""
    images = client.get(f"/v1/repositories/{remote}/images", headers={"Authorization": f"Token {token}"})
    authorized = client.put(f"/v1/repositories/{remote}/auth", headers={"Authorization": f"Token {token}"})
    return images, authorized


def _parts(token: str) -> tuple[str, str]:
    signature, rest = token.split(",", 1)
    return signature.removeprefix("signature="), rest


def test_the_real_token_is_accepted(client, write_token):
    images, authorized = _check(client, "alice/app", write_token)
    assert images.status_code == 200 and authorized.status_code == 200


@pytest.mark.parametrize("position", [0, 10, 40, -12, -2])
def test_a_flipped_signature_character_is_refused(client, write_token, position):
    signature, rest = _parts(write_token)
    chars = list(signature)
    chars[position] = "A" if chars[position] != "A" else "B"
    images, authorized = _check(client, "alice/app", f"signature={''.join(chars)},{rest}")
    assert images.status_code == 401
    assert images.headers["WWW-Authenticate"] == "Token"
    assert authorized.status_code == 403


def test_a_forged_payload_with_the_old_mac_is_refused(client, write_token):
    signature, rest = _parts(write_token)
    payload, *signed_parts = signature.split(".")
    forged_payload = base64.urlsafe_b64encode(
        json.dumps({"r": "alice/app", "a": "delete", "u": "alice"}).encode()).decode().rstrip("=")
    forged = ".".join([forged_payload, *signed_parts])
    images, _ = _check(client, "alice/app", f"signature={forged},repository=\"alice/app\",access=delete")
    assert images.status_code == 401


def test_a_token_of_another_repository_is_refused(alice, client, write_token):
    assert alice.put_repository("alice/other", IMAGES).status_code == 200
    images, authorized = _check(client, "alice/other", write_token)
    assert images.status_code == 403
    assert authorized.status_code == 403
    # Also with the header's repository changed to match the URL: the signature says otherwise.
    signature, _ = _parts(write_token)
    relabeled = f'signature={signature},repository="alice/other",access=write'
    images, authorized = _check(client, "alice/other", relabeled)
    assert images.status_code == 401 and authorized.status_code == 403


@pytest.mark.parametrize("access", ["delete", "read", "admin", ""])
def test_an_access_changed_in_the_header_is_refused(client, write_token, access):
    signature, _ = _parts(write_token)
    changed = f'signature={signature},repository="alice/app",access={access}'
    images, authorized = _check(client, "alice/app", changed)
    assert images.status_code == 401
    assert authorized.status_code == 403


def test_conflicting_duplicate_fields_are_refused(client, write_token):
    doubled = write_token + ",access=delete"
    assert _check(client, "alice/app", doubled)[0].status_code == 401
    # The same token joined twice (what clients do with repeated headers) is fine.
    assert _check(client, "alice/app", write_token + "," + write_token)[0].status_code == 200


def test_an_expired_token_is_refused(app, client, alice, monkeypatch):
    assert alice.put_repository("alice/app", IMAGES).status_code == 200
    signer = app.extensions[EXTENSION_KEY].signer
    past = int(time.time()) - signer.ttl_seconds - 5
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: past)
    old_token = signer.issue("alice/app", "write", "alice")
    monkeypatch.undo()
    images, authorized = _check(client, "alice/app", old_token)
    assert images.status_code == 401
    assert "expired" in images.get_json()["error"]
    assert authorized.status_code == 403


def test_a_token_signed_with_an_unknown_key_is_refused(client, alice):
    assert alice.put_repository("alice/app", IMAGES).status_code == 200
    foreign = TokenSigner("some-other-index-key", 3600).issue("alice/app", "write", "alice")
    images, authorized = _check(client, "alice/app", foreign)
    assert images.status_code == 401 and authorized.status_code == 403


def test_a_rotated_out_key_still_verifies_only_as_fallback():
    old = TokenSigner("old-key", 3600).issue("ns/repo", "read", None)
    assert TokenSigner("new-key", 3600, fallback_keys=["old-key"]).verify(old).repository == "ns/repo"
    with pytest.raises(TokenError):
        TokenSigner("new-key", 3600).verify(old)


def test_a_token_of_a_deactivated_user_is_refused(store, client, write_token):
    assert _check(client, "alice/app", write_token)[0].status_code == 200
    store.update_user("alice", active=False)
    images, authorized = _check(client, "alice/app", write_token)
    assert images.status_code == 401 and authorized.status_code == 403


def test_a_token_of_a_deleted_user_is_refused(app, store, client, write_token):
    # Remove the account the way an admin tool would: straight from the users table.
    with store._transaction(store.users_file(), "users") as users:
        users.remove(doc_ids=["alice"])
    images, authorized = _check(client, "alice/app", write_token)
    assert images.status_code == 401 and authorized.status_code == 403


def test_a_demoted_admin_token_loses_library_write(alice, store, client):
    created = alice.put_repository("busybox", IMAGES, auth=ADMIN)
    token = created.headers["X-Docker-Token"]
    assert _check(client, "library/busybox", token)[0].status_code == 200
    store.update_user(ADMIN[0], admin=False)
    assert _check(client, "library/busybox", token)[0].status_code == 403


@pytest.mark.parametrize("auth", [None, "Basic Og==", "Basic " + base64.b64encode(b"alice:wrong").decode()])
def test_anonymous_callers_never_get_write_or_delete_tokens(alice, client, auth):
    headers = {"X-Docker-Token": "true", **({"Authorization": auth} if auth else {})}
    put = client.put("/v1/repositories/alice/app/", data=json.dumps(IMAGES),
                     content_type="application/json", headers=headers)
    assert put.status_code == 401
    assert "X-Docker-Token" not in put.headers
    delete = client.delete("/v1/repositories/alice/app/", headers=headers)
    assert delete.status_code == 401
    assert "X-Docker-Token" not in delete.headers
    # Pulls get a read token, never more.
    assert alice.put_repository("alice/app", IMAGES).status_code == 200
    pulled = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true"})
    assert pulled.headers["X-Docker-Token"].endswith("access=read")


def test_other_users_get_no_write_token(alice, client):
    assert alice.register("mallory", "secret9").status_code == 201
    answer = alice.put_repository("alice/app", IMAGES, auth=("mallory", "secret9"))
    assert answer.status_code == 403
    assert "X-Docker-Token" not in answer.headers


def test_token_responses_are_not_cacheable(alice):
    announced = alice.put_repository("alice/app", IMAGES)
    assert announced.headers["Cache-Control"] == "no-store"
    pulled = alice.get_images("alice/app")
    assert pulled.headers["Cache-Control"] == "no-store"


def test_tokens_and_passwords_never_reach_logs_or_error_bodies(alice, client, caplog, write_token):
    caplog.set_level(logging.DEBUG)
    signature, rest = _parts(write_token)
    tampered = f"signature={signature[:-3]}xyz,{rest}"
    bodies = []
    for remote in ("alice/app", "alice/other", "bad..name/x"):
        for token in (write_token, tampered):
            for response in _check(client, remote, token):
                bodies.append(response.get_data(as_text=True))
    for password in ("secret1", "wrong-password-123", "p" * 100):
        bodies.append(client.get("/v1/users/", headers=basic("alice", password)).get_data(as_text=True))
        bodies.append(client.post("/v1/users/", data=json.dumps(
            {"username": "newuser", "password": password * 10, "email": "n@example.com"}),
            content_type="application/json").get_data(as_text=True))
    everything = "\n".join(bodies) + "\n" + caplog.text
    for secret in (signature, signature[:-3] + "xyz", "secret1", "wrong-password-123", "p" * 100):
        assert secret not in everything


def test_live_server_log_holds_no_tokens_or_passwords(live_server):
    password, wrong = "Sup3r-Secret-Pw", "Wr0ng-Guess-Pw"
    body = json.dumps({"username": "logwatch", "password": password, "email": "l@example.com"}).encode()
    assert live_server.request("POST", "/v1/users/", body=body,
                               headers={"Content-Type": "application/json"})[0] == 201
    assert live_server.request("GET", "/v1/users/", headers=basic("logwatch", wrong))[0] == 401
    status, headers, _ = live_server.request(
        "PUT", "/v1/repositories/logwatch/app/", body=json.dumps(IMAGES).encode(),
        headers={**basic("logwatch", password), "Content-Type": "application/json", "X-Docker-Token": "true"})
    assert status == 200
    token = headers["x-docker-token"]
    signature = token.split(",", 1)[0].removeprefix("signature=")
    for value in (token, token.replace(signature, signature[::-1])):
        live_server.request("GET", "/v1/repositories/logwatch/app/images", headers={"Authorization": f"Token {value}"})
    log = live_server.log()
    assert "/v1/repositories/logwatch/app/images" in log  # the access log is on and was written
    for secret in (password, wrong, signature, signature[::-1]):
        assert secret not in log
