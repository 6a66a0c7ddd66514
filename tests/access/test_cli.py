"""The admin CLI offers the management API's operations (issue 12)."""
from __future__ import annotations

from tests.conftest import basic

from .world import PASSWORD, World


def run(world: World, *args: str):
    return world.app.test_cli_runner().invoke(args=list(args))


def test_cli_organizations_teams_robots_and_permissions(world: World):
    assert run(world, "organizations", "create", "cliorg", "--email", "c@example.com", "--owner", "bobby").exit_code == 0
    taken = run(world, "organizations", "create", "alice", "--email", "c@example.com", "--owner", "bobby")
    assert taken.exit_code == 1 and "taken" in taken.output
    assert run(world, "teams", "set", "cliorg", "pushers", "--role", "creator").exit_code == 0
    assert run(world, "teams", "add", "cliorg", "pushers", "rita").exit_code == 0
    assert "rita" in run(world, "teams", "members", "cliorg", "pushers").output
    shown = run(world, "organizations", "show", "cliorg").output
    assert "owners" in shown and "bobby" in shown and "pushers" in shown and "creator" in shown
    assert "cliorg" in run(world, "organizations", "list").output

    made = run(world, "robots", "create", "cliorg+deploy")
    assert made.exit_code == 0, made.output
    token = made.output.split("token: ")[1].strip()
    assert world.client.get("/v1/users/", headers=basic("cliorg+deploy", token)).status_code == 200
    renewed = run(world, "robots", "regenerate", "cliorg+deploy").output.split("token: ")[1].strip()
    assert world.client.get("/v1/users/", headers=basic("cliorg+deploy", token)).status_code == 401
    assert run(world, "robots", "show", "cliorg+deploy").output.strip() == renewed
    assert "cliorg+deploy" in run(world, "robots", "list", "cliorg").output
    assert run(world, "robots", "create", "nosuchns+x1").exit_code == 1

    # rita (creator team) creates cliorg/app by pushing; the CLI grants and hides.
    created = world.client.put("/v1/repositories/cliorg/app/", data="[]", content_type="application/json",
                               headers={**basic("rita", PASSWORD), "X-Docker-Token": "true"})
    assert created.status_code == 200
    assert run(world, "permissions", "grant", "cliorg/app", "cliorg+deploy", "write").exit_code == 0
    assert run(world, "permissions", "grant", "cliorg/app", "pushers", "read", "--team").exit_code == 0
    listed = run(world, "permissions", "list", "cliorg/app").output
    assert "private" in listed and "cliorg+deploy" in listed and "pushers" in listed
    assert world.client.get("/v1/repositories/cliorg/app/tags", headers=basic("cliorg+deploy", renewed)).status_code == 200
    assert world.client.get("/v1/repositories/cliorg/app/tags").status_code == 404
    assert run(world, "permissions", "visibility", "cliorg/app", "public").exit_code == 0
    assert world.client.get("/v1/repositories/cliorg/app/tags").status_code == 200
    assert run(world, "permissions", "revoke", "cliorg/app", "cliorg+deploy").exit_code == 0
    again = run(world, "permissions", "revoke", "cliorg/app", "cliorg+deploy")
    assert again.exit_code == 1 and "no permission" in again.output
    bad = run(world, "permissions", "grant", "cliorg/app", "nobody_here", "read")
    assert bad.exit_code == 1 and "not found" in bad.output

    assert run(world, "robots", "delete", "cliorg+deploy").exit_code == 0
    assert run(world, "teams", "delete", "cliorg", "pushers").exit_code == 0
    refused = run(world, "organizations", "delete", "cliorg", "--yes")
    assert refused.exit_code == 1 and "still has repositories" in refused.output


def test_deleting_a_user_takes_its_grants_teams_and_robots(world: World):
    assert world.api("PUT", "/user/robots/bot", "rita").status_code == 201
    assert world.api("PUT", "/organization/acme/team/ops/members/rita", "olga").status_code == 200
    assert run(world, "users", "delete", "rita", "--yes").exit_code == 0
    assert run(world, "users", "release", "rita").exit_code == 0  # the name was reserved
    # A new account of the same name starts with nothing.
    assert world.client.post("/v1/users/", data='{"username": "rita", "password": "secret9", "email": "r2@example.com"}',
                             content_type="application/json").status_code == 201
    assert world.client.get("/v1/repositories/acme/app/tags", headers=basic("rita", "secret9")).status_code == 404
    assert "rita" not in world.api("GET", "/repository/acme/pub/permissions/user/", "olga").get_json()["permissions"]
    assert world.api("GET", "/organization/acme/team/ops/members", "olga").get_json() == {
        "members": [{"name": "tara", "kind": "user"}]}
    assert world.api("GET", "/user/robots", ("rita", "secret9")).get_json() == {"robots": []}
