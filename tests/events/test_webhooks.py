"""Webhooks in-process: the notification API, signed deliveries to a real receiver, retries."""
from __future__ import annotations

import json
import os
import time

import pytest

from index import create_app
from index.events.delivery import retry_delay
from tests.conftest import image_id

from .conftest import api, push

REPO_HOOKS = "/api/v1/repository/alice/app/notification/"


def _hook(client, receiver, event="repo_push", path=REPO_HOOKS, auth=("alice", "secret1"), **config):
    answer = api(client, "POST", path, {"event": event, "method": "webhook", "title": "ci",
                                        "config": {"url": receiver.url, **config}}, auth=auth)
    assert answer.status_code == 201, answer.data
    return answer.get_json()


def test_a_push_is_delivered_once_signed_with_every_field(client, alice, events, receiver):
    push(client, "alice/app", 1, tag="v1")  # the repository exists before its hooks do
    created = _hook(client, receiver)
    secret = created["config"]["secret"]  # generated, shown once
    assert len(secret) >= 32
    listed = api(client, "GET", REPO_HOOKS).get_json()["notifications"]
    assert [n["uuid"] for n in listed] == [created["uuid"]]
    assert "secret" not in listed[0]["config"] and "secret" not in json.dumps(listed)

    ids = push(client, "alice/app", 3, tag="v2")
    assert events.outbox.depth() == 1  # queued durably before docker was answered, and only one
    assert events.dispatcher.deliver_due() == 1
    [delivery] = receiver.wait_for(1)
    body = delivery.json
    assert body["event"] == "repo_push" and body["repository"] == "alice/app"
    assert (body["namespace"], body["name"], body["pushed_by"], body["index"]) == ("alice", "app", "alice", "localhost")
    assert body["tags"] == {"v1": image_id(2), "v2": ids[1]}
    assert body["at"].endswith("Z") and len(body["id"]) == 32
    assert delivery.headers["X-Index-Event"] == "repo_push"
    assert delivery.headers["X-Index-Delivery"] == body["id"]
    assert delivery.signed_with(secret)
    assert not delivery.signed_with(secret + "x")  # the check can fail
    assert events.outbox.depth() == 0
    attempts = api(client, "GET", f"{REPO_HOOKS}{created['uuid']}").get_json()["attempts"]
    assert [(a["status"], a["error"], a["delivery"]) for a in attempts] == [(200, None, body["id"])]


def test_a_given_secret_signs_and_is_never_shown(client, alice, events, receiver):
    push(client, "alice/app", 1)
    created = _hook(client, receiver, secret="s3cret-of-sixteen-chars")
    assert "secret" not in created["config"]
    push(client, "alice/app", 1)
    events.dispatcher.deliver_due()
    assert receiver.wait_for(1)[0].signed_with("s3cret-of-sixteen-chars")


def test_a_receiver_that_is_down_gets_the_same_event_later_with_backoff(client, alice, events, receiver):
    push(client, "alice/app", 1)
    created = _hook(client, receiver)
    receiver.stop()
    push(client, "alice/app", 1)
    assert events.dispatcher.deliver_due() == 1
    [entry] = events.outbox.pending()
    assert entry["attempts"] == 1 and entry["next_at"] > time.time()
    assert events.dispatcher.deliver_due() == 0  # not due yet
    assert events.dispatcher.deliver_due(now=entry["next_at"] + 0.01) == 1  # fails again
    [entry] = events.outbox.pending()
    assert entry["attempts"] == 2
    assert api(client, "GET", f"{REPO_HOOKS}{created['uuid']}").get_json()["number_of_failures"] == 2
    receiver.status = 500
    receiver.start()
    events.dispatcher.deliver_due(now=entry["next_at"] + 0.01)  # a 500 is not a delivery
    [entry] = events.outbox.pending()
    assert entry["attempts"] == 3
    receiver.status = 204
    events.dispatcher.deliver_due(now=entry["next_at"] + 0.01)
    assert events.outbox.pending() == []
    ids = {item.headers["X-Index-Delivery"] for item in receiver.received}
    assert len(ids) == 1 and len(receiver.received) == 2  # the 500 one and the delivered one
    shown = api(client, "GET", f"{REPO_HOOKS}{created['uuid']}").get_json()
    attempts = shown["attempts"]
    assert [a["status"] for a in attempts] == [204, 500, None, None]
    assert shown["number_of_failures"] == 0
    assert "ConnectionRefusedError" in attempts[-1]["error"]


def test_temp_files_of_dead_writes_are_cleaned_up(events):
    events.outbox.folder.mkdir(parents=True, exist_ok=True)
    old, fresh = events.outbox.folder / "x.json.tmp-old", events.outbox.folder / "y.json.tmp-new"
    old.write_bytes(b"{")
    fresh.write_bytes(b"{")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert events.outbox.remove_stale_temp_files() == 1
    assert not old.exists() and fresh.exists() and events.outbox.pending() == []


def test_backoff_doubles_up_to_the_maximum():
    assert [retry_delay(n, 10, 3600) for n in (1, 2, 3, 9, 10, 50)] == [10, 20, 40, 2560, 3600, 3600]


def test_redirects_are_not_followed_and_old_events_are_given_up(client, alice, events, receiver, monkeypatch):
    push(client, "alice/app", 1)
    _hook(client, receiver)
    receiver.status, receiver.location = 302, "http://127.0.0.1:1/elsewhere"
    push(client, "alice/app", 1)
    events.dispatcher.deliver_due()
    assert len(receiver.received) == 1 and events.outbox.depth() == 1  # a 3xx is a failure
    events.dispatcher.give_up_after = 0  # the event is now older than the give-up age
    [entry] = events.outbox.pending()
    events.dispatcher.deliver_due(now=entry["next_at"] + 1)
    assert events.outbox.depth() == 0 and len(receiver.received) == 2


def test_tag_and_repository_deletes_are_events_too(client, alice, events, receiver):
    ids = push(client, "alice/app", 1, tag="v1")
    push(client, "alice/app", 1, tag="v2")
    pushes, tag_deletes, repo_deletes = (_hook(client, receiver, event) for event in
                                         ("repo_push", "tag_delete", "repo_delete"))
    deleted = client.delete("/v1/repositories/alice/app/tags/v1", headers=_basic_alice())
    assert deleted.status_code == 200
    step1 = client.delete("/v1/repositories/alice/app/", headers=_basic_alice())
    assert step1.status_code == 202
    token = {"Authorization": "Token " + step1.headers["X-Docker-Token"]}
    assert client.delete("/v1/repositories/alice/app/", headers=token).status_code == 200
    assert client.delete("/v1/repositories/alice/app/",
                         headers={**_basic_alice(), "X-Docker-Endpoints": "localhost"}).status_code == 200
    events.dispatcher.deliver_due()
    bodies = sorted(receiver.bodies(), key=lambda body: body["event"])
    assert [body["event"] for body in bodies] == ["repo_delete", "tag_delete"]
    assert bodies[1]["tags"] == {"v1": ids[1]} and bodies[1]["pushed_by"] == "alice"
    assert bodies[0]["repository"] == "alice/app"
    assert pushes["uuid"] not in {item.headers.get("X-Index-Delivery") for item in receiver.received}
    # The deleted repository's webhooks stay listed and removable by its admins.
    listed = api(client, "GET", REPO_HOOKS).get_json()["notifications"]
    assert {n["uuid"] for n in listed} == {pushes["uuid"], tag_deletes["uuid"], repo_deletes["uuid"]}
    assert api(client, "DELETE", f"{REPO_HOOKS}{pushes['uuid']}").status_code == 204


def _basic_alice():
    from tests.conftest import basic
    return basic("alice", "secret1")


def test_namespace_hooks_hear_every_repository_of_the_namespace(client, alice, docker, events, receiver):
    user_hook = _hook(client, receiver, path="/api/v1/user/notification/")
    org_hook = _hook(client, receiver, path="/api/v1/organization/alice/notification/")
    assert {n["uuid"] for n in api(client, "GET", "/api/v1/user/notification/").get_json()["notifications"]} == \
        {user_hook["uuid"], org_hook["uuid"]}
    assert docker.register("bobby", "secret1").status_code == 201
    push(client, "alice/one", 1)
    push(client, "bobby/two", 5, auth=("bobby", "secret1"))
    events.dispatcher.deliver_due()
    received = receiver.wait_for(2)
    assert {item.json["repository"] for item in received} == {"alice/one"}
    assert len({item.headers["X-Index-Delivery"] for item in received}) == 1  # one event, two hooks
    # bobby may neither see nor change alice's namespace hooks
    assert api(client, "GET", "/api/v1/organization/alice/notification/", auth=("bobby", "secret1")).status_code == 403
    assert api(client, "DELETE", f"/api/v1/organization/alice/notification/{org_hook['uuid']}",
               auth=("bobby", "secret1")).status_code == 403
    assert api(client, "DELETE", f"/api/v1/user/notification/{org_hook['uuid']}",
               auth=("bobby", "secret1")).status_code == 404  # not in bobby's namespace
    assert api(client, "DELETE", f"/api/v1/user/notification/{user_hook['uuid']}").status_code == 204
    assert api(client, "GET", f"/api/v1/user/notification/{user_hook['uuid']}").status_code == 404


def test_the_test_endpoint_sends_a_test_delivery(client, alice, events, receiver):
    push(client, "alice/app", 1)
    created = _hook(client, receiver)
    answer = api(client, "POST", f"{REPO_HOOKS}{created['uuid']}/test")
    assert answer.status_code == 200
    events.dispatcher.deliver_due()
    [delivery] = receiver.wait_for(1)
    assert delivery.json["test"] is True and delivery.json["id"] == answer.get_json()["delivery"]
    assert delivery.signed_with(created["config"]["secret"])


def test_deleting_a_hook_drops_its_pending_deliveries(client, alice, events, receiver):
    push(client, "alice/app", 1)
    created = _hook(client, receiver)
    push(client, "alice/app", 1)
    assert api(client, "DELETE", f"{REPO_HOOKS}{created['uuid']}").status_code == 204
    events.dispatcher.deliver_due()
    assert receiver.received == [] and events.outbox.depth() == 0


def test_only_repository_admins_manage_its_hooks(client, alice, docker, receiver):
    push(client, "alice/app", 1)
    assert docker.register("bobby", "secret1").status_code == 201
    body = {"event": "repo_push", "config": {"url": receiver.url}}
    assert api(client, "POST", REPO_HOOKS, body, auth=("bobby", "secret1")).status_code == 403
    assert api(client, "GET", REPO_HOOKS, auth=("bobby", "secret1")).status_code == 403
    assert api(client, "GET", REPO_HOOKS, auth=None).status_code == 401
    assert api(client, "POST", "/api/v1/repository/alice/nothing/notification/", body).status_code == 404
    assert api(client, "POST", REPO_HOOKS, body, auth=("admin", "adminpass")).status_code == 201


@pytest.mark.parametrize("body, message", [
    ({"event": "repo_pull", "config": {"url": "http://127.0.0.1/"}}, "event must be one of"),
    ({"event": "repo_push", "method": "email", "config": {"url": "http://127.0.0.1/"}}, "method must be webhook"),
    ({"event": "repo_push", "config": {"url": "ftp://127.0.0.1/"}}, "http:// or https://"),
    ({"event": "repo_push", "config": {"url": "http://user:pw@127.0.0.1/"}}, "credentials"),
    ({"event": "repo_push", "config": {"url": "http://127.0.0.1/", "secret": "short"}}, "config.secret"),
    ({"event": "repo_push", "config": {"url": "http://does-not-exist.invalid/"}}, "cannot resolve"),
    ({"event": "repo_push"}, "config must be a JSON object"),
    ([], "body must be a JSON object"),
])
def test_bad_notifications_are_400(client, alice, body, message):
    push(client, "alice/app", 1)
    answer = api(client, "POST", REPO_HOOKS, body)
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://localhost/", "http://10.1.2.3/",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/",
                                 "http://192.168.0.10/", "http://[::ffff:127.0.0.1]/"])
def test_private_targets_are_refused_by_default(tmp_path, url):
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path / "data", "SECRET_KEY": "k", "BCRYPT_ROUNDS": 4,
                      "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "adminpass"})
    client = app.test_client()
    answer = api(client, "POST", "/api/v1/user/notification/",
                 {"event": "repo_push", "config": {"url": url}}, auth=("admin", "adminpass"))
    assert answer.status_code == 400
    assert "INDEX_WEBHOOK_ALLOW_PRIVATE" in answer.get_json()["error"]


def test_a_target_that_turns_private_later_is_refused_at_delivery(tmp_path, receiver):
    """Checked again at every attempt (DNS may change): the delivery fails, nothing is sent."""
    app = create_app({"TESTING": True, "DATA_DIR": tmp_path / "data", "SECRET_KEY": "k", "BCRYPT_ROUNDS": 4,
                      "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "adminpass", "WEBHOOK_ALLOW_PRIVATE": True})
    client = app.test_client()
    _hook(client, receiver, path="/api/v1/user/notification/", auth=("admin", "adminpass"))
    from index.events import EXTENSION_KEY
    found = app.extensions[EXTENSION_KEY]
    found.dispatcher.allow_private = False  # what a restart without the setting does
    push(client, "admin/app", 1, auth=("admin", "adminpass"))
    found.dispatcher.deliver_due()
    assert receiver.received == []
    [entry] = found.outbox.pending()
    assert entry["attempts"] == 1


def test_the_cli_adds_lists_tests_and_removes_hooks(app, client, alice, events, receiver):
    push(client, "alice/app", 1)
    runner = app.test_cli_runner()
    added = runner.invoke(args=["notifications", "add", "alice/app", "--event", "repo_push", "--url", receiver.url])
    assert added.exit_code == 0, added.output
    uuid = added.output.split()[2]
    assert "secret (shown once): " in added.output
    listed = runner.invoke(args=["notifications", "list", "alice/app"])
    assert uuid in listed.output and "no attempts yet" in listed.output
    assert runner.invoke(args=["notifications", "test", uuid]).exit_code == 0
    events.dispatcher.deliver_due()
    receiver.wait_for(1)
    attempts = runner.invoke(args=["notifications", "attempts", uuid, "--json"])
    assert json.loads(attempts.output.splitlines()[0])["status"] == 200
    refused = runner.invoke(args=["notifications", "add", "alice", "--event", "repo_push", "--url", "gopher://x/"])
    assert refused.exit_code != 0 and "http:// or https://" in refused.output
    assert runner.invoke(args=["notifications", "remove", uuid]).exit_code == 0
    assert runner.invoke(args=["notifications", "list", "alice/app"]).output == ""


def test_an_answer_trickled_slower_than_the_timeout_is_cut_off():
    """Each byte comes before the socket timeout, but the whole answer not within the deadline."""
    import socket
    import threading

    from index.events.targets import post

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def trickle():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.2):
                    return
                try:
                    connection.send(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        outcome = post(f"http://127.0.0.1:{port}/", b"{}", {}, allow_private=True, timeout=1.0)
        assert not outcome.delivered and time.monotonic() - started < 3
        assert outcome.error == "no complete answer within 1 s"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_https_targets_are_verified_against_the_url_host(tmp_path):
    """The connection goes to the checked address, but TLS still checks the certificate's name."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from index.events.targets import post
    from index.ops.certs import write_self_signed

    cert, key = write_self_signed(tmp_path / "tls", ["localhost"])
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        ok = post(f"https://localhost:{port}/hook", b'{"a":1}', {}, allow_private=True, tls_context=trusting)
        assert ok.delivered and ok.status == 202 and received == [b'{"a":1}']
        untrusted = post(f"https://localhost:{port}/hook", b"{}", {}, allow_private=True)
        assert not untrusted.delivered and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
        wrong_name = post(f"https://127.0.0.1:{port}/hook", b"{}", {}, allow_private=True, tls_context=trusting)
        assert not wrong_name.delivered and "certificate" in wrong_name.error.lower()
        assert len(received) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_events_openapi_patterns_are_the_documents_own():
    from index import openapi
    from index.events import openapi as events_openapi
    assert events_openapi._NAMESPACE_PATTERN == openapi.NAMESPACE_PATTERN
    assert events_openapi._REPOSITORY_PATTERN == openapi.REPOSITORY_PATTERN


def test_a_push_whose_event_cannot_be_queued_is_not_answered_done(client, alice, events, receiver, monkeypatch):
    """The push's final PUT fails (507: docker reports the push failed) rather than lose the event."""
    push(client, "alice/app", 1)
    _hook(client, receiver)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(events.outbox, "add", disk_full)
    answer = client.put("/v1/repositories/alice/app/images", data="[]", content_type="application/json",
                        headers={**_basic_alice(), "X-Docker-Endpoints": "localhost"})
    assert answer.status_code == 507
    assert "queue the repo_push webhook" in answer.get_json()["error"]


def test_deleting_an_account_tells_the_repo_delete_hooks_of_each_of_its_repositories(client, alice, app, events, receiver):
    """Issue 14's gap: repositories removed with their account are deletes like any other."""
    push(client, "alice/one", 1)
    push(client, "alice/two", 3)
    namespace_hook = _hook(client, receiver, "repo_delete", path="/api/v1/user/notification/")
    repository_hook = _hook(client, receiver, "repo_delete", path="/api/v1/repository/alice/two/notification/")
    deleted = app.test_cli_runner().invoke(args=["users", "delete", "alice", "--repositories", "delete", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert events.outbox.depth() == 3  # queued durably before the command returned
    events.dispatcher.deliver_due()
    received = receiver.wait_for(3)
    heard = sorted((item.json["repository"], item.signed_with(namespace_hook["config"]["secret"])) for item in received)
    assert heard == [("alice/one", True), ("alice/two", False), ("alice/two", True)]
    assert all(item.json["event"] == "repo_delete" and item.json["pushed_by"] is None for item in received)
    assert any(item.signed_with(repository_hook["config"]["secret"]) for item in received)
    assert events.outbox.depth() == 0
    # Delivered, the deleted account's hooks are gone (nothing more reaches them).
    assert events.notifications.get(namespace_hook["uuid"]) is None
    assert events.notifications.get(repository_hook["uuid"]) is None


def test_a_transfer_is_no_delete(client, alice, docker, app, events, receiver):
    assert docker.register("bobby", "secret2").status_code == 201
    push(client, "alice/one", 1)
    _hook(client, receiver, "repo_delete", path="/api/v1/user/notification/")
    moved = app.test_cli_runner().invoke(args=["users", "delete", "alice", "--repositories", "transfer",
                                               "--to", "bobby", "--yes"])
    assert moved.exit_code == 0, moved.output
    assert events.outbox.depth() == 0
    assert events.dispatcher.deliver_due() == 0 and receiver.received == []
