"""A deleted account's released name, registered again, is a new account that starts with nothing.

The old alice uploaded an image into bobby's repository (she had a write grant), had webhooks,
a robot, counts and audit records. Deleting her removes her repositories (and tells their
``repo_delete`` webhooks), and once an administrator releases the name, the next "alice" can
neither read, claim nor overwrite her image versions, nor sees her grants, robots or webhooks.
"""
from __future__ import annotations

import json

import pytest

from index.events import EXTENSION_KEY as EVENTS_KEY
from index.registry.migrate import ORPHANS_RETIRED, retire_orphans
from index.services import EXTENSION_KEY
from tests.conftest import basic, image_id
from tests.events.conftest import api, push
from tests.events.receiver import Receiver
from tests.registry.layers import chain
from tests.registry.test_routes import Pusher

W = image_id(0x57)
OLD, NEW, BOBBY = ("alice", "secret1"), ("alice", "newalice1"), ("bobby", "secret2")


@pytest.fixture
def settings(settings):
    return {**settings, "DEFAULT_VISIBILITY": "private", "WEBHOOK_ALLOW_PRIVATE": True}


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        result = runner.invoke(args=list(args), input=input)
        assert result.exit_code == 0, result.output
        return result
    return invoke


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def _hook(client, receiver, path, event):
    answer = api(client, "POST", path, {"event": event, "method": "webhook", "title": event,
                                        "config": {"url": receiver.url}}, auth=OLD)
    assert answer.status_code == 201, answer.data
    return answer.get_json()["uuid"]


def _old_alice_with_everything(client, docker, receiver):
    """The old alice: alice/app, webhooks, a robot, and her W in bobby/shared."""
    for name, password in (OLD, BOBBY):
        assert docker.register(name, password).status_code == 201
    push(client, "alice/app", 1, auth=OLD)
    hooks = {_hook(client, receiver, "/api/v1/repository/alice/app/notification/", "repo_delete"),
             _hook(client, receiver, "/api/v1/user/notification/", "repo_delete"),
             _hook(client, receiver, "/api/v1/user/notification/", "repo_push")}
    assert api(client, "PUT", "/api/v1/user/robots/ci", auth=OLD).status_code in (200, 201)
    push(client, "bobby/shared", 5, auth=BOBBY)
    granted = api(client, "PUT", "/api/v1/repository/bobby/shared/permissions/user/alice", {"role": "write"},
                  auth=BOBBY)
    assert granted.status_code == 200, granted.data
    [old_w] = chain([W], salt="old alice")
    Pusher(client, "bobby/shared", [old_w], auth=OLD).upload_all()
    return hooks, old_w


def test_a_released_name_registered_again_inherits_nothing(client, docker, app, cli, receiver):
    hooks, old_w = _old_alice_with_everything(client, docker, receiver)
    events = app.extensions[EVENTS_KEY]
    activity = app.extensions[EXTENSION_KEY].activity
    activity.pulled("alice/app")
    activity.flush()

    deleted = cli("users", "delete", "alice", "--repositories", "delete", "--yes")
    assert "deleted repository alice/app" in deleted.output
    # Her repository's removal was announced like any delete: both repo_delete hooks heard it.
    events.dispatcher.deliver_due()
    heard = receiver.wait_for(2)
    assert sorted(item.json["event"] for item in heard) == ["repo_delete", "repo_delete"]
    assert {item.json["repository"] for item in heard} == {"alice/app"}
    cli("users", "release", "alice")
    assert docker.register(*NEW).status_code == 201

    # No webhooks (the delivered ones went away, the undelivered push hook too), robots, grants.
    assert api(client, "GET", "/api/v1/user/notification/", auth=NEW).get_json()["notifications"] == []
    assert not any(events.notifications.get(uuid) for uuid in hooks)
    assert api(client, "GET", "/api/v1/user/robots", auth=NEW).get_json()["robots"] == []
    assert client.get("/v1/repositories/bobby/shared/images", headers=basic(*NEW)).status_code == 404
    grants = api(client, "GET", "/api/v1/repository/bobby/shared/permissions/user/", auth=BOBBY).get_json()
    assert "alice" not in json.dumps(grants)
    assert activity.of("alice/app") == {"pulls": 0, "pushes": 0} and "alice/app" not in activity.recency()

    # The image the old alice uploaded: under the new alice's write token, it does not exist...
    [new_w] = chain([W], salt="new alice")
    mine = Pusher(client, "alice/new", [new_w], auth=NEW)
    for route in ("json", "layer", "ancestry"):
        assert client.get(f"/v1/images/{W}/{route}", headers=mine.token).status_code == 404, route
    # ... so docker uploads her own, without touching the old one, which bobby still reads.
    mine.upload_all()
    assert client.get(f"/v1/images/{W}/layer", headers=mine.token).data == new_w.body
    assert client.get(f"/v1/images/{W}/layer", headers=basic(*BOBBY)).data == old_w.body
    assert client.get(f"/v1/images/{W}/layer", headers=basic(*NEW)).data == new_w.body

    # A new alice/app has no history: no pushes of the old one in its log, no deliveries.
    push(client, "alice/app", 1, auth=NEW)
    logs = api(client, "GET", "/api/v1/repository/alice/app/logs", auth=NEW).get_json()["logs"]
    assert [entry["event"] for entry in logs if entry["event"] == "push"] == ["push"]
    assert events.outbox.depth() == 0
    assert api(client, "GET", "/api/v1/repository/alice/app/notification/", auth=NEW).get_json()["notifications"] == []


def test_a_new_account_cannot_claim_an_image_the_old_one_left_held_elsewhere(client, docker, app, cli, receiver):
    """docker's GET json under a write token would make a found version hers (a claim)."""
    _, old_w = _old_alice_with_everything(client, docker, receiver)
    cli("users", "delete", "alice", "--repositories", "delete", "--yes")
    cli("users", "release", "alice")
    assert docker.register(*NEW).status_code == 201
    child = chain([W, image_id(0x58)], salt="new alice")
    mine = Pusher(client, "alice/new", child, auth=NEW)
    assert client.get(f"/v1/images/{W}/json", headers=mine.token).status_code == 404
    # Without uploading W herself, her child image cannot be completed on the old W...
    assert mine.put_json(child[1]).status_code == 400
    versions = app.extensions[EXTENSION_KEY].registry.images.versions(W)
    assert [version["refs"] for version in versions.values()] == [["bobby/shared"]]
    assert all(uploader != "alice" for uploader in versions)


def test_versions_left_by_accounts_deleted_before_the_upgrade_are_retired_once(client, docker, app):
    """A data dir where an account was deleted without retiring its versions (older index)."""
    for name, password in (OLD, BOBBY):
        assert docker.register(name, password).status_code == 201
    push(client, "bobby/shared", 5, auth=BOBBY)
    api(client, "PUT", "/api/v1/repository/bobby/shared/permissions/user/alice", {"role": "write"}, auth=BOBBY)
    [old_w] = chain([W], salt="old alice")
    Pusher(client, "bobby/shared", [old_w], auth=OLD).upload_all()
    found = app.extensions[EXTENSION_KEY]
    found.store.delete_user("alice")  # what an older deletion left: versions keyed "alice"
    found.store.release_name("alice")
    marker = found.store.db_dir / "images" / ORPHANS_RETIRED
    assert not marker.exists()  # the app started on a data dir without images: nothing to do
    assert retire_orphans(found.registry) == 1
    assert marker.exists() and retire_orphans(found.registry) == 0
    assert docker.register(*NEW).status_code == 201
    mine = Pusher(client, "alice/new", chain([W], salt="new alice"), auth=NEW)
    assert client.get(f"/v1/images/{W}/json", headers=mine.token).status_code == 404
    # bobby's and the blob's records followed: his Basic read still gets the old bytes.
    assert client.get(f"/v1/images/{W}/layer", headers=basic(*BOBBY)).data == old_w.body
    [uploader] = found.registry.images.versions(W)
    assert uploader.startswith("alice~")
    assert found.registry.images.blob_users(found.registry.images.versions(W)[uploader]["blob"]) == [f"{W}/{uploader}"]


def test_retiring_renames_the_account_and_its_robots_only(app):
    registry = app.extensions[EXTENSION_KEY].registry
    suffix = "~1234"
    names = ["alice", "alice+ci", "alicex", "alice+ci~old", "bobby", "alice~old"]
    results = {}
    original = registry.retire

    def capture(rename):
        results.update({name: rename(name) for name in names})
        return 0
    registry.retire = capture
    try:
        registry.account_removed("alice", "1234")
    finally:
        registry.retire = original
    assert results == {"alice": "alice" + suffix, "alice+ci": "alice+ci" + suffix, "alicex": None,
                       "alice+ci~old": None, "bobby": None, "alice~old": None}


def _robot_with_write(client):
    made = api(client, "PUT", "/api/v1/user/robots/ci", auth=OLD)
    assert made.status_code in (200, 201), made.data
    granted = api(client, "PUT", "/api/v1/repository/alice/app/permissions/user/alice+ci", {"role": "write"},
                  auth=OLD)
    assert granted.status_code == 200, granted.data
    return ("alice+ci", made.get_json()["token"])


def test_a_robot_made_again_under_a_deleted_ones_name_inherits_nothing(client, docker):
    assert docker.register(*OLD).status_code == 201
    push(client, "alice/app", 1, auth=OLD)
    [old_w] = chain([W], salt="old robot")
    Pusher(client, "alice/app", [old_w], auth=_robot_with_write(client)).upload_all()
    assert api(client, "DELETE", "/api/v1/user/robots/ci", auth=OLD).status_code == 204
    again = _robot_with_write(client)
    [new_w] = chain([W], salt="new robot")
    mine = Pusher(client, "alice/app", [new_w], auth=again)
    assert client.get(f"/v1/images/{W}/json", headers=mine.token).status_code == 404
    mine.upload_all()
    assert client.get(f"/v1/images/{W}/layer", headers=mine.token).data == new_w.body


def test_an_organizations_name_taken_by_an_account_inherits_nothing(client, docker, app, receiver):
    assert docker.register(*OLD).status_code == 201
    assert api(client, "POST", "/api/v1/organization/", {"name": "acme", "email": "ops@acme.example"},
               auth=OLD).status_code == 201
    hook = api(client, "POST", "/api/v1/organization/acme/notification/",
               {"event": "repo_push", "method": "webhook", "config": {"url": receiver.url}}, auth=OLD)
    assert hook.status_code == 201, hook.data
    assert api(client, "DELETE", "/api/v1/organization/acme", auth=OLD).status_code == 204
    assert docker.register("acme", "acme1234").status_code == 201
    assert api(client, "GET", "/api/v1/user/notification/", auth=("acme", "acme1234")).get_json()["notifications"] == []
    push(client, "acme/app", 1, auth=("acme", "acme1234"))
    assert app.extensions[EVENTS_KEY].outbox.depth() == 0


def test_a_transfer_takes_the_images_the_accounts_robots_pushed_along(client, docker, cli):
    """davey's CI robot pushed davey/app; moved to bobby/app, its pulls still get every layer."""
    for name, password in (OLD, BOBBY):
        assert docker.register(name, password).status_code == 201
    push(client, "alice/app", 1, auth=OLD)
    [robot_w] = chain([W], salt="robot")
    robot = Pusher(client, "alice/app", [robot_w], auth=_robot_with_write(client))
    robot.upload_all()
    tagged = client.put("/v1/repositories/alice/app/tags/ci", data=json.dumps(W), headers=robot.token,
                        content_type="application/json")
    assert tagged.status_code == 200
    cli("users", "delete", "alice", "--repositories", "transfer", "--to", "bobby", "--yes")
    listed = client.get("/v1/repositories/bobby/app/images", headers={**basic(*BOBBY), "X-Docker-Token": "true"})
    read = {"Authorization": "Token " + listed.headers["X-Docker-Token"]}
    assert client.get(f"/v1/images/{W}/layer", headers=read).data == robot_w.body
    assert client.get(f"/v1/images/{image_id(2)}/json", headers=read).status_code == 200
