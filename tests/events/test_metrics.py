"""GET /metrics: parsed with prometheus_client's own parser after known traffic; who may read it;
several worker processes add up (multi-process mode)."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from index import create_app
from index.events import EXTENSION_KEY
from index.events.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from tests.conftest import basic
from tests.processes import ROOT, clean_env, free_port, http_call, stop, wait_for_http

from .conftest import push


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    answer = client.get("/metrics", **kwargs)
    assert answer.status_code == 200, answer.data
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(answer.get_data(as_text=True))


def value(found, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_known_traffic_shows_in_the_metrics(app, client, docker, events):
    before = scrape(client)
    for _ in range(3):
        assert client.get("/v1/_ping").status_code == 200
    assert docker.register("alice", "secret1").status_code == 201
    assert docker.login("alice", "wrong-pass").status_code == 401
    ids = push(client, "alice/app", 1)
    listed = client.get("/v1/repositories/alice/app/images", headers={"X-Docker-Token": "true"})
    assert listed.status_code == 200
    token = {"Authorization": "Token " + listed.headers["X-Docker-Token"]}
    layer = client.get(f"/v1/images/{ids[0]}/layer", headers=token)
    assert layer.status_code == 200
    assert client.get("/v1/repositories/alice/app/images", headers=token).status_code == 200  # a registry check: no pull
    events.state.forget()
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("index_http_requests_total", route="/v1/_ping", method="GET", status="200") == 3
    assert delta("index_http_requests_total", route="/v1/users/", method="GET", status="401") == 1
    assert delta("index_http_request_duration_seconds_count", route="/v1/_ping", method="GET") == 3
    assert delta("index_http_request_duration_seconds_bucket", route="/v1/_ping", method="GET", le="+Inf") == 3
    assert delta("index_pushes_total") == 1
    assert delta("index_pulls_total") == 1
    assert delta("index_failed_logins_total") == 1
    stored = sum(path.stat().st_size for path in (app.config["DATA_DIR"] / "blobs").rglob("*") if path.is_file())
    assert delta("index_layer_bytes_received_total") == stored > 0
    assert delta("index_layer_bytes_sent_total") == len(layer.data) > 0
    assert value(after, "index_repositories") == 1
    assert value(after, "index_stored_bytes") >= stored
    assert value(after, "index_webhook_outbox_depth") == 0


def test_lockouts_and_webhook_outcomes_are_counted(tmp_path, settings):
    app = create_app({**settings, "LOGIN_FAILURES_PER_MINUTE": 1})
    client = app.test_client()
    before = scrape(client)
    elsewhere = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}}  # the admin's own address stays unlocked
    client.get("/v1/users/", headers=basic("mallory", "guess-one"), **elsewhere)
    assert client.get("/v1/users/", headers=basic("mallory", "guess-two"), **elsewhere).status_code == 429
    assert value(scrape(client), "index_login_lockouts_total") - value(before, "index_login_lockouts_total") == 1
    hook = client.post("/api/v1/user/notification/", headers=basic("admin", "adminpass"),
                       json={"event": "repo_push", "config": {"url": f"http://127.0.0.1:{free_port()}/"}})
    assert hook.status_code == 201
    assert client.post(f"/api/v1/user/notification/{hook.get_json()['uuid']}/test",
                       headers=basic("admin", "adminpass")).status_code == 200
    found = app.extensions[EXTENSION_KEY]
    found.state.forget()
    assert value(scrape(client), "index_webhook_outbox_depth") == 1
    found.dispatcher.deliver_due()  # nobody listens on that port
    after = scrape(client)
    assert value(after, "index_webhook_deliveries_total", event="repo_push", outcome="failed") - \
        value(before, "index_webhook_deliveries_total", event="repo_push", outcome="failed") == 1


def test_only_loopback_or_the_bearer_token_may_read(tmp_path, settings):
    open_app = create_app(settings).test_client()
    remote = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    refused = open_app.get("/metrics", **remote)
    assert refused.status_code == 403 and "INDEX_METRICS_TOKEN" in refused.get_json()["error"]
    assert open_app.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    guarded = create_app({**settings, "DATA_DIR": tmp_path / "other", "METRICS_TOKEN": "scrape-me"}).test_client()
    assert guarded.get("/metrics", **remote).status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer wrong"}, **remote).status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer scrape-me"}, **remote).status_code == 200


def test_serve_prepares_a_fresh_folder_unless_one_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv(MULTIPROC_ENV, "recorded")  # so that the undo removes what prepare sets
    monkeypatch.delenv(MULTIPROC_ENV)
    folder = prepare_multiprocess_dir()
    try:
        assert os.environ[MULTIPROC_ENV] == str(folder) and list(folder.iterdir()) == []
    finally:
        os.rmdir(folder)
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / "given"))
    assert prepare_multiprocess_dir() == tmp_path / "given" and (tmp_path / "given").is_dir()


@pytest.mark.live
def test_two_worker_processes_add_up(tmp_path):
    """Requests answered by either worker all count, whichever worker answers the scrape."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    env = clean_env({"INDEX_DATA_DIR": str(tmp_path / "data"), "INDEX_PORT": str(port), "INDEX_WORKERS": "2",
                     "INDEX_THREADS": "2", "INDEX_BCRYPT_ROUNDS": "4", "INDEX_SECRET_KEY": "metrics-test-key-0123456789abcdefghijk",
                     MULTIPROC_ENV: str(metrics_dir)})
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "index", "serve"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/v1/_ping", process, log_path, timeout=30)
        pings = 60
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: http_call(base, "GET", "/v1/_ping")[0], range(pings)))
        assert statuses == [200] * pings
        pids = {name.rsplit("_", 1)[1].split(".")[0] for name in os.listdir(metrics_dir)}
        assert len(pids) >= 2, os.listdir(metrics_dir)  # both workers answered some
        auth = {"Authorization": "Basic " + base64.b64encode(b"nobody:wrong-pass").decode()}
        assert http_call(base, "GET", "/v1/users/", headers=auth)[0] == 401
        for _ in range(4):  # several scrapes: whichever worker answers adds up the same
            status, _, body = http_call(base, "GET", "/metrics")
            assert status == 200
            found = samples(body.decode())
            # The wait_for_http probe was one more ping.
            assert value(found, "index_http_requests_total", route="/v1/_ping", method="GET", status="200") == pings + 1
            assert value(found, "index_failed_logins_total") == 1
    finally:
        stop(process)


def test_a_metric_that_cannot_be_written_never_fails_the_request(client, monkeypatch):
    from index.events.metrics import metrics

    def broken(*labels):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics().requests, "labels", broken)
    monkeypatch.setattr(metrics().pushes, "inc", broken)
    assert client.get("/v1/_ping").status_code == 200
