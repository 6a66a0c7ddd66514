"""Every role x every route -> the expected status, for a private and a public repository, then
again after grants are removed and after visibility changes (tokens issued before included)."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .world import ADMIN_ROLE, READ, WRITE, Caller, World, call_json

NOT_VISIBLE = {"error": "repository acme/{repo} not found"}


def _status_by_role(role: int | None, *, none: int, read: int, write: int, admin: int) -> int:
    if role is None:
        return none
    return {READ: read, WRITE: write, ADMIN_ROLE: admin}[role]


def _top(world: World, repo: str) -> str:
    return world.layers[repo][-1].image_id


# Each route: (name, needs an account, function(world, caller, repo) -> status, expectation(role)).
def index_images(world: World, caller: Caller, repo: str) -> int:
    answer = world.client.get(f"/v1/repositories/acme/{repo}/images",
                              headers={**caller.headers, "X-Docker-Token": "true"})
    if answer.status_code == 404:
        assert answer.get_json() == {"error": f"repository acme/{repo} not found"}  # same body as missing
    return answer.status_code


def index_announce(world: World, caller: Caller, repo: str) -> int:
    return call_json(world.client, "PUT", f"/v1/repositories/acme/{repo}/",
                     {**caller.headers, "X-Docker-Token": "true"}, []).status_code


def index_put_images(world: World, caller: Caller, repo: str) -> int:
    return call_json(world.client, "PUT", f"/v1/repositories/acme/{repo}/images",
                     {**caller.headers, "X-Docker-Endpoints": "http://localhost/v1/"}, []).status_code


def index_delete(world: World, caller: Caller, repo: str) -> int:
    status = world.client.delete(f"/v1/repositories/acme/{repo}/",
                                 headers={**caller.headers, "X-Docker-Token": "true"}).status_code
    if status == 202:  # hidden for deletion: the owner's next push re-opens it unchanged
        assert index_announce(world, world.callers["olga"], repo) == 200
    return status


def registry_tags(world: World, caller: Caller, repo: str) -> int:
    answer = world.client.get(f"/v1/repositories/acme/{repo}/tags", headers=caller.headers)
    if answer.status_code == 200:
        assert answer.get_json() == {"latest": _top(world, repo)}
    return answer.status_code


def registry_tags_with_token(world: World, caller: Caller, repo: str) -> int:
    listed = world.client.get(f"/v1/repositories/acme/{repo}/images",
                              headers={**caller.headers, "X-Docker-Token": "true"})
    if listed.status_code != 200:
        return listed.status_code
    token = {"Authorization": f"Token {listed.headers['X-Docker-Token']}"}
    return world.client.get(f"/v1/repositories/acme/{repo}/tags", headers=token).status_code


def image_json(world: World, caller: Caller, repo: str) -> int:
    answer = world.client.get(f"/v1/images/{_top(world, repo)}/json", headers=caller.headers)
    if answer.status_code == 404:
        assert answer.get_json() == {"error": f"image {_top(world, repo)} not found"}
    return answer.status_code


def image_ancestry(world: World, caller: Caller, repo: str) -> int:
    return world.client.get(f"/v1/images/{_top(world, repo)}/ancestry", headers=caller.headers).status_code


def image_layer(world: World, caller: Caller, repo: str) -> int:
    answer = world.client.get(f"/v1/images/{_top(world, repo)}/layer", headers=caller.headers)
    if answer.status_code == 200:
        assert answer.get_data() == world.layers[repo][-1].body
    return answer.status_code


def registry_put_tag(world: World, caller: Caller, repo: str) -> int:
    return call_json(world.client, "PUT", f"/v1/repositories/acme/{repo}/tags/latest",
                     caller.headers, _top(world, repo)).status_code


def search(world: World, caller: Caller, repo: str) -> int:
    """200 when the repository is among the results, 404 when not (and then not counted)."""
    body = world.client.get("/v1/search?q=acme", headers=caller.headers).get_json()
    names = [result["name"] for result in body["results"]]
    assert body["num_results"] == len(names)  # what is not shown is not counted either
    return 200 if f"acme/{repo}" in names else 404


def api_get(world: World, caller: Caller, repo: str) -> int:
    answer = world.api("GET", f"/repository/acme/{repo}", caller.name if not caller.anonymous else None)
    if answer.status_code == 200:
        role = caller.role_app if repo == "app" else caller.role_pub
        shown = answer.get_json()
        assert (shown["can_write"], shown["can_admin"]) == (role >= WRITE, role >= ADMIN_ROLE), shown
        assert (shown["namespace"], shown["name"]) == ("acme", repo)
    return answer.status_code


def api_user_permissions(world: World, caller: Caller, repo: str) -> int:
    return world.api("GET", f"/repository/acme/{repo}/permissions/user/",
                     caller.name if not caller.anonymous else None).status_code


def api_team_permissions(world: World, caller: Caller, repo: str) -> int:
    return world.api("GET", f"/repository/acme/{repo}/permissions/team/",
                     caller.name if not caller.anonymous else None).status_code


def api_same_visibility(world: World, caller: Caller, repo: str) -> int:
    current = "private" if world.api("GET", f"/repository/acme/{repo}", "admin").get_json()["is_public"] is False else "public"
    return world.api("POST", f"/repository/acme/{repo}/changevisibility",
                     caller.name if not caller.anonymous else None, {"visibility": current}).status_code


READ_ONLY = dict(none=404, read=200, write=200, admin=200)
WRITES = dict(none=404, read=403, write=200, admin=200)
ADMINS = dict(none=404, read=403, write=403, admin=200)
ROUTES: list[tuple[str, bool, Callable, dict]] = [
    ("GET index images", False, index_images, READ_ONLY),
    ("PUT index repository", True, index_announce, dict(none=403, read=403, write=200, admin=200)),
    ("PUT index images", True, index_put_images, {**WRITES, "write": 204, "admin": 204}),
    ("DELETE index repository", True, index_delete, {**ADMINS, "admin": 202}),
    ("GET registry tags", False, registry_tags, READ_ONLY),
    ("GET registry tags (token)", False, registry_tags_with_token, READ_ONLY),
    ("GET image json", False, image_json, READ_ONLY),
    ("GET image ancestry", False, image_ancestry, READ_ONLY),
    ("GET image layer", False, image_layer, READ_ONLY),
    ("PUT registry tag", True, registry_put_tag, WRITES),
    ("search", False, search, READ_ONLY),
    ("GET api repository", False, api_get, READ_ONLY),
    ("GET api user permissions", True, api_user_permissions, ADMINS),
    ("GET api team permissions", True, api_team_permissions, ADMINS),
    ("POST api changevisibility", True, api_same_visibility, ADMINS),
]


def check(world: World, repo: str, role_of: Callable[[Caller], int | None]) -> list[str]:
    wrong = []
    for caller in world.callers.values():
        role = role_of(caller)
        for route, needs_account, run, statuses in ROUTES:
            if caller.anonymous and needs_account:
                expected = 401
            elif caller.anonymous and route == "search":
                expected = 200 if role is not None else 404
            else:
                expected = _status_by_role(role, **statuses)
            got = run(world, caller, repo)
            if got != expected:
                wrong.append(f"{caller.name:<12} {route:<28} acme/{repo}: expected {expected}, got {got}")
    return wrong


@pytest.mark.slow
def test_matrix_private_and_public(world):
    wrong = check(world, "app", lambda c: c.role_app) + check(world, "pub", lambda c: c.role_pub)
    assert wrong == [], "\n" + "\n".join(wrong)


def _tokens(world: World, repo: str, names: list[str], access: str) -> dict[str, dict[str, str]]:
    """Tokens issued now (read: GET images; write: PUT repository), to be used later."""
    tokens = {}
    for name in names:
        caller = world.callers[name]
        if access == "read":
            answer = world.client.get(f"/v1/repositories/acme/{repo}/images",
                                      headers={**caller.headers, "X-Docker-Token": "true"})
        else:
            answer = call_json(world.client, "PUT", f"/v1/repositories/acme/{repo}/",
                               {**caller.headers, "X-Docker-Token": "true"}, [])
        assert answer.status_code == 200, (name, answer.get_data())
        tokens[name] = {"Authorization": f"Token {answer.headers['X-Docker-Token']}"}
    return tokens


@pytest.mark.slow
def test_matrix_after_grants_are_removed(world):
    readers = _tokens(world, "app", ["rita", "mira", "acme+reader"], "read")
    writers = _tokens(world, "app", ["wendy", "acme+writer"], "write")
    for who in ("rita", "wendy", "acme+reader", "acme+writer"):
        assert world.api("DELETE", f"/repository/acme/app/permissions/user/{who}", "adam").status_code == 204
    assert world.api("DELETE", "/repository/acme/app/permissions/team/devs", "adam").status_code == 204
    # A removed grant is gone: deleting it again is a 404.
    assert world.api("DELETE", "/repository/acme/app/permissions/user/rita", "adam").status_code == 404
    for who in ("rita", "wendy", "mira", "acme+reader", "acme+writer"):
        world.callers[who].role_app = None
    # adam keeps only read now.
    assert world.api("PUT", "/repository/acme/app/permissions/user/adam", "olga", {"role": "read"}).status_code == 200
    world.callers["adam"].role_app = READ

    wrong = check(world, "app", lambda c: c.role_app)
    assert wrong == [], "\n" + "\n".join(wrong)
    # Tokens handed out before answer as if the repository did not exist, at their next use.
    top = world.layers["app"][-1].image_id
    for name, token in readers.items():
        assert world.client.get("/v1/repositories/acme/app/tags", headers=token).status_code == 404, name
        assert world.client.get(f"/v1/images/{top}/json", headers=token).status_code == 404, name
        assert world.client.get("/v1/repositories/acme/app/images", headers=token).status_code == 404, name
    for token in writers.values():
        assert call_json(world.client, "PUT", "/v1/repositories/acme/app/tags/latest", token, top).status_code == 404
        assert world.client.put(f"/v1/images/{top}/checksum", headers=token).status_code == 404


@pytest.mark.slow
def test_matrix_after_visibility_changes(world):
    public_readers = _tokens(world, "pub", ["anonymous", "alice", "bobby", "cody", "acme+none"], "read")
    assert world.api("POST", "/repository/acme/pub/changevisibility", "tara", {"visibility": "private"}).status_code == 200
    assert world.api("POST", "/repository/acme/app/changevisibility", "acme+boss", {"visibility": "public"}).status_code == 200
    for caller in world.callers.values():
        caller.role_app, caller.role_pub = caller.role_app or READ, caller.role_pub
        if caller.name in public_readers:
            caller.role_pub = None
    wrong = check(world, "app", lambda c: c.role_app) + check(world, "pub", lambda c: c.role_pub)
    assert wrong == [], "\n" + "\n".join(wrong)
    assert world.api("GET", "/repository/acme/app", None).get_json()["is_public"] is True
    assert world.api("GET", "/repository/acme/pub", "rita").get_json()["is_public"] is False
    for name, token in public_readers.items():
        answer = world.client.get("/v1/repositories/acme/pub/tags", headers=token)
        assert answer.status_code == 404 and answer.get_json() == {"error": "repository acme/pub not found"}, name


def test_hidden_and_missing_answer_alike_everywhere(world):
    """Byte for byte the same answer for a private repository and one that does not exist."""
    bobby = world.callers["bobby"].headers
    pairs = [("GET", "/v1/repositories/acme/{r}/images", None), ("GET", "/v1/repositories/acme/{r}/tags", None),
             ("GET", "/v1/repositories/acme/{r}/tags/latest", None), ("PUT", "/v1/repositories/acme/{r}/images", []),
             ("DELETE", "/v1/repositories/acme/{r}/", None), ("PUT", "/v1/repositories/acme/{r}/", []),
             ("PUT", "/v1/repositories/acme/{r}/tags/latest", "0" * 64),
             ("GET", "/api/v1/repository/acme/{r}", None),
             ("GET", "/api/v1/repository/acme/{r}/permissions/user/", None),
             ("PUT", "/api/v1/repository/acme/{r}/permissions/user/bobby", {"role": "read"}),
             ("POST", "/api/v1/repository/acme/{r}/changevisibility", {"visibility": "public"})]
    for method, path, value in pairs:
        hidden = call_json(world.client, method, path.format(r="app"), bobby, value)
        missing = call_json(world.client, method, path.format(r="nothing"), bobby, value)
        assert hidden.status_code == missing.status_code, (method, path, hidden.status_code, missing.status_code)
        assert hidden.get_data().replace(b"app", b"nothing") == missing.get_data(), (method, path)
    anonymous_hidden = world.client.get("/v1/repositories/acme/app/tags")
    anonymous_missing = world.client.get("/v1/repositories/acme/nothing/tags")
    assert (anonymous_hidden.status_code, anonymous_missing.status_code) == (404, 404)
    assert json.loads(anonymous_hidden.get_data().replace(b"app", b"nothing")) == anonymous_missing.get_json()
