"""The web pages: status, escaping, CSRF, sessions and who sees what."""
from __future__ import annotations

from urllib.parse import unquote_plus

from index.web.session import COOKIE_NAME
from tests.conftest import ADMIN, basic, image_id

from .conftest import Browser

HOSTILE = '<script>alert("x")</script>'


def _push(docker, remote: str, auth, ids=(1,), tags: dict[str, int] | None = None):
    """Announce a repository the way docker's push starts and ends (index side only)."""
    images = [{"id": image_id(n)} for n in ids]
    assert docker.put_repository(remote, images, auth=auth).status_code == 200
    assert docker.put_images(remote, auth=auth).status_code == 204


def test_anonymous_pages_answer(browser: Browser):
    for url in ("/", "/search", "/search?q=x&page=2", "/signin", "/register", "/static/style.css"):
        assert browser.get(url).status_code == 200, url


def test_home_shows_docker_lines_for_the_public_host(settings):
    from index import create_app
    app = create_app({**settings, "PUBLIC_HOST": "index.example:5443"})
    page = app.test_client().get("/").get_data(as_text=True)
    assert "docker login index.example:5443" in page
    assert "docker pull index.example:5443/" in page
    assert '<form method="get"' in page and 'name="q"' in page


def test_home_uses_the_request_host_without_public_host(browser):
    page = browser.get("/", headers={"Host": "lan-box:5000"}).get_data(as_text=True)
    assert "docker login lan-box:5000" in page


def test_pages_send_a_strict_content_security_policy(browser):
    response = browser.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in response.get_data(as_text=True)


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_it(alice, app):
    browser = Browser(app.test_client())
    response = browser.sign_in("alice", "secret1")
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE_NAME + "=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert browser.get("/account").status_code == 200
    assert browser.post("/signout", page="/account").status_code == 303
    assert browser.get("/account").status_code == 401


def test_the_cookie_is_secure_over_tls(alice, app):
    client = app.test_client()
    page = client.get("/signin", base_url="https://localhost").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/signin", base_url="https://localhost",
                           data={"username": "alice", "password": "secret1", "csrf_token": token})
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_wrong_password_is_refused_on_the_form(alice, browser):
    response = browser.sign_in("alice", "wrong-one")
    assert response.status_code == 401
    assert "wrong username or password" in response.get_data(as_text=True)
    assert browser.get("/account").status_code == 401


def test_the_failed_login_limit_applies_to_the_form(alice, settings):
    from index import create_app
    app = create_app({**settings, "LOGIN_FAILURES_PER_MINUTE": 3})
    browser = Browser(app.test_client())
    statuses = [browser.sign_in("alice", "wrong-one").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    # The right password is refused too while locked out (no bcrypt runs).
    assert browser.sign_in("alice", "secret1").status_code == 429


def test_forms_without_the_csrf_token_are_refused(alice, app):
    browser = Browser(app.test_client())
    assert browser.sign_in("alice", "secret1").status_code == 303
    for url, data in (("/signin", {"username": "alice", "password": "secret1"}),
                      ("/account/email", {"email": "new@example.com"}),
                      ("/signout", {})):
        assert browser.post(url, data, csrf=False).status_code == 403, url
        response = browser.client.post(url, data={**data, "csrf_token": "forged"})
        assert response.status_code == 403, url
    assert browser.get("/account").status_code == 200  # still signed in: signout was refused


def test_csrf_token_of_another_session_is_refused(alice, app):
    mallory = Browser(app.test_client())
    foreign_token = mallory.csrf()
    victim = Browser(app.test_client())
    assert victim.sign_in("alice", "secret1").status_code == 303
    response = victim.client.post("/account/email", data={"email": "evil@example.com",
                                                           "csrf_token": foreign_token})
    assert response.status_code == 403


def test_password_change_ends_the_other_sessions(alice, app, client):
    laptop, phone = Browser(app.test_client()), Browser(app.test_client())
    assert laptop.sign_in("alice", "secret1").status_code == 303
    assert phone.sign_in("alice", "secret1").status_code == 303
    response = laptop.post("/account/password", {"current_password": "secret1", "new_password": "secret2",
                                                 "new_password_again": "secret2"}, page="/account")
    assert response.status_code == 303
    assert laptop.get("/account").status_code == 200
    assert phone.get("/account").status_code == 401
    assert client.get("/v1/users/", headers=basic("alice", "secret2")).status_code == 200


def test_password_change_needs_the_current_password(alice, app):
    browser = Browser(app.test_client())
    browser.sign_in("alice", "secret1")
    response = browser.post("/account/password", {"current_password": "nope1", "new_password": "secret2",
                                                  "new_password_again": "secret2"}, page="/account")
    assert response.status_code == 400
    assert "current password is wrong" in response.get_data(as_text=True)


def test_idle_sessions_expire(alice, settings, monkeypatch):
    from index import create_app
    from index.web import session as web_session
    app = create_app({**settings, "WEB_SESSION_IDLE_SECONDS": 60})
    browser = Browser(app.test_client())
    browser.sign_in("alice", "secret1")
    assert browser.get("/account").status_code == 200
    real = web_session.time.time
    monkeypatch.setattr(web_session.time, "time", lambda: real() + 61)
    assert browser.get("/account").status_code == 401


def test_sign_in_goes_only_to_local_next_pages(alice, browser):
    for target, expected in (("/account", "/account"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/"), ("/\\evil.example", "/")):
        response = browser.post("/signin", {"username": "alice", "password": "secret1", "next": target})
        assert response.headers["Location"] == expected, target


def test_register_form_creates_an_active_account(browser, client):
    response = browser.post("/register", {"username": "carol_1", "email": "carol@example.com",
                                          "password": "secret9", "password_again": "secret9"})
    assert response.status_code == 303
    assert browser.get("/account").status_code == 200
    assert client.get("/v1/users/", headers=basic("carol_1", "secret9")).status_code == 200


def test_register_form_reports_bad_input(browser):
    response = browser.post("/register", {"username": "A!", "email": "x@example.com",
                                          "password": "secret9", "password_again": "secret9"})
    assert response.status_code == 400
    assert "username" in response.get_data(as_text=True)


def test_registration_closed_has_no_form(settings):
    from index import create_app
    app = create_app({**settings, "REGISTRATION": "closed"})
    browser = Browser(app.test_client())
    page = browser.get("/register").get_data(as_text=True)
    assert "Registration is closed" in page and "<form method=\"post\" action=\"/register\"" not in page
    assert "Register</a>" not in browser.get("/").get_data(as_text=True)


def test_repository_page_shows_escaped_markdown_and_activity(alice, docker, app, client):
    _push(docker, "alice/web", ("alice", "secret1"))
    store = app.extensions["docker_index"].store
    store.set_description("alice", "web", f"**bold** {HOSTILE} [x](javascript:alert(1))")
    docker.get_images("alice/web")
    page = client.get("/repository/alice/web").get_data(as_text=True)
    assert "<strong>bold</strong>" in page
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert "docker pull localhost/alice/web" in page
    assert "by alice" in page  # last push by whom
    assert "<dt>Pulls</dt><dd>1</dd>" in page


def test_only_writers_edit_the_description(alice, docker, app):
    _push(docker, "alice/web", ("alice", "secret1"))
    assert docker.register("bobby", "secret2").status_code == 201
    bobby = Browser(app.test_client())
    bobby.sign_in("bobby", "secret2")
    assert "Edit the description" not in bobby.get("/repository/alice/web").get_data(as_text=True)
    response = bobby.post("/repository/alice/web/description", {"description": "mine"}, page="/account")
    assert response.status_code == 403
    owner = Browser(app.test_client())
    owner.sign_in("alice", "secret1")
    response = owner.post("/repository/alice/web/description", {"description": "# Title\nbody"}, page="/account")
    assert response.status_code == 303
    assert "<h1>Title</h1>" in owner.get("/repository/alice/web").get_data(as_text=True)


def test_description_with_control_characters_is_refused(alice, docker, app):
    _push(docker, "alice/web", ("alice", "secret1"))
    owner = Browser(app.test_client())
    owner.sign_in("alice", "secret1")
    response = owner.post("/repository/alice/web/description", {"description": "a\x00b"}, page="/account")
    assert response.status_code == 400


def test_unknown_repository_and_namespace_are_404_pages(browser):
    assert browser.get("/repository/nobody/nothing").status_code == 404
    assert browser.get("/namespace/nobody").status_code == 404
    response = browser.get("/repository/BAD/x")
    assert response.status_code in (400, 404)
    assert response.mimetype == "text/html"


def test_names_are_escaped_everywhere(docker, app, admin_browser):
    # An e-mail address is free text: it must come out escaped on the admin page.
    assert docker.register("evil_1", "secret2", email='e"><b>x</b>@example.com').status_code in (201, 400)
    page = admin_browser.get("/admin").get_data(as_text=True)
    assert "<b>x</b>" not in page


def test_search_page_lists_matches_with_links(alice, docker, browser):
    _push(docker, "alice/webapp", ("alice", "secret1"))
    page = browser.get("/search?q=webapp").get_data(as_text=True)
    assert 'href="/repository/alice/webapp"' in page
    assert "1 repository" in page


def test_admin_page_needs_a_site_admin(alice, app, admin_browser):
    user = Browser(app.test_client())
    user.sign_in("alice", "secret1")
    assert user.get("/admin").status_code == 403
    assert user.post("/admin/accounts/admin/demote", page="/account").status_code == 403
    assert admin_browser.get("/admin").status_code == 200


def test_admin_manages_accounts(alice, admin_browser, client):
    assert admin_browser.post("/admin/accounts/alice/deactivate", page="/admin").status_code == 303
    assert client.get("/v1/users/", headers=basic("alice", "secret1")).status_code == 403
    assert admin_browser.post("/admin/accounts/alice/activate", page="/admin").status_code == 303
    assert admin_browser.post("/admin/accounts/alice/promote", page="/admin").status_code == 303
    assert "administrator" in admin_browser.get("/admin").get_data(as_text=True)
    assert admin_browser.post(f"/admin/accounts/{ADMIN[0]}/demote", page="/admin").status_code == 400
    assert admin_browser.post("/admin/accounts/alice/delete", page="/admin").status_code == 303
    assert client.get("/v1/users/", headers=basic("alice", "secret1")).status_code == 401


def test_deleting_an_account_on_the_page_is_the_whole_deletion(alice, docker, admin_browser, client):
    """Not just the record: its repositories go as the form says (or nothing happens), and the
    name stays reserved, so a new "alice" cannot take alice/app over."""
    _push(docker, "alice/app", ("alice", "secret1"))
    unsaid = admin_browser.post("/admin/accounts/alice/delete", page="/admin")
    assert unsaid.status_code == 400 and "--repositories delete" in unsaid.get_data(as_text=True)
    assert client.get("/v1/users/", headers=basic("alice", "secret1")).status_code == 200
    assert admin_browser.post("/admin/accounts/alice/delete", {"repositories": "transfer", "to": "nobody"},
                              page="/admin").status_code == 400
    done = admin_browser.post("/admin/accounts/alice/delete", {"repositories": "delete"}, page="/admin")
    assert done.status_code == 303 and "stays reserved" in unquote_plus(done.headers["Location"])
    assert client.get("/v1/repositories/alice/app/tags", headers=basic(*ADMIN)).status_code == 404
    assert docker.register("alice", "taker123").status_code == 400  # reserved
    page = admin_browser.get("/admin").get_data(as_text=True)
    assert 'name="repositories"' in page and "transfer them" in page


def test_admin_deletes_repositories(alice, docker, admin_browser, client):
    _push(docker, "alice/gone", ("alice", "secret1"))
    assert admin_browser.post("/admin/repositories/alice/gone/delete", page="/admin").status_code == 303
    assert client.get("/v1/repositories/alice/gone/images").status_code == 404
    assert admin_browser.post("/admin/repositories/alice/gone/delete", page="/admin").status_code == 404


def test_signed_out_account_page_offers_sign_in(browser):
    response = browser.get("/account")
    assert response.status_code == 401
    assert ">Sign in</a>" in response.get_data(as_text=True)


def test_api_routes_stay_json(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert "Set-Cookie" not in client.get("/v1/_ping").headers
