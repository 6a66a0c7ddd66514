"""Issue 11 part 2: no token outlives the account state it was issued to, a deleted account's
repositories are deleted or transferred (the CLI says which), and its name stays reserved."""
from __future__ import annotations

import json

import pytest

from index.services import EXTENSION_KEY
from index.store import generation_of
from tests.conftest import basic, disk_state, image_id
from tests.registry.layers import chain
from tests.registry.test_routes import Pusher


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(args=list(args), input=input)
    return invoke


def _register(client, username, password="secret1"):
    body = {"username": username, "password": password, "email": f"{username}@example.com"}
    return client.post("/v1/users/", data=json.dumps(body), content_type="application/json")


def _push_tagged(client, remote, ids, auth, *, salt=""):
    """A whole push of ``ids`` (a chain) to ``remote``, tagged latest; returns the Pusher."""
    pusher = Pusher(client, remote, chain(ids, salt=salt), auth=auth)
    pusher.upload_all()
    tagged = _tag(client, remote, ids[-1], pusher.token)
    assert tagged.status_code == 200, tagged.data
    return pusher


def _tag(client, remote, target, token_headers, tag="latest"):
    return client.put(f"/v1/repositories/{remote}/tags/{tag}", data=json.dumps(target),
                      headers=token_headers, content_type="application/json")


def _tags(client, remote):
    return client.get(f"/v1/repositories/{remote}/tags", headers=basic("admin", "adminpass"))


# -- tokens die with their account generation ---------------------------------------------------

def test_a_write_token_from_before_a_password_change_no_longer_tags(client):
    assert _register(client, "alice").status_code == 201
    old = _push_tagged(client, "alice/app", [image_id(1), image_id(2)], ("alice", "secret1"))
    changed = client.put("/v1/users/alice/", data=json.dumps({"password": "secret2"}),
                         headers=basic("alice", "secret1"), content_type="application/json")
    assert changed.status_code == 204
    refused = _tag(client, "alice/app", image_id(1), old.token)
    assert refused.status_code == 401
    assert "password changed" in refused.get_json()["error"]
    assert _tags(client, "alice/app").get_json() == {"latest": image_id(2)}
    # A registry checking the old token hears the same; a fresh login's token works.
    assert client.get("/v1/repositories/alice/app/images", headers=old.token).status_code == 401
    fresh = Pusher(client, "alice/app", chain([image_id(1), image_id(2)]), auth=("alice", "secret2"))
    assert _tag(client, "alice/app", image_id(1), fresh.token).status_code == 200


@pytest.mark.parametrize("how", ["set-password", "deactivate", "bump"])
def test_admin_actions_end_every_older_token(client, cli, store, how):
    assert _register(client, "alice").status_code == 201
    old = _push_tagged(client, "alice/app", [image_id(1)], ("alice", "secret1"))
    if how == "set-password":
        assert cli("users", "set-password", "alice", "--password-stdin", input="secret9\n").exit_code == 0
    elif how == "deactivate":
        assert cli("users", "deactivate", "alice").exit_code == 0
        assert cli("users", "activate", "alice").exit_code == 0  # active again: old tokens stay dead
    else:
        store.bump_generation("alice")  # what a robot-token regeneration calls
    assert _tag(client, "alice/app", image_id(1), old.token, tag="other").status_code == 401
    assert client.put("/v1/repositories/alice/app/auth", headers=old.token).status_code == 403


def test_anonymous_read_tokens_do_not_depend_on_any_account(client, store):
    assert _register(client, "alice").status_code == 201
    _push_tagged(client, "alice/app", [image_id(1)], ("alice", "secret1"))
    listed = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true"})
    read = {"Authorization": "Token " + listed.headers["X-Docker-Token"]}
    store.update_user("alice", password_hash="x")  # a new generation for alice
    assert client.get("/v1/repositories/alice/app/tags", headers=read).status_code == 200


def test_tokens_issued_before_generations_may_read_but_never_write(client, app):
    assert _register(client, "alice").status_code == 201
    _push_tagged(client, "alice/app", [image_id(1)], ("alice", "secret1"))
    signer = app.extensions[EXTENSION_KEY].signer
    legacy = {access: {"Authorization": "Token " + signer.issue("alice/app", access, "alice")}
              for access in ("read", "write")}
    assert client.get("/v1/repositories/alice/app/tags", headers=legacy["read"]).status_code == 200
    refused = _tag(client, "alice/app", image_id(1), legacy["write"], tag="legacy")
    assert refused.status_code == 401
    assert "older version" in refused.get_json()["error"]


def test_a_token_carrying_another_generation_is_refused(client, app, store):
    assert _register(client, "alice").status_code == 201
    _push_tagged(client, "alice/app", [image_id(1)], ("alice", "secret1"))
    signer = app.extensions[EXTENSION_KEY].signer
    current = generation_of(store.find_user("alice"))
    account_id, serial = current.rsplit(".", 1)
    for generation, status in ((current, 200), (f"{account_id}.{int(serial) + 1}", 401), (f"other.{serial}", 401)):
        token = {"Authorization": "Token " + signer.issue("alice/app", "write", "alice", generation=generation)}
        assert _tag(client, "alice/app", image_id(1), token, tag="g").status_code == status


# -- deleting an account: davey/app must not be taken over ----------------------------------------

def test_the_davey_app_take_over_fails(client, cli, app):
    """davey is deleted; someone registers "davey" and tries to retag davey/app with the old token."""
    assert _register(client, "davey").status_code == 201
    davey = _push_tagged(client, "davey/app", [image_id(1), image_id(2)], ("davey", "secret1"))
    data_dir = app.config["DATA_DIR"]

    before = disk_state(data_dir)
    unsaid = cli("users", "delete", "davey", "--yes")
    assert unsaid.exit_code != 0
    assert "--repositories delete, or --repositories transfer --to" in unsaid.output
    assert disk_state(data_dir) == before  # refused before anything changed

    done = cli("users", "delete", "davey", "--repositories", "delete", "--yes")
    assert done.exit_code == 0, done.output
    assert "deleted repository davey/app" in done.output and "stays reserved" in done.output
    assert client.get("/v1/repositories/davey/app/images").status_code == 404
    assert not (data_dir / "layers" / image_id(1)[:2] / f"{image_id(1)}.layer").exists()

    # Nobody gets the name: docker login's registration and the CLI both refuse it.
    assert _register(client, "davey", "attacker1").data == b'"Username or email already exists"'
    assert client.get("/v1/users/", headers=basic("davey", "attacker1")).status_code == 401
    assert cli("users", "create", "davey", "--email", "d@example.com", "--password-stdin",
               input="attacker1\n").exit_code != 0
    # The deleted account's token is dead.
    assert _tag(client, "davey/app", image_id(1), davey.token).status_code in (401, 404)

    # An administrator releases the name; the new davey is another account: old tokens stay dead.
    assert cli("users", "reserved").output.startswith("davey")
    assert "reserved" in cli("users", "show", "davey").output
    assert cli("users", "release", "davey").exit_code == 0
    assert _register(client, "davey", "newdavey1").status_code == 201
    Pusher(client, "davey/app", chain([image_id(3)]), auth=("davey", "newdavey1")).upload_all()
    assert _tag(client, "davey/app", image_id(3), davey.token).status_code == 401
    assert client.get("/v1/repositories/davey/app/images", headers=davey.token).status_code == 401


def test_deleting_with_transfer_moves_the_repositories_whole(client, cli, app):
    for name in ("davey", "bobby"):
        assert _register(client, name).status_code == 201
    davey = _push_tagged(client, "davey/app", [image_id(1), image_id(2)], ("davey", "secret1"))
    moved = cli("users", "delete", "davey", "--repositories", "transfer", "--to", "bobby", "--yes")
    assert moved.exit_code == 0, moved.output
    assert "moved repository davey/app to bobby/app" in moved.output
    assert client.get("/v1/repositories/davey/app/images").status_code == 404
    # bobby now owns and can pull and push it; its tags and layers came along.
    assert _tags(client, "bobby/app").get_json() == {"latest": image_id(2)}
    listed = client.get("/v1/repositories/bobby/app/images", headers={"X-Docker-Token": "true"})
    assert [entry["id"] for entry in listed.get_json()] == [image_id(1), image_id(2)]
    read = {"Authorization": "Token " + listed.headers["X-Docker-Token"]}
    assert client.get(f"/v1/images/{image_id(1)}/layer", headers=read).status_code == 200
    bobby = Pusher(client, "bobby/app", chain([image_id(1), image_id(2)]), auth=("bobby", "secret1"))
    assert _tag(client, "bobby/app", image_id(1), bobby.token, tag="v1").status_code == 200
    # davey's token follows neither the old nor the new name.
    assert _tag(client, "bobby/app", image_id(1), davey.token).status_code == 403
    assert _tag(client, "davey/app", image_id(1), davey.token).status_code in (401, 404)


@pytest.mark.parametrize("args, message", [
    (["--repositories", "transfer"], "needs --to"),
    (["--to", "bobby"], "--to goes with --repositories transfer"),
    (["--repositories", "transfer", "--to", "nobody"], "no user 'nobody'"),
    (["--repositories", "transfer", "--to", "davey"], "another account"),
    (["--repositories", "transfer", "--to", "bobby"], "bobby already has repositories named app"),
])
def test_unclear_or_impossible_deletions_change_nothing(client, cli, app, args, message):
    for name in ("davey", "bobby"):
        assert _register(client, name).status_code == 201
    _push_tagged(client, "davey/app", [image_id(1)], ("davey", "secret1"))
    _push_tagged(client, "bobby/app", [image_id(5)], ("bobby", "secret1"), salt="b")
    before = disk_state(app.config["DATA_DIR"])
    result = cli("users", "delete", "davey", *args, "--yes")
    assert result.exit_code != 0
    assert message in result.output
    assert disk_state(app.config["DATA_DIR"]) == before
    assert client.get("/v1/users/", headers=basic("davey", "secret1")).status_code == 200


def test_an_account_without_repositories_needs_no_choice_and_release_checks_the_name(client, cli):
    assert _register(client, "carol").status_code == 201
    assert cli("users", "delete", "carol", "--yes").exit_code == 0
    assert "not reserved" in cli("users", "release", "nobody").output
    assert "existing account" in cli("users", "release", "admin").output
    assert cli("users", "release", "carol").exit_code == 0
    assert _register(client, "carol").status_code == 201


# -- across gunicorn workers ----------------------------------------------------------------------

def test_a_password_change_ends_old_tokens_in_every_worker(live_server):
    """Each worker keeps its own caches (verified signatures, parsed files): the old token must be
    refused by whichever worker answers, right after the change was answered by another."""
    json_headers = {"Content-Type": "application/json"}
    body = json.dumps({"username": "genlive", "password": "secret1", "email": "genlive@example.com"}).encode()
    assert live_server.request("POST", "/v1/users/", body, json_headers)[0] == 201
    status, headers, _ = live_server.request("PUT", "/v1/repositories/genlive/app/", b"[]",
                                             {**json_headers, **basic("genlive", "secret1"), "X-Docker-Token": "true"})
    assert status == 200
    old = {"Authorization": "Token " + headers["x-docker-token"]}
    # Every worker has verified (and remembered) the token before the change.
    assert {live_server.request("GET", "/v1/repositories/genlive/app/images", headers=old)[0]
            for _ in range(8)} == {200}
    changed = live_server.request("PUT", "/v1/users/genlive/", json.dumps({"password": "secret2"}).encode(),
                                  {**json_headers, **basic("genlive", "secret1")})
    assert changed[0] == 204
    assert {live_server.request("GET", "/v1/repositories/genlive/app/images", headers=old)[0]
            for _ in range(8)} == {401}
    assert {live_server.request("PUT", "/v1/repositories/genlive/app/auth", headers=old)[0]
            for _ in range(4)} == {403}
