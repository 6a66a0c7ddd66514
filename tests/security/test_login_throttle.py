"""Brute force: failed logins are limited per address and per username; nothing else is."""
from __future__ import annotations

import pytest

from index import create_app
from index.ratelimit import LoginThrottle
from tests.conftest import ADMIN, DockerActions, basic

LIMIT = 3


@pytest.fixture
def settings(settings):
    return {**settings, "LOGIN_FAILURES_PER_MINUTE": LIMIT}


def _login(client, username, password, address="10.0.0.1"):
    return client.get("/v1/users/", headers=basic(username, password),
                      environ_base={"REMOTE_ADDR": address})


def test_failures_per_username_trip_429_with_retry_after_before_bcrypt(alice, client, monkeypatch):
    for attempt in range(LIMIT):
        # A different address each time: only the username key can trip.
        assert _login(client, "alice", f"wrong{attempt}", f"10.0.1.{attempt}").status_code == 401
    checked = []
    monkeypatch.setattr("index.passwords.bcrypt.checkpw", lambda *a: checked.append(a) or False)
    refused = _login(client, "alice", "wrong-again", "10.0.1.99")
    assert refused.status_code == 429
    assert refused.get_json()["error"].startswith("too many failed logins")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert checked == []  # refused before any bcrypt work
    # The right password is refused as well while the username is locked (that is the point).
    monkeypatch.undo()
    assert _login(client, "alice", "secret1", "10.0.1.100").status_code == 429


def test_failures_per_address_trip_across_usernames(alice, client):
    for attempt in range(LIMIT):
        assert _login(client, f"user{attempt:02d}", "whatever", "10.0.2.1").status_code == 401
    refused = _login(client, "someone_else", "whatever", "10.0.2.1")
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    # Another address, another username: untouched.
    assert _login(client, "alice", "secret1", "10.0.2.2").status_code == 200


def test_successful_logins_are_never_counted(alice, client):
    for _ in range(LIMIT * 4):
        assert _login(client, "alice", "secret1").status_code == 200


def test_anonymous_and_token_requests_are_never_counted(alice, client):
    announced = alice.put_repository("alice/app", [{"id": "a" * 64}])
    token = announced.headers["X-Docker-Token"]
    for _ in range(LIMIT):
        assert _login(client, "mallory", "guess", "127.0.0.1").status_code == 401
    assert _login(client, "mallory", "guess", "127.0.0.1").status_code == 429
    # The same address still validates tokens and pulls anonymously: only Basic failures count.
    for _ in range(LIMIT * 3):
        checked = client.get("/v1/repositories/alice/app/images",
                             headers={"Authorization": f"Token {token}"})
        assert checked.status_code == 200
        assert client.get("/v1/repositories/alice/app/images",
                          headers={"Authorization": "Token signature=bad,repository=\"alice/app\",access=read"}
                          ).status_code == 401
        assert client.get("/v1/repositories/alice/app/images",
                          headers={"Authorization": "Basic Og=="}).status_code == 200


def test_a_push_in_progress_is_not_locked_out(alice, client):
    """Remembered credentials skip the throttle: an attacker cannot break a running push."""
    assert _login(client, "alice", "secret1", "10.0.3.1").status_code == 200
    for attempt in range(LIMIT):
        assert _login(client, "alice", f"wrong{attempt}", "10.0.3.2").status_code == 401
    assert _login(client, "alice", "wrong", "10.0.3.2").status_code == 429
    assert _login(client, "alice", "secret1", "10.0.3.1").status_code == 200


def test_zero_turns_the_limit_off(settings):
    app = create_app({**settings, "LOGIN_FAILURES_PER_MINUTE": 0})
    client = app.test_client()
    for _ in range(20):
        assert _login(client, ADMIN[0], "wrong").status_code == 401


def test_window_slides_and_keys_are_bounded():
    throttle = LoginThrottle(2)
    long_name = "x" * 10_000
    throttle.record_failure("10.0.0.9", long_name)
    throttle.record_failure("10.0.0.8", long_name + "y")  # same first 64 characters: same key
    assert throttle.retry_after("10.0.0.7", long_name) is not None
    assert throttle.retry_after("10.0.0.7", "other") is None
    assert LoginThrottle(0).retry_after("x", "y") is None


def test_live_server_trips_within_workers_times_limit(live_server, report_figure):
    """Through gunicorn with 2 workers: per-process counters, so at most N x limit failures pass."""
    headers = basic("admin", "wrong-password")
    statuses = []
    for _ in range(live_server.workers * 5 + 2):  # LIVE_FAILURE_LIMIT is 5
        status, response_headers, _ = live_server.request("GET", "/v1/users/", headers=headers)
        statuses.append(status)
        if status == 429:
            assert int(response_headers["retry-after"]) >= 1
            break
    report_figure(f"live server, {live_server.workers} workers, limit 5: {len(statuses) - 1} failures "
                  f"answered 401 before the first 429")
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {401}
    assert 5 <= len(statuses) - 1 <= live_server.workers * 5
    # The admin's right password from the same address is refused too while locked...
    assert live_server.request("GET", "/v1/users/", headers=basic(*ADMIN))[0] in (200, 429)
    # ...but anonymous reads are not.
    assert live_server.request("GET", "/v1/search?q=x")[0] == 200


@pytest.mark.slow
def test_the_docker_client_sees_429_not_a_crash(alice, client):
    docker = DockerActions(client)
    for attempt in range(LIMIT):
        docker.login("alice", f"nope{attempt}")
    answer = docker.put_repository("alice/app", [], auth=("alice", "nope"))
    assert answer.status_code == 429
    assert answer.is_json
