"""The audit trail: every audited action performed once is found once; crash-safe appends,
rotation, backups; read through the CLI and the API, newest first."""
from __future__ import annotations

import json
import tarfile
from collections import Counter

import pytest

from index import create_app
from index.events import EXTENSION_KEY
from index.events.audit import AuditTrail, Query
from index.ops.backup import create_backup
from tests.conftest import ADMIN, basic, image_id

from .conftest import api, push


@pytest.fixture
def settings(settings):
    return {**settings, "LOGIN_FAILURES_PER_MINUTE": 2}


def _trail(app) -> list[dict]:
    return list(reversed(list(app.extensions[EXTENSION_KEY].audit.newest_first())))


def _only(entries, event: str) -> dict:
    found = [entry for entry in entries if entry["event"] == event]
    assert len(found) == 1, (event, found)
    return found[0]


def test_every_audited_action_is_in_the_trail_once(app, client, docker):
    assert docker.register("alice", "secret1").status_code == 201
    assert docker.login("alice", "secret1").status_code == 200
    assert docker.login("alice", "wrong-pass").status_code == 401
    assert docker.login("mallory", "guess-one").status_code == 401
    assert docker.login("mallory", "guess-two").status_code == 429  # over the limit of 2
    assert docker.login("mallory", "guess-three").status_code == 429  # recorded once a minute
    changed = client.put("/v1/users/alice/", data=json.dumps({"email": "alice@example.org"}),
                         headers=basic("alice", "secret1"), content_type="application/json")
    assert changed.status_code == 204
    ids = push(client, "alice/app", 1, tag="v1")
    token = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true"}).headers["X-Docker-Token"]
    assert client.get("/v1/repositories/alice/other/tags", headers={"Authorization": f"Token {token}"}).status_code == 403
    assert client.delete("/v1/repositories/alice/app/tags/v1", headers=basic("alice", "secret1")).status_code == 200
    hook = api(client, "POST", "/api/v1/user/notification/",
               {"event": "repo_push", "config": {"url": "http://127.0.0.1:9/"}}).get_json()
    assert api(client, "DELETE", f"/api/v1/user/notification/{hook['uuid']}").status_code == 204
    assert client.delete("/v1/repositories/alice/app/", headers={**basic("alice", "secret1"),
                                                                 "X-Docker-Endpoints": "localhost"}).status_code == 200
    runner = app.test_cli_runner()
    for args in (["users", "promote", "alice"], ["users", "deactivate", "alice"], ["users", "delete", "alice", "--yes"]):
        assert runner.invoke(args=args).exit_code == 0

    entries = _trail(app)
    assert all(entry["at"].endswith("Z") for entry in entries)
    assert _only(entries, "register")["user"] == "alice"
    logins = [entry for entry in entries if entry["event"] == "login"]
    assert logins and {entry["user"] for entry in logins} == {"alice"}  # once per credential cache period
    failed = [entry for entry in entries if entry["event"] == "login_failed"]
    assert [(entry["username"], entry["address"]) for entry in failed] == [("alice", "127.0.0.1"), ("mallory", "127.0.0.1")]
    assert _only(entries, "lockout")["username"] == "mallory"
    web = [entry for entry in entries if entry.get("via") != "cli"]
    assert _only(web, "account_change")["changed"] == ["email"]
    assert _only(entries, "repository_create")["repository"] == "alice/app"
    pushed = _only(entries, "push")
    assert (pushed["user"], pushed["repository"], pushed["tags"], pushed["images"]) == \
        ("alice", "alice/app", {"v1": ids[1]}, ids)
    assert _only(entries, "token_refused")["reason"].startswith("token is for repository alice/app")
    assert _only(entries, "tag_delete")["tags"] == {"v1": ids[1]}
    assert _only(entries, "notification_create")["notification"] == hook["uuid"]
    assert _only(entries, "notification_delete")["notification"] == hook["uuid"]
    assert _only(entries, "repository_delete")["user"] == "alice"
    role = _only(entries, "role_change")
    assert (role["account"], role["admin"], role["user"], role["via"]) == ("alice", True, "(cli)", "cli")
    assert _only(entries, "account_delete")["account"] == "alice"
    assert [(entry["event"], entry.get("active")) for entry in entries if entry.get("via") == "cli"] == \
        [("role_change", None), ("account_change", False), ("account_delete", None)]


def test_activation_by_link_and_by_the_cli_are_audited(tmp_path, settings):
    app = create_app({**settings, "REGISTRATION": "approval"})
    client = app.test_client()
    body = {"username": "carol", "password": "secret1", "email": "carol@example.com"}
    assert client.post("/v1/users/", json=body).status_code == 201
    assert app.test_cli_runner().invoke(args=["users", "activate", "carol"]).exit_code == 0
    link = app.extensions["docker_index"].activation.token_for("carol")
    app2 = create_app({**settings, "DATA_DIR": tmp_path / "other", "REGISTRATION": "confirm",
                       "PUBLIC_HOST": "index.example.com"})
    assert app2.test_client().post("/v1/users/", json=body).status_code == 201
    token = app2.extensions["docker_index"].activation.token_for("carol")
    assert app2.test_client().get(f"/account/activate?token={token}").status_code == 200
    assert link
    registered = _only(_trail(app), "register")
    assert (registered["user"], registered["active"]) == ("carol", False)
    assert _only(_trail(app), "activate")["via"] == "cli"
    assert _only(_trail(app2), "activate")["via"] == "link"


def test_a_torn_last_line_is_skipped_and_never_swallows_the_next(tmp_path):
    trail = AuditTrail(tmp_path, max_bytes=1 << 20, keep=3)
    trail.append({"at": "2026-01-01T00:00:00.000Z", "event": "login", "user": "alice"})
    with open(trail.path, "ab") as handle:
        handle.write(b'{"at":"2026-01-01T00:00:01.000Z","event":"pu')  # kill -9 half-way through a write
    assert [entry["user"] for entry in trail.newest_first()] == ["alice"]
    trail.append({"at": "2026-01-01T00:00:02.000Z", "event": "login", "user": "bobby"})
    assert [entry["user"] for entry in trail.newest_first()] == ["bobby", "alice"]
    assert trail.path.read_bytes().count(b"\n") == 3


def test_rotation_keeps_n_files_and_reads_across_them_newest_first(tmp_path):
    trail = AuditTrail(tmp_path, max_bytes=400, keep=2)
    for n in range(60):
        trail.append({"at": f"2026-01-01T00:00:{n:02d}.000Z", "event": "login", "user": f"user{n:02d}"})
    assert sorted(path.name for path in trail.folder.iterdir() if not path.name.endswith(".lock")) == \
        ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(path.stat().st_size <= 400 + 100 for path in trail.files())
    users = [entry["user"] for entry in trail.newest_first()]
    assert users[0] == "user59" and users == sorted(users, reverse=True)
    assert len(users) < 60  # the oldest went with the oldest file
    found, more = trail.query(Query(user="user58"))
    assert [entry["user"] for entry in found] == ["user58"] and not more


def test_backup_archives_the_trail(app, client, docker, tmp_path):
    assert docker.register("alice", "secret1").status_code == 201
    summary = create_backup(app.extensions["docker_index"].store, tmp_path / "backup.tar.gz")
    with tarfile.open(summary.path) as archive:
        member = archive.extractfile("audit/audit.jsonl")
        assert member is not None
        assert json.loads(member.read().splitlines()[0])["event"] == "register"


def _fill(app, client, docker):
    assert docker.register("alice", "secret1").status_code == 201
    for n in range(5):
        push(client, "alice/app", 2 * n + 1, tag=f"t{n}")
    push(client, "alice/other", 20)


def test_superuser_logs_are_paginated_newest_first(app, client, docker):
    _fill(app, client, docker)
    first = api(client, "GET", "/api/v1/superuser/logs?event=push&per_page=2", auth=ADMIN).get_json()
    assert [entry["tags"] for entry in first["logs"]] == [{"latest": image_id(21)}, {**{f"t{n}": image_id(2 * n + 2) for n in range(5)}}]
    assert (first["page"], first["has_more"], first["next_page"]) == (1, True, 2)
    pages = [api(client, "GET", f"/api/v1/superuser/logs?event=push&per_page=2&page={page}", auth=ADMIN).get_json()
             for page in (1, 2, 3)]
    ats = [entry["at"] for page in pages for entry in page["logs"]]
    assert len(ats) == 6 and ats == sorted(ats, reverse=True)
    assert pages[2]["has_more"] is False and "next_page" not in pages[2]
    only = api(client, "GET", "/api/v1/superuser/logs?repository=alice/other&event=push", auth=ADMIN).get_json()
    assert len(only["logs"]) == 1
    assert api(client, "GET", "/api/v1/superuser/logs?since=2h&user=alice&event=register", auth=ADMIN).get_json()["logs"]
    assert api(client, "GET", "/api/v1/superuser/logs?since=2999-01-01", auth=ADMIN).get_json()["logs"] == []
    assert api(client, "GET", "/api/v1/superuser/logs").status_code == 403  # alice is no site admin
    for bad in ("page=0", "per_page=501", "page=x", "event=nope", "since=yesterday", "since=2140306d", "pages=2"):
        answer = api(client, "GET", f"/api/v1/superuser/logs?{bad}", auth=ADMIN)
        assert answer.status_code == 400, bad
        assert "error" in answer.get_json()


def test_repository_logs_are_for_its_admins(app, client, docker):
    _fill(app, client, docker)
    mine = api(client, "GET", "/api/v1/repository/alice/app/logs?per_page=100").get_json()["logs"]
    assert mine and {entry["repository"] for entry in mine} == {"alice/app"}
    assert Counter(entry["event"] for entry in mine) == {"push": 5, "repository_create": 1}
    assert docker.register("bobby", "secret1").status_code == 201
    assert api(client, "GET", "/api/v1/repository/alice/app/logs", auth=("bobby", "secret1")).status_code == 403
    assert api(client, "GET", "/api/v1/repository/alice/app/logs", auth=None).status_code == 401
    other = api(client, "GET", "/api/v1/repository/alice/app/logs?repository=bobby/x")
    assert other.status_code == 400 and "unknown query parameter" in other.get_json()["error"]


def test_the_cli_queries_by_user_repository_event_and_since(app, client, docker):
    _fill(app, client, docker)
    runner = app.test_cli_runner()
    pushes = runner.invoke(args=["audit", "query", "--event", "push", "--repository", "alice/app", "--json"])
    assert pushes.exit_code == 0, pushes.output
    lines = [json.loads(line) for line in pushes.output.splitlines()]
    assert [entry["tags"].get("t4") for entry in lines][:1] == [image_id(10)] and len(lines) == 5
    by_user = runner.invoke(args=["audit", "query", "--user", "alice", "--since", "1h", "--limit", "2"])
    assert by_user.exit_code == 0 and len(by_user.output.splitlines()) == 2 + 1  # and the "more" hint
    assert runner.invoke(args=["audit", "query", "--since", "2999-01-01T00:00:00Z"]).output == ""
    bad = runner.invoke(args=["audit", "query", "--since", "soon"])
    assert bad.exit_code != 0 and "since" in bad.output


@pytest.mark.live
def test_a_writer_killed_with_sigkill_leaves_a_readable_trail(tmp_path):
    """A real process appending as fast as it can is killed -9: every record before the kill reads
    back in order (at most the last one lost), and the next append lands on a line of its own."""
    import signal
    import subprocess
    import sys
    import time

    from tests.processes import ROOT

    script = ("import sys\nfrom index.events.audit import AuditTrail\n"
              "trail = AuditTrail(sys.argv[1], max_bytes=1 << 30, keep=1)\n"
              "n = 0\nwhile True:\n"
              "    trail.append({'at': '2026-01-01T00:00:00.000Z', 'event': 'login', 'n': n, 'pad': 'x' * (n % 300)})\n"
              "    n += 1\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        trail_file = tmp_path / "audit" / "audit.jsonl"
        while not trail_file.exists() or trail_file.stat().st_size < 20_000:
            assert time.monotonic() < deadline and writer.poll() is None
            time.sleep(0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    trail = AuditTrail(tmp_path, max_bytes=1 << 30, keep=1)
    numbers = [entry["n"] for entry in reversed(list(trail.newest_first()))]
    assert numbers == list(range(len(numbers))) and len(numbers) > 50
    trail.append({"at": "2026-01-01T00:00:01.000Z", "event": "login", "n": "after"})
    assert next(trail.newest_first())["n"] == "after"


def test_grants_and_visibility_changes_are_in_the_trail_once(app, client, docker):
    assert docker.register("alice", "secret1").status_code == 201
    assert docker.register("bobby", "secret1").status_code == 201
    push(client, "alice/app", 1)
    assert api(client, "PUT", "/api/v1/repository/alice/app/permissions/user/bobby", {"role": "read"}).status_code == 200
    assert api(client, "POST", "/api/v1/repository/alice/app/changevisibility", {"visibility": "public"}).status_code == 200
    entries = _trail(app)
    grant = _only(entries, "grant_change")
    assert (grant["user"], grant["repository"], grant["grantee"], grant["role"]) == ("alice", "alice/app", "bobby", "read")
    visibility = _only(entries, "visibility_change")
    assert (visibility["user"], visibility["repository"], visibility["visibility"]) == ("alice", "alice/app", "public")
