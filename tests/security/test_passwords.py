"""Passwords: no user enumeration by answer or by time, bcrypt's 72-byte limit, the credential cache."""
from __future__ import annotations

import json
import os
import statistics
import time

import pytest

from index import create_app
from index.passwords import VerifiedCredentials, check_password, hash_password
from index.services import EXTENSION_KEY
from tests.conftest import ADMIN, basic

# Real bcrypt cost for the timing test: high enough that a skipped bcrypt (~0.1 ms) stands out
# against one bcrypt (~15 ms at 8 rounds), low enough to stay quick.
TIMING_ROUNDS = 8
TIMING_SAMPLES = int(os.environ.get("INDEX_TIMING_SAMPLES", "15"))


def _login(client, username, password):
    return client.get("/v1/users/", headers=basic(username, password))


def test_unknown_user_and_wrong_password_get_the_same_answer(alice, client):
    known = _login(client, "alice", "wrong-password")
    unknown = _login(client, "nobody_here", "wrong-password")
    assert known.status_code == unknown.status_code == 401
    assert known.data == unknown.data
    assert known.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


@pytest.mark.slow
def test_unknown_user_and_wrong_password_take_the_same_time(tmp_path, report_figure):
    """Medians of interleaved real-bcrypt logins; a missing dummy check would be ~100x faster."""
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path / "data", "SECRET_KEY": "timing",
                      "BCRYPT_ROUNDS": TIMING_ROUNDS, "LOGIN_FAILURES_PER_MINUTE": 0,
                      "CREDENTIAL_CACHE_SECONDS": 0})
    client = app.test_client()
    body = json.dumps({"username": "victim", "password": "right-password", "email": "v@example.com"})
    assert client.post("/v1/users/", data=body, content_type="application/json").status_code == 201
    known, unknown = [], []
    for sample in range(TIMING_SAMPLES):
        for name, bucket in (("victim", known), (f"ghost{sample:03d}", unknown)):
            started = time.perf_counter()
            assert _login(client, name, "wrong-password").status_code == 401
            bucket.append(time.perf_counter() - started)
    known_ms, unknown_ms = statistics.median(known) * 1000, statistics.median(unknown) * 1000
    ratio = unknown_ms / known_ms
    report_figure(f"login timing, bcrypt {TIMING_ROUNDS} rounds, {TIMING_SAMPLES} samples each: "
                  f"existing user {known_ms:.2f} ms, unknown user {unknown_ms:.2f} ms, ratio {ratio:.2f}")
    assert 1 / 3 < ratio < 3  # loose for a noisy machine; a skipped bcrypt gives ~0.02


def test_check_password_runs_bcrypt_for_unknown_users(monkeypatch):
    calls = []
    import bcrypt
    real = bcrypt.checkpw
    monkeypatch.setattr("index.passwords.bcrypt.checkpw", lambda *a: calls.append(a) or real(*a))
    assert check_password("anything", None, 4) is False
    assert len(calls) == 1


@pytest.mark.parametrize("password", ["p" * 73, "é" * 37, "🔑" * 19])
def test_over_72_bytes_is_a_400_at_registration(docker, password):
    answer = docker.register("longpass", password)
    assert answer.status_code == 400
    assert "72 bytes" in answer.get_json()["error"]
    assert password not in answer.get_data(as_text=True)


def test_over_72_bytes_is_a_400_at_change(alice, client):
    answer = client.put("/v1/users/alice/", data=json.dumps({"password": "x" * 100}),
                        headers=basic("alice", "secret1"), content_type="application/json")
    assert answer.status_code == 400
    assert _login(client, "alice", "secret1").status_code == 200


def test_exactly_72_bytes_works(docker, client):
    password = "k" * 72
    assert docker.register("exact72", password).status_code == 201
    assert _login(client, "exact72", password).status_code == 200
    # bcrypt would ignore byte 73: a longer password with the same 72-byte prefix must not pass.
    assert _login(client, "exact72", password + "extra").status_code == 401


@pytest.mark.parametrize("password", ["x" * 5000, "\ud800abcdef", "abc\x00def"])
def test_odd_passwords_at_login_are_a_plain_401(alice, client, password):
    raw = ("alice:" + password).encode("utf-8", "surrogatepass")
    import base64
    answer = client.get("/v1/users/", headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})
    assert answer.status_code == 401


@pytest.mark.parametrize("password", ["\ud800abcdef", "abc\x00def", 12345, None, ["secret1"]])
def test_odd_passwords_at_registration_are_a_400(docker, client, password):
    body = json.dumps({"username": "oddpass", "password": password, "email": "o@example.com"})
    answer = client.post("/v1/users/", data=body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.is_json


def test_configured_rounds_are_used(docker, store):
    assert docker.register("roundsuser", "secret1").status_code == 201
    assert store.find_user("roundsuser")["password_hash"].startswith("$2b$04$")
    assert hash_password("secret1", 5).startswith("$2b$05$")


def test_cache_spares_bcrypt_on_repeated_basic_auth(alice, client, monkeypatch):
    assert _login(client, "alice", "secret1").status_code == 200
    calls = []
    monkeypatch.setattr("index.passwords.bcrypt.checkpw", lambda *a: calls.append(a) or False)
    for _ in range(5):
        assert _login(client, "alice", "secret1").status_code == 200
    assert calls == []
    # A wrong password is never served from the cache.
    assert _login(client, "alice", "secret2").status_code == 401
    assert len(calls) == 1


def test_password_change_makes_cached_credentials_miss(alice, client):
    assert _login(client, "alice", "secret1").status_code == 200  # now remembered
    changed = client.put("/v1/users/alice/", data=json.dumps({"password": "newsecret"}),
                         headers=basic("alice", "secret1"), content_type="application/json")
    assert changed.status_code == 204
    assert _login(client, "alice", "secret1").status_code == 401
    assert _login(client, "alice", "newsecret").status_code == 200


def test_password_change_in_another_worker_makes_cached_credentials_miss(settings, tmp_path):
    """Two apps on one data dir stand for two gunicorn workers."""
    worker_a, worker_b = create_app(settings).test_client(), create_app(settings).test_client()
    assert _login(worker_a, *ADMIN).status_code == 200
    changed = worker_b.put(f"/v1/users/{ADMIN[0]}/", data=json.dumps({"password": "rotated"}),
                           headers=basic(*ADMIN), content_type="application/json")
    assert changed.status_code == 204
    assert _login(worker_a, *ADMIN).status_code == 401
    assert _login(worker_a, ADMIN[0], "rotated").status_code == 200


def test_cache_keys_never_hold_the_password(app):
    cache: VerifiedCredentials = app.extensions[EXTENSION_KEY].credentials
    cache.remember("alice", "hunter2-secret", "$2b$04$hash")
    stored = repr(cache._entries)
    assert "hunter2" not in stored and "alice" not in stored
    assert cache.is_verified("alice", "hunter2-secret", "$2b$04$hash")
    assert not cache.is_verified("alice", "hunter2-secret", "$2b$04$other")
    assert not cache.is_verified("alice", "hunter2-secreT", "$2b$04$hash")


def test_cache_entries_expire():
    cache = VerifiedCredentials(b"k", ttl_seconds=0.05)
    cache.remember("bob", "pw", "h")
    assert cache.is_verified("bob", "pw", "h")
    time.sleep(0.1)
    assert not cache.is_verified("bob", "pw", "h")
