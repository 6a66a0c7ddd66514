"""Registration policies (open, confirm, approval, closed), activation links by log and by SMTP,
and key rotation for tokens and links."""
from __future__ import annotations

import email
import re
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from itsdangerous import TimestampSigner

from index import create_app
from index.services import EXTENSION_KEY
from index.tokens import ActivationLinks
from tests.conftest import DockerActions
from tests.processes import free_port

LINK_RE = re.compile(r"https?://\S+/account/activate\?token=[A-Za-z0-9_.\-]+")


def _docker(settings, **extra):
    if extra.get("REGISTRATION") == "confirm":
        extra.setdefault("PUBLIC_HOST", "index.example.test")
    app = create_app({**settings, **extra})
    return app, DockerActions(app.test_client())


def _activation_path(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def test_open_registration_is_active_at_once(settings):
    _, docker = _docker(settings, REGISTRATION="open")
    assert docker.register().status_code == 201
    assert docker.login().status_code == 200


def test_closed_registration_refuses_with_401_so_docker_tries_to_log_in(settings):
    _, docker = _docker(settings, REGISTRATION="closed")
    answer = docker.register()
    assert answer.status_code == 401
    assert "registration is closed" in answer.get_json()["error"]


def test_approval_keeps_the_account_inactive_until_an_admin_activates_it(settings, caplog):
    caplog.set_level("INFO", logger="index")
    app, docker = _docker(settings, REGISTRATION="approval")
    assert docker.register().status_code == 201
    assert "account alice awaits approval" in caplog.text
    assert docker.login().status_code == 403
    assert docker.put_repository("alice/app", [{"id": "c" * 64}]).status_code == 403
    assert docker.get_images("alice/app", auth=("alice", "secret1")).status_code == 403
    # docker login's second try (the POST says "already exists") then ends in the same 403.
    assert docker.register().data == b'"Username or email already exists"'
    app.extensions[EXTENSION_KEY].store.update_user("alice", active=True)
    assert docker.login().status_code == 200
    assert LINK_RE.search(caplog.text) is None  # approval sends no link


def test_confirm_without_smtp_writes_the_link_to_the_log(settings, caplog):
    caplog.set_level("INFO", logger="index")
    app, docker = _docker(settings, REGISTRATION="confirm")
    assert docker.register().status_code == 201
    assert docker.login().status_code == 403
    link = LINK_RE.search(caplog.text).group(0)
    assert link.startswith("http://index.example.test/account/activate?token=")
    followed = docker.client.get(_activation_path(link))
    assert followed.status_code == 200
    assert followed.mimetype == "text/plain" and b"Account alice is active" in followed.data
    assert docker.login().status_code == 200
    # The request log line of the activation carries the path only, not the token.
    activation_lines = [r for r in caplog.records if getattr(r, "http", {}).get("path") == "/account/activate"]
    assert len(activation_lines) == 1
    assert "token" not in activation_lines[0].getMessage() and "token" not in repr(activation_lines[0].http)


def test_an_old_link_does_not_undo_a_later_deactivation(settings, caplog):
    caplog.set_level("INFO", logger="index")
    app, docker = _docker(settings, REGISTRATION="confirm")
    docker.register()
    path = _activation_path(LINK_RE.search(caplog.text).group(0))
    assert docker.client.get(path).status_code == 200
    app.extensions[EXTENSION_KEY].store.update_user("alice", active=False)
    again = docker.client.get(path)
    assert again.status_code == 200 and b"already confirmed" in again.data
    assert docker.login().status_code == 403


def test_a_deleted_accounts_link_does_not_activate_a_later_account_of_its_name(settings, caplog):
    """The old alice never confirmed; once her name is released, a new alice registers: the old
    link (mailed to the old address) must not confirm the new account."""
    caplog.set_level("INFO", logger="index")
    app, docker = _docker(settings, REGISTRATION="confirm")
    docker.register()
    old_link = _activation_path(LINK_RE.search(caplog.text).group(0))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "delete", "alice", "--yes"]).exit_code == 0
    assert runner.invoke(args=["users", "release", "alice"]).exit_code == 0
    caplog.clear()
    assert docker.register("alice", "other123", "new@example.com").status_code == 201
    refused = docker.client.get(old_link)
    assert refused.status_code == 404
    assert docker.login("alice", "other123").status_code == 403  # still waiting for its own link
    new_link = _activation_path(LINK_RE.search(caplog.text).group(0))
    assert docker.client.get(new_link).status_code == 200
    assert docker.login("alice", "other123").status_code == 200


@pytest.mark.parametrize("query, message", [
    ("", "the activation link has no token"),
    ("?token=garbage", "this activation link is not valid"),
])
def test_bad_activation_links(settings, query, message):
    _, docker = _docker(settings, REGISTRATION="confirm")
    answer = docker.client.get(f"/account/activate{query}")
    assert answer.status_code == 400
    assert answer.get_json() == {"error": message}


def test_expired_activation_link(settings, monkeypatch):
    app, docker = _docker(settings, REGISTRATION="confirm", ACTIVATION_TTL=3600)
    docker.register()
    links = app.extensions[EXTENSION_KEY].activation
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 7200)
    token = links.token_for("alice")
    monkeypatch.undo()
    answer = docker.client.get(f"/account/activate?token={token}")
    assert answer.status_code == 400
    assert "expired" in answer.get_json()["error"]
    assert docker.login().status_code == 403


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.Message]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_confirm_mails_a_link_over_smtp_that_activates_the_account(settings, smtp_server, caplog):
    caplog.set_level("INFO", logger="index")
    controller, inbox = smtp_server
    _, docker = _docker(settings, REGISTRATION="confirm", SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port,
                        SMTP_SECURITY="none", SMTP_FROM="index@example.com", PUBLIC_HOST="index.example.com")
    assert docker.register(email="alice@mail.example.com").status_code == 201
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["alice@mail.example.com"]
    assert message["From"] == "index@example.com" and "Activate" in message["Subject"]
    link = LINK_RE.search(message.get_payload(decode=True).decode()).group(0)
    assert link.startswith("http://index.example.com/account/activate?token=")
    assert LINK_RE.search(caplog.text) is None  # mailed, so not in the log
    assert "activation link mailed to alice" in caplog.text
    assert docker.login().status_code == 403
    assert docker.client.get(_activation_path(link)).status_code == 200
    assert docker.login().status_code == 200


# The test server accepts AUTH in clear text on loopback; aiosmtpd warns about exactly that.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_is_used_when_configured(settings):
    inbox, logins = _Inbox(), []

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data))
        ok = isinstance(auth_data, LoginPassword) and auth_data == LoginPassword(b"mailer", b"mail-secret")
        return AuthResult(success=ok)

    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ready_timeout=10,
                            authenticator=authenticate, auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        _, docker = _docker(settings, REGISTRATION="confirm", SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port,
                            SMTP_SECURITY="none", SMTP_USERNAME="mailer", SMTP_PASSWORD="mail-secret")
        assert docker.register().status_code == 201
    finally:
        controller.stop()
    assert len(logins) == 1 and logins[0][1] == LoginPassword(b"mailer", b"mail-secret")
    assert len(inbox.messages) == 1


def test_starttls_mode_refuses_a_server_without_starttls(settings, smtp_server, caplog):
    caplog.set_level("INFO", logger="index")
    controller, inbox = smtp_server
    _, docker = _docker(settings, REGISTRATION="confirm", SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port,
                        SMTP_SECURITY="starttls", SMTP_USERNAME="mailer", SMTP_PASSWORD="mail-secret")
    assert docker.register().status_code == 201
    assert inbox.messages == []  # nothing, and no password, went out in clear text
    assert "STARTTLS" in caplog.text and "could not mail the activation link" in caplog.text
    assert "mail-secret" not in caplog.text


def test_an_unreachable_smtp_server_leaves_the_link_in_the_log(settings, caplog):
    caplog.set_level("INFO", logger="index")
    _, docker = _docker(settings, REGISTRATION="confirm", SMTP_HOST="127.0.0.1", SMTP_PORT=free_port(),
                        SMTP_SECURITY="none")
    assert docker.register().status_code == 201
    assert "could not mail the activation link to alice" in caplog.text
    assert LINK_RE.search(caplog.text) is not None


def test_rotated_key_keeps_old_tokens_and_links_valid(settings, caplog):
    caplog.set_level("INFO", logger="index")
    old_app, old = _docker(settings, REGISTRATION="confirm", SECRET_KEY="old-key")
    old.register()
    old_link = _activation_path(LINK_RE.search(caplog.text).group(0))
    old_app.extensions[EXTENSION_KEY].store.update_user("alice", active=True)
    write_token = old.put_repository("alice/app", [{"id": "d" * 64}]).headers["X-Docker-Token"]

    _, rotated = _docker(settings, REGISTRATION="confirm", SECRET_KEY="new-key", SECRET_KEY_FALLBACKS="old-key")
    assert rotated.validate("alice/app", write_token).status_code == 200
    new_token = rotated.put_repository("alice/app", []).headers["X-Docker-Token"]
    assert rotated.validate("alice/app", new_token).status_code == 200
    assert rotated.client.get(old_link).status_code == 200

    _, dropped = _docker(settings, REGISTRATION="confirm", SECRET_KEY="new-key")
    assert dropped.validate("alice/app", write_token).status_code == 401
    assert dropped.validate("alice/app", new_token).status_code == 200
    assert dropped.client.get(old_link).status_code == 400


def test_activation_links_sign_with_the_newest_key():
    old = ActivationLinks("old-key", 60)
    rotated = ActivationLinks("new-key", 60, ["old-key"])
    assert rotated.username_of(old.token_for("alice")) == "alice"
    assert ActivationLinks("new-key", 60).username_of(rotated.token_for("bob")) == "bob"
