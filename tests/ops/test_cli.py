"""The admin CLI (flask --app wsgi users/repositories ...), driven through Flask's CLI runner."""
from __future__ import annotations

import json

import pytest

from tests.conftest import DockerActions


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        return runner.invoke(args=list(args), input=input)
    return invoke


@pytest.fixture
def docker(client):
    return DockerActions(client)


def test_create_with_a_prompted_password(cli, docker, store):
    result = cli("users", "create", "carol", "--email", "carol@example.com", input="s3cret-pw\ns3cret-pw\n")
    assert result.exit_code == 0, result.output
    assert "created user carol" in result.output
    assert "s3cret-pw" not in result.output  # the prompt hides what is typed
    assert docker.login("carol", "s3cret-pw").status_code == 200
    assert store.find_user("carol")["admin"] is False


def test_create_admin_from_stdin_and_inactive(cli, docker, store):
    assert cli("users", "create", "dave", "--email", "d@example.com", "--admin", "--password-stdin",
               input="from-stdin-1\n").exit_code == 0
    assert store.find_user("dave")["admin"] is True
    assert docker.login("dave", "from-stdin-1").status_code == 200
    assert cli("users", "create", "erin", "--email", "e@example.com", "--inactive", "--password-stdin",
               input="erin-pass\n").exit_code == 0
    assert docker.login("erin", "erin-pass").status_code == 403


def test_passwords_are_never_taken_from_argv(cli):
    result = cli("users", "create", "frank", "--email", "f@example.com", "--password", "visible")
    assert result.exit_code == 2
    assert "No such option '--password'" in result.output


@pytest.mark.parametrize("args, stdin, message", [
    (["users", "create", "Bad Name", "--email", "x@example.com", "--password-stdin"], "pw-12345\n", "invalid username"),
    (["users", "create", "grace", "--email", "not-an-email", "--password-stdin"], "pw-12345\n", "invalid email"),
    (["users", "create", "grace", "--email", "g@example.com", "--password-stdin"], "abc\n", "at least 5 characters"),
    (["users", "create", "admin", "--email", "x@example.com", "--password-stdin"], "pw-12345\n", "username already exists"),
    (["users", "show", "nobody"], None, "no user 'nobody'"),
    (["users", "activate", "nobody"], None, "no user 'nobody'"),
    (["repositories", "show", "alice/none"], None, "no repository 'alice/none'"),
    (["repositories", "show", "Alice/../x"], None, "invalid namespace"),
])
def test_bad_input_is_one_clear_error(cli, args, stdin, message):
    result = cli(*args, input=stdin)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_list_show_and_state_changes(cli, alice, store):
    listed = cli("users", "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert any(line.startswith("admin ") and "active,admin" in line for line in lines)
    assert any(line.startswith("alice ") and "alice@example.com" in line for line in lines)
    shown = cli("users", "show", "alice")
    assert "active:       yes" in shown.output and "password" not in shown.output.lower()
    assert "$2b$" not in shown.output

    assert cli("users", "deactivate", "alice").exit_code == 0
    assert alice.login().status_code == 403
    assert cli("users", "activate", "alice").exit_code == 0
    assert alice.login().status_code == 200
    assert cli("users", "promote", "alice").exit_code == 0
    assert alice.put_repository("busybox", [{"id": "f" * 64}]).status_code == 200  # admins write library
    assert cli("users", "demote", "alice").exit_code == 0
    assert alice.put_repository("busybox", [{"id": "f" * 64}]).status_code == 403


def test_set_password(cli, alice):
    result = cli("users", "set-password", "alice", "--password-stdin", input="brand-new-pw\n")
    assert result.exit_code == 0 and "brand-new-pw" not in result.output
    assert alice.login("alice", "secret1").status_code == 401
    assert alice.login("alice", "brand-new-pw").status_code == 200


def test_delete_user_asks_first(cli, alice, store):
    declined = cli("users", "delete", "alice", input="n\n")
    assert declined.exit_code == 1 and store.find_user("alice") is not None
    assert cli("users", "delete", "alice", "--yes").exit_code == 0
    assert store.find_user("alice") is None
    assert alice.login().status_code == 401


def test_repositories_list_show_describe_delete(cli, alice, client):
    token = alice.put_repository("alice/web", [{"id": "1" * 64, "Tag": "latest"}]).headers["X-Docker-Token"]
    listed = cli("repositories", "list")
    assert listed.exit_code == 0
    (row,) = [line for line in listed.output.splitlines() if line.startswith("alice/web")]
    assert row.split()[1:5] == ["active", "(1", "incomplete)", "1"]  # announced, never uploaded
    shown = cli("repositories", "show", "alice/web")
    assert "owner:       alice" in shown.output and "1" * 64 in shown.output

    described = cli("repositories", "describe", "alice/web", "Nginx with our config")
    assert described.exit_code == 0
    found = json.loads(client.get("/v1/search?q=nginx").data)
    assert [r["name"] for r in found["results"]] == ["alice/web"]
    assert found["results"][0]["description"] == "Nginx with our config"

    assert cli("repositories", "delete", "alice/web", "--yes").exit_code == 0
    assert "alice/web" not in cli("repositories", "list").output
    assert alice.validate("alice/web", token).status_code == 404


def test_every_command_documents_itself(cli):
    for group, commands in {"users": ["create", "list", "show", "activate", "deactivate", "promote",
                                      "demote", "set-password", "delete"],
                            "repositories": ["list", "show", "describe", "delete"]}.items():
        overview = cli(group, "--help")
        assert overview.exit_code == 0
        for command in commands:
            assert command in overview.output
            detail = cli(group, command, "--help")
            assert detail.exit_code == 0 and "Usage:" in detail.output
            assert len(detail.output.split("Options:")[0].strip().splitlines()) >= 3  # usage + a sentence
    for command in ("self-check", "cert"):
        assert cli(command, "--help").exit_code == 0
