"""Managing in the browser: visibility, grants, organizations, teams, robots; private names hidden."""
from __future__ import annotations

import pytest

from tests.conftest import basic, image_id

from .conftest import Browser


@pytest.fixture
def people(alice, docker, app):
    """alice owns alice/app (private); bobby and carol are other accounts, each signed in."""
    assert docker.register("bobby", "secret2").status_code == 201
    assert docker.register("carol", "secret3").status_code == 201
    assert docker.put_repository("alice/app", [{"id": image_id(1)}]).status_code == 200
    browsers = {}
    for name, password in (("alice", "secret1"), ("bobby", "secret2"), ("carol", "secret3")):
        browsers[name] = Browser(app.test_client())
        assert browsers[name].sign_in(name, password).status_code == 303
    store = app.extensions["docker_index"].store
    from index.store.access import AccessStore
    AccessStore(store).set_visibility("alice", "app", "private")
    return browsers


def _settings(who: Browser, action: str, data: dict):
    return who.post(f"/repository/alice/app/settings/{action}", data, page="/account")


def test_private_repositories_are_hidden_from_others_everywhere(people, browser):
    alice, bobby = people["alice"], people["bobby"]
    assert alice.get("/repository/alice/app").status_code == 200
    for who in (bobby, browser):
        missing = who.get("/repository/nobody/app")
        hidden = who.get("/repository/alice/app")
        assert hidden.status_code == missing.status_code == 404
        assert "alice/app" not in who.get("/search?q=app").get_data(as_text=True)
        assert "alice/app" not in who.get("/namespace/alice").get_data(as_text=True)
    assert "alice/app" in alice.get("/search?q=app").get_data(as_text=True)


def test_only_repository_admins_reach_the_settings(people, browser):
    assert people["alice"].get("/repository/alice/app/settings").status_code == 200
    assert people["bobby"].get("/repository/alice/app/settings").status_code == 404  # not even visible
    assert browser.get("/repository/alice/app/settings").status_code == 401
    assert _settings(people["bobby"], "visibility", {"visibility": "public"}).status_code == 404


def test_grant_read_then_revoke(people, client):
    alice, bobby = people["alice"], people["bobby"]
    assert _settings(alice, "grant", {"kind": "user", "name": "bobby", "role": "read"}).status_code == 303
    assert bobby.get("/repository/alice/app").status_code == 200
    assert "Settings and permissions" not in bobby.get("/repository/alice/app").get_data(as_text=True)
    assert client.get("/v1/repositories/alice/app/images", headers=basic("bobby", "secret2")).status_code == 200
    assert _settings(bobby, "grant", {"kind": "user", "name": "carol", "role": "read"}).status_code == 403
    assert _settings(alice, "grant", {"kind": "user", "name": "bobby", "role": "none"}).status_code == 303
    assert bobby.get("/repository/alice/app").status_code == 404


def test_grant_admin_opens_the_settings(people):
    alice, carol = people["alice"], people["carol"]
    assert _settings(alice, "grant", {"kind": "user", "name": "carol", "role": "admin"}).status_code == 303
    assert carol.get("/repository/alice/app/settings").status_code == 200


def test_bad_grants_are_refused_clearly(people):
    alice = people["alice"]
    response = _settings(alice, "grant", {"kind": "user", "name": "nobody_here", "role": "read"})
    assert response.status_code == 404 and "nobody_here" in response.get_data(as_text=True)
    assert _settings(alice, "grant", {"kind": "user", "name": "bobby", "role": "owner"}).status_code == 400
    assert _settings(alice, "visibility", {"visibility": "secret"}).status_code == 400


def test_visibility_change_shows_and_hides(people, browser):
    alice = people["alice"]
    assert _settings(alice, "visibility", {"visibility": "public"}).status_code == 303
    assert browser.get("/repository/alice/app").status_code == 200
    assert _settings(alice, "visibility", {"visibility": "private"}).status_code == 303
    assert browser.get("/repository/alice/app").status_code == 404


def test_organization_team_member_and_team_grant(people, docker):
    alice, bobby = people["alice"], people["bobby"]
    response = alice.post("/organization/new", {"name": "acme", "email": "ops@acme.example"}, page="/account")
    assert response.status_code == 303
    page = alice.get("/organization/acme/settings").get_data(as_text=True)
    assert "owners" in page and "alice" in page
    assert alice.post("/organization/acme/teams", {"team": "devs", "role": "member", "description": "<i>x</i>"},
                      page="/account").status_code == 303
    assert alice.post("/organization/acme/teams/devs/members", {"member": "bobby"}, page="/account").status_code == 303
    assert docker.put_repository("acme/tool", [{"id": image_id(5)}], auth=("alice", "secret1")).status_code == 200
    assert alice.post("/repository/acme/tool/settings/visibility", {"visibility": "private"},
                      page="/account").status_code == 303
    assert bobby.get("/repository/acme/tool").status_code == 404  # private, no grant yet
    assert alice.post("/repository/acme/tool/settings/grant", {"kind": "team", "name": "devs", "role": "write"},
                      page="/account").status_code == 303
    assert bobby.get("/repository/acme/tool").status_code == 200
    namespace = bobby.get("/namespace/acme").get_data(as_text=True)
    assert "devs" in namespace and "<i>x</i>" not in namespace
    assert bobby.get("/organization/acme/settings").status_code == 403
    assert alice.post("/organization/acme/teams/devs/members/bobby/remove", page="/account").status_code == 303
    assert bobby.get("/repository/acme/tool").status_code == 404


def test_organization_names_share_the_user_space(people):
    response = people["alice"].post("/organization/new", {"name": "bobby", "email": "x@example.com"}, page="/account")
    assert response.status_code == 409


def test_robots_from_the_account_page(people, client):
    alice = people["alice"]
    assert alice.post("/robots/alice", {"short": "ci"}, page="/account").status_code == 303
    page = alice.get("/account").get_data(as_text=True)
    assert "alice+ci" in page
    token = page.split("alice+ci</td><td><code class=\"token\">")[1].split("<")[0]
    assert client.get("/v1/users/", headers=basic("alice+ci", token)).status_code == 200
    assert alice.post("/robots/alice/ci/regenerate", page="/account").status_code == 303
    assert client.get("/v1/users/", headers=basic("alice+ci", token)).status_code == 401
    # A robot cannot sign in to the pages, and others cannot manage alice's robots.
    robot = Browser(alice.client.application.test_client())
    new_token = alice.get("/account").get_data(as_text=True).split("alice+ci</td><td><code class=\"token\">")[1].split("<")[0]
    assert robot.sign_in("alice+ci", new_token).status_code == 403
    assert people["bobby"].post("/robots/alice/ci/delete", page="/account").status_code == 403
    assert alice.post("/robots/alice/ci/delete", page="/account").status_code == 303
    assert "alice+ci" not in alice.get("/account").get_data(as_text=True)


def test_webhooks_from_the_settings_page(docker, settings):
    from index import create_app
    app = create_app({**settings, "WEBHOOK_ALLOW_PRIVATE": True})
    owner = Browser(app.test_client())
    docker_app = type(docker)(app.test_client())
    assert docker_app.register("alice", "secret1").status_code == 201
    assert docker_app.put_repository("alice/app", [{"id": image_id(1)}]).status_code == 200
    assert owner.sign_in("alice", "secret1").status_code == 303
    added = owner.post("/repository/alice/app/settings/webhooks",
                       {"event": "repo_push", "url": "http://127.0.0.1:9/hook", "title": "<b>deploy</b>"}, page="/account")
    assert added.status_code == 303 and "secret=" in added.headers["Location"]
    page = owner.get(added.headers["Location"]).get_data(as_text=True)
    assert "http://127.0.0.1:9/hook" in page and "<b>deploy</b>" not in page and "shown this once" in page
    from index.events import current
    with app.app_context():
        hooks = current().notifications.in_scope("alice", "app")
    assert len(hooks) == 1
    uuid = hooks[0]["uuid"]
    assert owner.post(f"/repository/alice/app/settings/webhooks/{uuid}/test", page="/account").status_code == 303
    assert owner.post(f"/repository/alice/app/settings/webhooks/{uuid}/delete", page="/account").status_code == 303
    with app.app_context():
        assert current().notifications.in_scope("alice", "app") == []
    assert owner.post(f"/repository/alice/app/settings/webhooks/{uuid}/delete", page="/account").status_code == 404
    bad = owner.post("/repository/alice/app/settings/webhooks", {"event": "repo_push", "url": "ftp://x"}, page="/account")
    assert bad.status_code == 400


def test_webhooks_to_private_addresses_are_refused_by_default(people):
    response = people["alice"].post("/repository/alice/app/settings/webhooks",
                                    {"event": "repo_push", "url": "http://127.0.0.1:9/hook"}, page="/account")
    assert response.status_code == 400


def test_admin_page_shows_the_audit_trail(people, app):
    admin = Browser(app.test_client())
    assert admin.sign_in("admin", "adminpass").status_code == 303
    page = admin.get("/admin").get_data(as_text=True)
    assert "Audit trail" in page and "register" in page
    assert "<title>Administration ·" in page  # the trail is in the page, not in its title


@pytest.fixture
def hook_people(docker, settings):
    """alice (owner of organization acme) and bobby, signed in, on an app that may reach loopback."""
    from index import create_app
    app = create_app({**settings, "WEBHOOK_ALLOW_PRIVATE": True})
    actions = type(docker)(app.test_client())
    browsers = {}
    for name, password in (("alice", "secret1"), ("bobby", "secret2")):
        assert actions.register(name, password).status_code == 201
        browsers[name] = Browser(app.test_client())
        assert browsers[name].sign_in(name, password).status_code == 303
    made = browsers["alice"].post("/organization/new", {"name": "acme", "email": "ops@acme.example"}, page="/account")
    assert made.status_code == 303
    return app, browsers


def _namespace_hooks(app, namespace):
    from index.events import current
    with app.app_context():
        return current().notifications.in_scope(namespace, None)


@pytest.mark.parametrize("namespace, page, api_path", [
    ("alice", "/account", "/api/v1/user/notification/"),
    ("acme", "/organization/acme/settings", "/api/v1/organization/acme/notification/"),
])
def test_namespace_webhooks_from_the_account_and_organization_pages(hook_people, namespace, page, api_path):
    app, people = hook_people
    alice = people["alice"]
    assert "Webhooks" in alice.get(page).get_data(as_text=True)
    added = alice.post(f"/webhooks/{namespace}", {"event": "repo_delete", "url": "http://127.0.0.1:9/ns",
                                                 "title": "<i>all</i>"}, page=page)
    assert added.status_code == 303
    assert added.headers["Location"].startswith(page) and "secret=" in added.headers["Location"]
    shown = alice.get(added.headers["Location"]).get_data(as_text=True)
    assert "http://127.0.0.1:9/ns" in shown and "shown this once" in shown and "<i>all</i>" not in shown
    [hook] = _namespace_hooks(app, namespace)
    assert (hook["event"], hook["repository"], hook["created_by"]) == ("repo_delete", None, "alice")
    # The API sees the same webhook (one store, one rule).
    listed = app.test_client().get(api_path, headers=basic("alice", "secret1")).get_json()["notifications"]
    assert [found["uuid"] for found in listed] == [hook["uuid"]]
    assert f"/webhooks/{namespace}/{hook['uuid']}/delete" in alice.get(page).get_data(as_text=True)

    from index.events import current
    with app.app_context():
        before = current().outbox.depth()
    assert alice.post(f"/webhooks/{namespace}/{hook['uuid']}/test", page=page).status_code == 303
    with app.app_context():
        assert current().outbox.depth() == before + 1
    assert alice.post(f"/webhooks/{namespace}/{hook['uuid']}/delete", page=page).status_code == 303
    assert _namespace_hooks(app, namespace) == []
    assert alice.post(f"/webhooks/{namespace}/{hook['uuid']}/delete", page=page).status_code == 404
    refused = alice.post(f"/webhooks/{namespace}", {"event": "repo_push", "url": "ftp://x"}, page=page)
    assert refused.status_code == 400


def test_only_namespace_admins_manage_namespace_webhooks(hook_people, browser):
    app, people = hook_people
    alice, bobby = people["alice"], people["bobby"]
    assert alice.post("/webhooks/alice", {"event": "repo_push", "url": "http://127.0.0.1:9/a"},
                      page="/account").status_code == 303
    [hook] = _namespace_hooks(app, "alice")
    body = {"event": "repo_push", "url": "http://127.0.0.1:9/b"}
    for namespace in ("alice", "acme"):
        assert bobby.post(f"/webhooks/{namespace}", body, page="/account").status_code == 403
        assert bobby.post(f"/webhooks/{namespace}/{hook['uuid']}/delete", page="/account").status_code == 403
    # bobby's own namespace does not hold alice's webhook
    assert bobby.post(f"/webhooks/bobby/{hook['uuid']}/delete", page="/account").status_code == 404
    assert bobby.post(f"/webhooks/bobby/{hook['uuid']}/test", page="/account").status_code == 404
    assert "http://127.0.0.1:9/a" not in bobby.get("/account").get_data(as_text=True)
    assert "Webhooks" not in bobby.get("/organization/acme/settings").get_data(as_text=True)
    # Signed out, or without the form's CSRF token: refused, nothing changes.
    assert app.test_client().post("/webhooks/alice", data=body).status_code in (401, 403)
    assert alice.post("/webhooks/alice", body, page="/account", csrf=False).status_code == 403
    assert alice.post(f"/webhooks/alice/{hook['uuid']}/delete", page="/account", csrf=False).status_code == 403
    assert [found["uuid"] for found in _namespace_hooks(app, "alice")] == [hook["uuid"]]


def test_namespace_webhooks_to_private_addresses_are_refused_by_default(people):
    response = people["alice"].post("/webhooks/alice", {"event": "repo_push", "url": "http://127.0.0.1:9/hook"},
                                    page="/account")
    assert response.status_code == 400
