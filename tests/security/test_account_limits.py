"""Issue 11 part 5, the account limits: e-mail addresses per account and registrations per client
address per hour, each a setting, a clear JSON 400/429, nothing half-written."""
from __future__ import annotations

import json

import pytest

from index import create_app
from tests.conftest import basic, disk_state


def _register(client, username, address="198.51.100.7", email=None):
    body = {"username": username, "password": "secret1", "email": email or f"{username}@example.com"}
    return client.post("/v1/users/", data=json.dumps(body), content_type="application/json",
                       environ_overrides={"REMOTE_ADDR": address})


def _add_email(client, email):
    return client.put("/v1/users/alice/", data=json.dumps({"email": email}),
                      headers=basic("alice", "secret1"), content_type="application/json")


def test_an_account_holds_at_most_max_emails_addresses(settings):
    app = create_app({**settings, "MAX_EMAILS_PER_ACCOUNT": 3})
    client = app.test_client()
    assert _register(client, "alice").status_code == 201
    assert _add_email(client, "two@example.com").status_code == 204
    assert _add_email(client, "three@example.com").status_code == 204
    before = disk_state(app.config["DATA_DIR"])
    refused = _add_email(client, "four@example.com")
    assert refused.status_code == 400
    assert "INDEX_MAX_EMAILS_PER_ACCOUNT" in refused.get_json()["error"]
    assert disk_state(app.config["DATA_DIR"]) == before
    # An address it already holds is no new one; a password change still goes through.
    assert _add_email(client, "THREE@example.com").status_code == 204
    changed = client.put("/v1/users/alice/", data=json.dumps({"password": "secret2"}),
                         headers=basic("alice", "secret1"), content_type="application/json")
    assert changed.status_code == 204


def test_the_default_keeps_one_account_from_growing_the_users_file(client):
    assert _register(client, "alice").status_code == 201
    statuses = [_add_email(client, f"a{n}@example.com").status_code for n in range(30)]
    assert statuses.count(204) == 9 and statuses[9:] == [400] * 21  # default: 10 addresses


def test_registrations_per_address_per_hour(settings):
    app = create_app({**settings, "REGISTRATIONS_PER_HOUR": 3})
    client = app.test_client()
    assert [_register(client, f"user{n}").status_code for n in range(3)] == [201, 201, 201]
    before = disk_state(app.config["DATA_DIR"])
    refused = _register(client, "user3")
    assert refused.status_code == 429
    assert "too many registrations" in refused.get_json()["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert disk_state(app.config["DATA_DIR"]) == before
    # docker login of an existing account still hears "already exists" and goes on to log in,
    assert _register(client, "user0").data == b'"Username or email already exists"'
    # and another address may still register.
    assert _register(client, "user3", address="198.51.100.8").status_code == 201


def test_zero_turns_the_registration_limit_off(settings):
    client = create_app({**settings, "REGISTRATIONS_PER_HOUR": 0}).test_client()
    assert {_register(client, f"user{n}").status_code for n in range(25)} == {201}


@pytest.mark.parametrize("name, value", [("REGISTRATIONS_PER_HOUR", "-1"), ("MAX_EMAILS_PER_ACCOUNT", "0"),
                                         ("MAX_EMAILS_PER_ACCOUNT", "many")])
def test_bad_limit_settings_stop_the_start(settings, name, value):
    from index.config import ConfigError
    with pytest.raises(ConfigError, match=name):
        create_app({**settings, name: value})
