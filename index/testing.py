"""A real index inside another project's tests.

    from index.testing import running_index

    with running_index() as index:
        requests.get(f"{index.url}/v1/_ping")
        # docker login/push/pull against index.host with index.admin_username/admin_password

Or as a pytest plugin: put ``pytest_plugins = ["index.testing"]`` in your ``conftest.py`` and ask
for the ``index_server`` fixture (a fresh index per test).

The index listens on a free port of 127.0.0.1, keeps its data in a temporary directory, has an
active admin account, and is stopped and removed on exit.
"""
from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["IndexServer", "running_index", "index_server"]

STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class IndexServer:
    """Where the running index is and how to log in to it."""

    url: str             # http://127.0.0.1:<port>
    host: str            # 127.0.0.1:<port> (the prefix of repository names: <host>/alice/app)
    admin_username: str
    admin_password: str
    data_dir: Path
    app: Flask           # for direct access, e.g. app.test_client() or the admin CLI's runner


class _QuietHandler(WSGIRequestHandler):
    # The app logs each request itself; Werkzeug's extra line (with query strings) is not wanted.
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


@contextlib.contextmanager
def running_index(settings: dict[str, Any] | None = None, *,
                  admin_username: str = "admin") -> Iterator[IndexServer]:
    """Start an index on a free loopback port in a temporary data dir; stop and remove it on exit.

    ``settings`` (keys without the ``INDEX_`` prefix, e.g. ``{"REGISTRATION": "closed"}``) are
    applied on top of test-friendly defaults: fast bcrypt, a random secret key and admin password.
    """
    from . import create_app

    with tempfile.TemporaryDirectory(prefix="docker-index-") as temp:
        data_dir = Path(temp) / "data"
        admin_password = secrets.token_urlsafe(12)
        config: dict[str, Any] = {
            "DATA_DIR": data_dir,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "BCRYPT_ROUNDS": 4,
            # A test rig registers many accounts from 127.0.0.1: no per-address registration limit.
            "REGISTRATIONS_PER_HOUR": 0,
            "ADMIN_USERNAME": admin_username,
            "ADMIN_PASSWORD": admin_password,
        }
        config.update(settings or {})
        app = create_app(config)
        server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True,
                                             request_handler=_QuietHandler)
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name=f"docker-index-{port}", daemon=True)
        thread.start()
        try:
            yield IndexServer(url=f"http://127.0.0.1:{port}", host=f"127.0.0.1:{port}",
                              admin_username=config["ADMIN_USERNAME"],
                              admin_password=config["ADMIN_PASSWORD"],
                              data_dir=data_dir, app=app)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(STOP_TIMEOUT_SECONDS)


try:
    import pytest
except ImportError:  # pytest is only needed for the fixture
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture
    def index_server() -> Iterator[IndexServer]:
        """A running index for one test (see :func:`running_index`)."""
        with running_index() as server:
            yield server
