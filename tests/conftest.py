"""Fixtures: an app on a temporary data dir, its test client, and a client that speaks docker."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from index import create_app
from index.services import EXTENSION_KEY

# The embedding fixture (index_server), registered the way another project's root conftest would.
# The real S3 server (Swift) fixtures, for the tests that run against both layer stores.
pytest_plugins = ["index.testing", "tests.s3.fixtures"]

ADMIN = ("admin", "adminpass")


def _share_url_builders() -> None:
    """Compile each route's URL builder once per test process, not once per app.

    Nine tenths of ``create_app`` (about 70 ms, and most tests make a fresh app) is werkzeug
    generating and compiling two builder functions for each of ~120 routes. The generated code
    depends only on the rule as parsed (its trace), its defaults and whether unknown arguments are
    appended, and the function takes the rule as its first argument, so apps can share it. Tests
    only: the server builds its app once per worker. Without that private method (another
    werkzeug), nothing is shared and the tests are merely slower.
    """
    from werkzeug.routing.rules import Rule

    original = getattr(Rule, "_compile_builder", None)
    if original is None:
        return
    compiled: dict[tuple[Any, ...], Any] = {}

    def shared(self: Rule, append_unknown: bool = True) -> Any:
        key = (self.rule, tuple(self._trace), repr(sorted((self.defaults or {}).items())),
               append_unknown, self.host, self.subdomain, self.merge_slashes,
               tuple(sorted((name, type(converter).__qualname__,
                             repr({k: v for k, v in vars(converter).items() if k != "map"}))
                            for name, converter in self._converters.items())))
        if key not in compiled:
            compiled[key] = original(self, append_unknown)
        return compiled[key]

    Rule._compile_builder = shared  # type: ignore[method-assign]


_share_url_builders()


def basic(username: str, password: str) -> dict[str, str]:
    raw = f"{username}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def image_id(n: int) -> str:
    """A valid, distinct 64-hex image id."""
    return f"{n:064x}"


@pytest.fixture(scope="session", autouse=True)
def _no_index_environment():
    """Tests see only the settings they pass: an INDEX_* variable of the developer's shell
    (say INDEX_REGISTRY_ENDPOINTS) must not change what the tests expect."""
    import os
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("INDEX_")]:
            patch.delenv(name)
        yield


@pytest.fixture
def settings(tmp_path) -> dict[str, Any]:
    # The protocol tests describe public repositories (INDEX_DEFAULT_VISIBILITY=public, the model
    # before access control); tests/access/ covers the private default.
    return {"TESTING": True, "DATA_DIR": tmp_path / "data", "SECRET_KEY": "test-secret",
            "BCRYPT_ROUNDS": 4, "ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1],
            "DEFAULT_VISIBILITY": "public"}


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return app.extensions[EXTENSION_KEY].store


class DockerActions:
    """The requests the docker 1.x client makes, one method per step (docs/protocol.md 4-8)."""

    def __init__(self, client) -> None:
        self.client = client

    def register(self, username: str = "alice", password: str = "secret1",
                 email: str | None = None):
        # docker sends exactly these keys in this order, compact (docs/protocol.md 6).
        body = json.dumps({"username": username, "password": password, "auth": "",
                           "email": email if email is not None else f"{username}@example.com"},
                          separators=(",", ":"))
        return self.client.post("/v1/users/", data=body,
                                content_type="application/json; charset=utf-8")

    def login(self, username: str = "alice", password: str = "secret1"):
        return self.client.get("/v1/users/", headers=basic(username, password))

    def put_repository(self, remote: str, images: list[dict], auth=("alice", "secret1")):
        headers = {**basic(*auth), "X-Docker-Token": "true"}
        return self.client.put(f"/v1/repositories/{remote}/", data=json.dumps(images),
                               headers=headers, content_type="application/json")

    def put_images(self, remote: str, images: list[dict] | None = None, auth=("alice", "secret1"),
                   endpoint: str = "http://localhost/v1/"):
        headers = {**basic(*auth), "X-Docker-Token": "true", "X-Docker-Endpoints": endpoint}
        return self.client.put(f"/v1/repositories/{remote}/images", data=json.dumps(images or []),
                               headers=headers, content_type="application/json")

    def get_images(self, remote: str, auth: tuple[str, str] | None = None):
        headers = {"X-Docker-Token": "true"}
        if auth:
            headers.update(basic(*auth))
        return self.client.get(f"/v1/repositories/{remote}/images", headers=headers)

    def validate(self, remote: str, token: str):
        """What a registry does to check a token (docs/protocol.md 9)."""
        return self.client.get(f"/v1/repositories/{remote}/images",
                               headers={"Authorization": f"Token {token}"})


@pytest.fixture
def docker(client) -> DockerActions:
    return DockerActions(client)


@pytest.fixture
def alice(docker) -> DockerActions:
    assert docker.register("alice", "secret1").status_code == 201
    return docker


# Fixtures that start processes (a served index, gunicorn, the Swift server behind the S3 tests):
# every test using one, directly or through another fixture, is a live test.
LIVE_FIXTURES = {"server", "live_server", "swift_s3"}


def pytest_addoption(parser) -> None:
    parser.addoption("--first-case-only", action="store_true",
                     help="run a parametrized test with its first case only (make test-fast; "
                          "make test runs every case)")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if LIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)
    if config.getoption("--first-case-only"):
        # Most of a case's cost is the fresh app it gets; the long tables of bad inputs are what
        # make the in-process tests slow, and their first case already runs the code path.
        seen: set[str] = set()
        kept, dropped = [], []
        for item in items:
            function = item.nodeid.partition("[")[0]
            (dropped if function in seen else kept).append(item)
            seen.add(function)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept


def pytest_terminal_summary(terminalreporter) -> None:
    """Say at the very end which real-component tests could not run here (tests/system.py)."""
    from tests.system import SKIP_PREFIX
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if SKIP_PREFIX in reason:
            reason = reason[reason.index(SKIP_PREFIX):]
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.write_line("")
        terminalreporter.write_line("NOT RUN HERE (real components missing; CI installs and runs them):", red=True)
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"  {count} test(s) skipped: {reason}", red=True)


def disk_state(root) -> dict[str, bytes]:
    """Every data file under ``root`` with its bytes, to show a refused write changed nothing.

    Lock files are left out: the lock code creates them on first use and they hold no data. So is the
    audit trail: it records refusals (failed logins, refused tokens) by design.
    """
    from pathlib import Path
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(Path(root).rglob("*")) if path.is_file() and not path.name.endswith(".lock")
            and path.relative_to(root).parts[0] != "audit"}


def json_post(client, url: str, value: Any, headers: dict[str, str] | None = None, method: str = "post"):
    """Send ``value`` as compact JSON with docker's login Content-Type."""
    return getattr(client, method)(url, data=json.dumps(value), headers=headers or {},
                                   content_type="application/json; charset=utf-8")
