"""Behind proxies (ProxyFix, trusted hosts, public host) and the health probes."""
from __future__ import annotations

import shutil
import threading

import pytest

from index import create_app
from index.services import EXTENSION_KEY
from tests.conftest import DockerActions, basic

IMAGES = [{"id": "b" * 64, "Tag": "latest"}]
FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "index.example.com"}


def _push_endpoints(settings, extra_settings, headers=None, base_url="http://127.0.0.1:5000"):
    app = create_app({**settings, **extra_settings})
    client = app.test_client()
    docker = DockerActions(client)
    assert docker.register().status_code == 201
    answer = client.put("/v1/repositories/alice/app/", json=IMAGES, base_url=base_url,
                        headers={**basic("alice", "secret1"), "X-Docker-Token": "true", **(headers or {})})
    assert answer.status_code == 200
    return answer.headers.getlist("X-Docker-Endpoints")


def test_without_proxies_forwarded_headers_are_ignored(settings):
    assert _push_endpoints(settings, {}, FORWARDED) == ["127.0.0.1:5000"]


def test_one_trusted_proxy_sets_scheme_host_and_client(settings, caplog):
    caplog.set_level("INFO", logger="index.requests")
    assert _push_endpoints(settings, {"PROXY_COUNT": 1}, FORWARDED) == ["index.example.com"]
    put_line = [r for r in caplog.records if getattr(r, "http", {}).get("method") == "PUT"][0]
    assert put_line.http["client"] == "203.0.113.7"


def test_only_the_last_n_forwarded_values_are_believed(settings):
    # The client itself wrote "evil.example" before our one proxy appended the real host.
    spoofed = {"X-Forwarded-Host": "evil.example, index.example.com", "X-Forwarded-Proto": "http, https"}
    assert _push_endpoints(settings, {"PROXY_COUNT": 1}, spoofed) == ["index.example.com"]


def test_public_host_wins_over_the_request_host(settings):
    assert _push_endpoints(settings, {"PUBLIC_HOST": "index.lan:443"}) == ["index.lan:443"]


def test_registry_endpoints_win_over_the_public_host(settings):
    assert _push_endpoints(settings, {"PUBLIC_HOST": "index.lan", "REGISTRY_ENDPOINTS": "reg1.lan:5000,reg2.lan"}) \
        == ["reg1.lan:5000", "reg2.lan"]


@pytest.fixture
def guarded(settings):
    return create_app({**settings, "TRUSTED_HOSTS": "index.lan,.example.com"}).test_client()


@pytest.mark.parametrize("host, status", [
    ("index.lan", 200), ("index.lan:5000", 200), ("hub.example.com", 200),
    ("evil.example", 400), ("127.0.0.1:5000", 400),
])
def test_trusted_hosts(guarded, host, status):
    answer = guarded.get("/v1/_ping", headers={"Host": host})
    assert answer.status_code == status
    if status == 400:
        assert "is not served here" in answer.get_json()["error"]


def test_health_probes_answer_any_host(guarded):
    assert guarded.get("/healthz", headers={"Host": "10.0.0.5:5000"}).status_code == 200
    assert guarded.get("/readyz", headers={"Host": "10.0.0.5:5000"}).status_code == 200


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"status": "ready"}
    assert client.get("/readyz", headers={"Authorization": "Basic Og=="}).status_code == 200


def test_not_ready_without_a_usable_data_dir(app, client, settings):
    shutil.rmtree(settings["DATA_DIR"])
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "is not readable and writable" in answer.get_json()["error"]
    assert client.get("/healthz").status_code == 200


def test_not_ready_while_the_store_lock_is_held(app, client, monkeypatch):
    monkeypatch.setattr("index.health.LOCK_PROBE_SECONDS", 0.2)
    users_file = app.extensions[EXTENSION_KEY].store.users_file()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with users_file.locked():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert "lock was not obtained" in answer.get_json()["error"]
    finally:
        release.set()
        holder.join(10)
    assert client.get("/readyz").status_code == 200


def test_activation_links_name_the_public_scheme_and_host(settings, caplog):
    caplog.set_level("INFO", logger="index")
    client = create_app({**settings, "PROXY_COUNT": 1, "REGISTRATION": "confirm",
                         "PUBLIC_HOST": "index.example.com"}).test_client()
    answer = client.post("/v1/users/", json={"username": "alice", "password": "secret1", "email": "a@example.com"},
                         headers={**FORWARDED, "X-Forwarded-Host": "attacker.example", "X-Forwarded-Prefix": "/hub"})
    assert answer.status_code == 201
    # The host is INDEX_PUBLIC_HOST whatever the (even trusted) forwarded host says.
    assert "activation link for alice <a@example.com>: https://index.example.com/hub/account/activate?token=" \
        in caplog.text
    assert "attacker.example" not in caplog.text
