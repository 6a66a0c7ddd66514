"""The ``/api/v1`` management API: shapes, status codes and errors (issue 12's table)."""
from __future__ import annotations

import json

from tests.conftest import ADMIN, basic

from .world import PASSWORD, World, call_json


def test_create_repository_and_read_it_back(world: World):
    created = world.api("POST", "/repository", "cody",
                        {"namespace": "acme", "repository": "tool", "visibility": "private",
                         "description": "built by cody"})
    assert created.status_code == 201
    shown = world.api("GET", "/repository/acme/tool", "cody")
    assert shown.status_code == 200
    assert shown.get_json() == {"namespace": "acme", "name": "tool", "description": "built by cody",
                                "is_public": False, "can_write": True, "can_admin": True}
    # A team creator is admin of what it created, and of nothing else in the organization.
    assert world.api("GET", "/repository/acme/tool/permissions/user/", "cody").get_json() == {
        "permissions": {"cody": {"name": "cody", "role": "admin", "is_robot": False}}}
    assert world.api("GET", "/repository/acme/app", "cody").status_code == 404
    # Taken: 409; a team member without creator, a stranger, anonymous: 403 / 403 / 401.
    assert world.api("POST", "/repository", "olga", {"namespace": "acme", "repository": "tool"}).status_code == 409
    assert world.api("POST", "/repository", "mira", {"namespace": "acme", "repository": "x"}).status_code == 403
    assert world.api("POST", "/repository", "bobby", {"namespace": "acme", "repository": "x"}).status_code == 403
    assert world.api("POST", "/repository", None, {"namespace": "acme", "repository": "x"}).status_code == 401
    assert world.api("POST", "/repository", ("bobby", "wrong-pass"),
                     {"namespace": "acme", "repository": "x"}).status_code == 401
    # Own namespace: fine, with the default visibility (private).
    assert world.api("POST", "/repository", "alice", {"namespace": "alice", "repository": "x"}).status_code == 201
    assert world.api("GET", "/repository/alice/x", "alice").get_json()["is_public"] is False
    assert world.api("GET", "/repository/alice/x", "bobby").status_code == 404
    # library: administrators only.
    assert world.api("POST", "/repository", "alice", {"namespace": "library", "repository": "x"}).status_code == 403
    assert world.api("POST", "/repository", "admin", {"namespace": "library", "repository": "x",
                                                      "visibility": "public"}).status_code == 201


def test_bad_bodies_are_400_with_json_errors(world: World):
    cases = [
        ("POST", "/repository", {"namespace": "acme"}),
        ("POST", "/repository", {"namespace": "acme", "repository": "x", "visibility": "secret"}),
        ("POST", "/repository", {"namespace": "ACME", "repository": "x"}),
        ("POST", "/repository", {"namespace": "acme", "repository": "x", "extra": 1}),
        ("POST", "/repository", ["not", "an", "object"]),
        ("POST", "/repository/acme/app/changevisibility", {"visibility": "hidden"}),
        ("PUT", "/repository/acme/app/permissions/user/rita", {"role": "owner"}),
        ("PUT", "/repository/acme/app/permissions/user/rita", {}),
        ("PUT", "/organization/acme/team/devs", {"role": "read"}),
        ("PUT", "/organization/acme/team/Bad-Name", {"role": "member"}),
        ("PUT", "/organization/acme/team/owners", {"role": "member"}),
        ("DELETE", "/organization/acme/team/owners", None),
        ("POST", "/organization/", {"name": "neworg"}),
        ("POST", "/organization/", {"name": "x", "email": "x@example.com"}),
        ("PUT", "/organization/acme/robots/Bad", None),
        # robots only get grants in their own namespace
        ("PUT", "/repository/alice/own/permissions/user/acme+reader", {"role": "read"}),
    ]
    assert world.api("POST", "/repository", "alice", {"namespace": "alice", "repository": "own"}).status_code == 201
    for method, path, value in cases:
        answer = world.api(method, path, "olga" if "alice" not in path else "alice", value)
        assert answer.status_code == 400, (method, path, answer.status_code, answer.get_data())
        assert isinstance(answer.get_json()["error"], str)
    not_json = world.client.post("/api/v1/repository", data="{", headers=basic("olga", PASSWORD),
                                 content_type="application/json")
    assert not_json.status_code == 400 and "error" in not_json.get_json()


def test_permissions_for_users_robots_and_teams(world: World):
    listed = world.api("GET", "/repository/acme/app/permissions/user/", "adam").get_json()["permissions"]
    assert {name: entry["role"] for name, entry in listed.items()} == {
        "rita": "read", "wendy": "write", "adam": "admin",
        "acme+reader": "read", "acme+writer": "write", "acme+boss": "admin"}
    assert listed["acme+reader"]["is_robot"] is True
    assert world.api("GET", "/repository/acme/app/permissions/team/", "adam").get_json() == {
        "permissions": {"devs": {"name": "devs", "role": "read"}}}
    # Unknown user / team: 404; teams in a user namespace: 404 too (there are none).
    assert world.api("PUT", "/repository/acme/app/permissions/user/nobody_here", "adam", {"role": "read"}).status_code == 404
    assert world.api("PUT", "/repository/acme/app/permissions/team/ghosts", "adam", {"role": "read"}).status_code == 404
    assert world.api("POST", "/repository", "alice", {"namespace": "alice", "repository": "own"}).status_code == 201
    assert world.api("PUT", "/repository/alice/own/permissions/team/devs", "alice", {"role": "read"}).status_code == 404
    # Team grant upgrades every member at once.
    assert world.api("PUT", "/repository/acme/app/permissions/team/devs", "adam", {"role": "write"}).get_json() == {
        "name": "devs", "role": "write"}
    assert world.api("GET", "/repository/acme/app", "mira").get_json()["can_write"] is True
    # Membership counts at once as well: out of the team, out of the repository.
    assert world.api("DELETE", "/organization/acme/team/devs/members/mira", "olga").status_code == 204
    assert world.api("GET", "/repository/acme/app", "mira").status_code == 404
    assert world.api("DELETE", "/organization/acme/team/devs/members/mira", "olga").status_code == 404


def test_organizations_teams_and_members(world: World):
    # Names are shared with users: 409 either way.
    assert world.api("POST", "/organization/", "bobby", {"name": "alice", "email": "a@example.com"}).status_code == 409
    assert world.api("POST", "/organization/", "bobby", {"name": "acme", "email": "a@example.com"}).status_code == 409
    taken = call_json(world.client, "POST", "/v1/users/", {}, {"username": "acme", "password": PASSWORD,
                                                                 "email": "someone@example.com"})
    assert taken.status_code == 400 and taken.get_data() == b'"Username or email already exists"'
    assert world.api("POST", "/organization/", "bobby", {"name": "bobco", "email": "b@example.com"}).get_json() == {
        "name": "bobco", "email": "b@example.com"}
    assert world.api("GET", "/organization/bobco/team/owners/members", "bobby").get_json() == {
        "members": [{"name": "bobby", "kind": "user"}]}
    # Not an admin of it: 403; unknown: 404; anonymous: 401.
    assert world.api("PUT", "/organization/bobco/team/x1", "olga", {"role": "member"}).status_code == 403
    assert world.api("PUT", "/organization/nosuch/team/x1", "olga", {"role": "member"}).status_code == 404
    assert world.api("PUT", "/organization/bobco/team/x1", None, {"role": "member"}).status_code == 401
    assert world.api("GET", "/organization/bobco/team/owners/members", "olga").status_code == 403
    # A team member (not admin) may list but not change.
    assert world.api("GET", "/organization/acme/team/devs/members", "mira").get_json() == {
        "members": [{"name": "mira", "kind": "user"}]}
    assert world.api("PUT", "/organization/acme/team/devs/members/bobby", "mira").status_code == 403
    assert world.api("PUT", "/organization/acme/team/devs/members/acme+none", "tara").get_json() == {
        "name": "acme+none", "kind": "robot"}
    assert world.api("PUT", "/organization/acme/team/devs/members/nobody_here", "tara").status_code == 404
    # A user in many teams gets the highest: mira joins ops (admin).
    assert world.api("PUT", "/organization/acme/team/ops/members/mira", "olga").status_code == 200
    assert world.api("GET", "/repository/acme/app", "mira").get_json()["can_admin"] is True
    # Deleting a team drops its grants: devs' read on acme/app goes with it.
    assert world.api("DELETE", "/organization/acme/team/devs", "tara").status_code == 204
    assert "devs" not in world.api("GET", "/repository/acme/app/permissions/team/", "olga").get_json()["permissions"]
    assert world.api("DELETE", "/organization/acme/team/devs", "tara").status_code == 404
    # The last owner stays; an organization with repositories is not deleted (409).
    assert world.api("DELETE", "/organization/bobco/team/owners/members/bobby", "bobby").status_code == 400
    assert world.api("DELETE", "/organization/acme", "olga").status_code == 409
    assert world.api("DELETE", "/organization/bobco", "olga").status_code == 403
    assert world.api("DELETE", "/organization/bobco", "bobby").status_code == 204
    assert world.api("DELETE", "/organization/bobco", "bobby").status_code == 404


def test_creator_team_creates_by_push_and_member_does_not(world: World):
    cody = world.callers["cody"].headers
    created = call_json(world.client, "PUT", "/v1/repositories/acme/cli/", {**cody, "X-Docker-Token": "true"}, [])
    assert created.status_code == 200
    assert world.api("GET", "/repository/acme/cli", "cody").get_json()["can_admin"] is True
    assert world.api("GET", "/repository/acme/cli", "mira").status_code == 404
    mira = world.callers["mira"].headers
    refused = call_json(world.client, "PUT", "/v1/repositories/acme/other/", {**mira, "X-Docker-Token": "true"}, [])
    assert refused.status_code == 403
    assert refused.get_json() == {"error": "you may not create repositories in namespace acme"}


def test_robots_tokens_and_regeneration(world: World):
    again = world.api("PUT", "/organization/acme/robots/reader", "olga")
    assert again.status_code == 200
    assert again.get_json() == {"name": "acme+reader", "token": world.robot_tokens["acme+reader"]}
    old = world.robot_tokens["acme+reader"]
    assert world.client.get("/v1/users/", headers=basic("acme+reader", old)).status_code == 200
    listed = world.client.get("/v1/repositories/acme/app/images",
                              headers={**basic("acme+reader", old), "X-Docker-Token": "true"})
    index_token = {"Authorization": f"Token {listed.headers['X-Docker-Token']}"}
    assert world.client.get("/v1/repositories/acme/app/tags", headers=index_token).status_code == 200
    regenerated = world.api("POST", "/organization/acme/robots/reader/regenerate", "olga")
    assert regenerated.status_code == 200
    new = regenerated.get_json()["token"]
    assert regenerated.get_json()["name"] == "acme+reader" and new != old
    # The old token stops at once (no credential cache in between), the new one works.
    assert world.client.get("/v1/users/", headers=basic("acme+reader", old)).status_code == 401
    assert world.client.get("/v1/repositories/acme/app/tags", headers=basic("acme+reader", old)).status_code == 401
    # ... and so do the index tokens it was handed with the old one.
    assert world.client.get("/v1/repositories/acme/app/tags", headers=index_token).status_code == 401
    assert world.client.get("/v1/repositories/acme/app/tags", headers=basic("acme+reader", new)).status_code == 200
    # No password change for a robot; it cannot manage anything either.
    changed = call_json(world.client, "PUT", "/v1/users/acme+reader/", basic("acme+reader", new), {"password": "newpass1"})
    assert changed.status_code == 403
    assert world.api("POST", "/organization/", ("acme+reader", new), {"name": "robotorg", "email": "r@example.com"}).status_code == 403
    # User robots live in the user's namespace.
    mine = world.api("PUT", "/user/robots/ci", "alice", {"description": "the CI"})
    assert mine.status_code == 201 and mine.get_json()["name"] == "alice+ci"
    assert world.api("GET", "/user/robots", "alice").get_json() == {
        "robots": [{"name": "alice+ci", "description": "the CI"}]}
    assert world.api("GET", "/user/robots/ci", "alice").get_json() == mine.get_json()
    assert world.api("POST", "/user/robots/ci/regenerate", "alice").status_code == 200
    assert world.api("POST", "/user/robots/nothing/regenerate", "alice").status_code == 404
    assert world.api("DELETE", "/user/robots/ci", "alice").status_code == 204
    assert world.api("DELETE", "/user/robots/ci", "alice").status_code == 404
    # Someone else's organization's robots: 403.
    assert world.api("PUT", "/organization/acme/robots/evil", "bobby").status_code == 403
    assert world.api("POST", "/organization/acme/robots/reader/regenerate", "rita").status_code == 403
    # Deleting a robot takes its grants: a new robot of that name starts with nothing.
    assert world.api("DELETE", "/organization/acme/robots/reader", "olga").status_code == 204
    reborn = world.api("PUT", "/organization/acme/robots/reader", "olga").get_json()["token"]
    assert world.client.get("/v1/repositories/acme/app/tags", headers=basic("acme+reader", reborn)).status_code == 404


def test_robot_docker_login(world: World):
    """docker login -u acme+ci -p <token>: POST /v1/users/ says "exists", then GET with Basic."""
    token = world.robot_tokens["acme+writer"]
    first = world.client.post("/v1/users/", data=json.dumps({"username": "acme+writer", "password": token,
                                                             "email": "ci@example.com", "auth": ""}),
                              content_type="application/json; charset=utf-8")
    assert first.status_code == 400 and first.get_data() == b'"Username or email already exists"'
    assert world.client.get("/v1/users/", headers=basic("acme+writer", token)).status_code == 200
    assert world.client.get("/v1/users/", headers=basic("acme+writer", token[:5] + ("a" if token[5] != "a" else "b") + token[6:])).status_code == 401
    unknown = world.client.post("/v1/users/", data=json.dumps({"username": "acme+ghost", "password": token,
                                                              "email": "ci@example.com"}),
                                content_type="application/json")
    assert unknown.status_code == 400 and unknown.get_data() != b'"Username or email already exists"'


def test_anonymous_pull_off_needs_an_account_for_every_read(tmp_path):
    from .world import build_world
    world = build_world(tmp_path, ANONYMOUS_PULL="false")
    top = world.layers["pub"][-1].image_id
    for path in ("/v1/repositories/acme/pub/images", "/v1/repositories/acme/pub/tags", f"/v1/images/{top}/json",
                 f"/v1/images/{top}/layer", f"/v1/images/{top}/ancestry", "/v1/search?q=acme",
                 "/api/v1/repository/acme/pub", "/v1/repositories/acme/nothing/tags"):
        assert world.client.get(path).status_code == 401, path
    assert world.client.get("/v1/repositories/acme/pub/tags", headers=world.callers["bobby"].headers).status_code == 200
    # An anonymous read token issued before the switch is refused too (role checked on use).


def test_public_repositories_read_anonymously_through_the_registry(world: World):
    """What docker-registry-client 0.5.2 does: tags, json, ancestry, layer without any token."""
    layers = world.layers["pub"]
    assert world.client.get("/v1/repositories/acme/pub/tags").get_json() == {"latest": layers[-1].image_id}
    assert world.client.get(f"/v1/images/{layers[-1].image_id}/ancestry").get_json() == [
        layer.image_id for layer in reversed(layers)]
    for layer in layers:
        assert world.client.get(f"/v1/images/{layer.image_id}/json").get_data() == layer.json_bytes
        assert world.client.get(f"/v1/images/{layer.image_id}/layer").get_data() == layer.body
    # Anonymous writes stay refused.
    assert call_json(world.client, "PUT", "/v1/repositories/acme/pub/tags/x", {}, layers[0].image_id).status_code == 401


def test_library_is_admin_only_for_writes_even_with_grants(world: World):
    admin = basic(*ADMIN)
    assert call_json(world.client, "PUT", "/v1/repositories/base/", {**admin, "X-Docker-Token": "true"}, []).status_code == 200
    assert world.api("PUT", "/repository/library/base/permissions/user/wendy", "admin", {"role": "write"}).status_code == 400
    assert world.api("PUT", "/repository/library/base/permissions/user/wendy", "admin", {"role": "read"}).status_code == 200
    wendy = world.callers["wendy"].headers
    assert world.client.get("/v1/repositories/base/images", headers=wendy).status_code == 200
    assert world.client.get("/v1/repositories/base/images", headers=world.callers["bobby"].headers).status_code == 404
    refused = call_json(world.client, "PUT", "/v1/repositories/base/", {**wendy, "X-Docker-Token": "true"}, [])
    assert refused.status_code == 403


def test_a_data_dir_from_before_opens_with_every_repository_public(tmp_path):
    """Records written before access control have no visibility: they read as public."""
    import json as json_module

    from index import create_app
    data = tmp_path / "data"
    (data / "db" / "namespaces").mkdir(parents=True)
    old_record = {"namespace": "olduser", "name": "app", "description": "from before", "owner": "olduser",
                  "state": "active", "created": "2020-01-01T00:00:00+00:00", "images": {"ab" * 32: ""}}
    (data / "db" / "namespaces" / "olduser.json").write_text(
        json_module.dumps({"repositories": {"app": old_record}}))
    client = create_app({"TESTING": True, "DATA_DIR": data, "SECRET_KEY": "old", "BCRYPT_ROUNDS": 4}).test_client()
    assert client.get("/v1/repositories/olduser/app/images").status_code == 200
    assert client.get("/api/v1/repository/olduser/app").get_json()["is_public"] is True
    assert [r["name"] for r in client.get("/v1/search?q=app").get_json()["results"]] == ["olduser/app"]
