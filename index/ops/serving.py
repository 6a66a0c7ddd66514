"""``python -m index serve`` (what ``make run`` runs): check everything, then hand over to gunicorn.

The app is built once in gunicorn's master before any worker forks (``preload_app``), so a bad
setting, an unusable data dir or a damaged data file stops the start with one line naming it,
instead of a storm of worker boot failures.
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Any, Mapping, NoReturn

import click
from flask import Flask

from .. import mail
from ..config import ConfigError, describe, load_config
from ..logs import JsonFormatter
from ..store import CorruptDataFile, StorageFailure
from .preflight import PreflightError, check_port_free

log = logging.getLogger("index")

# A worker that misses its heartbeat this long is restarted. gthread workers keep beating while
# their threads move big layers, so this only catches a worker that is truly stuck.
WORKER_TIMEOUT_SECONDS = 900
# On SIGTERM, requests in flight (a layer upload, say) get this long to finish.
GRACEFUL_TIMEOUT_SECONDS = 30
KEEPALIVE_SECONDS = 5


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: what a start with a bad setting prints."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def create_app_or_exit(config: Mapping[str, Any] | None = None) -> Flask:
    """create_app, with start-up problems reduced to one clear line."""
    from .. import create_app
    try:
        return create_app(config)
    except ConfigError as exc:
        fail(str(exc))
    except (StorageFailure, CorruptDataFile) as exc:
        fail(str(exc))
    except ValueError as exc:  # bootstrap admin with an invalid name or password, empty key file
        fail(str(exc))


def log_effective_settings(app: Flask) -> None:
    """The one start-up line with every setting (secrets masked): only a serving process logs it."""
    log.info("docker index ready; effective settings: %s",
             json.dumps(describe(app.config), default=str))


def gunicorn_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Gunicorn settings from ours: bind, worker pool, timeouts, TLS; no access log of its own."""
    options: dict[str, Any] = {
        "bind": [f"{_bracketed(settings['HOST'])}:{settings['PORT']}"],
        "workers": settings["WORKERS"],
        "worker_class": "gthread",
        "threads": settings["THREADS"],
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "keepalive": KEEPALIVE_SECONDS,
        "preload_app": True,
        "accesslog": None,  # the app writes one line per request itself (index.logs)
        "errorlog": "-",
        "proc_name": "docker-index",
        # Proxy headers are ProxyFix's job (INDEX_PROXY_COUNT): gunicorn must not trust any itself.
        "forwarded_allow_ips": "",
        "secure_scheme_headers": {},
        # Several instances on one machine (tests, rigs) must not fight over one control socket.
        "control_socket_disable": True,
    }
    if settings["LOG_FORMAT"] == "json":
        options["logger_class"] = _json_gunicorn_logger()
    if settings["TLS_CERT"]:
        options["certfile"] = settings["TLS_CERT"]
        options["keyfile"] = settings["TLS_KEY"]
    return options


def _json_gunicorn_logger() -> type:
    """gunicorn's logger with its own messages (start, workers, signals) as JSON lines too."""
    from gunicorn.glogging import Logger

    class JsonLinesLogger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in self.error_log.handlers:
                handler.setFormatter(JsonFormatter())

    return JsonLinesLogger


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def serve() -> None:
    """Validate the settings, build the app, then run gunicorn until SIGTERM/SIGINT."""
    from gunicorn.app.base import BaseApplication

    try:
        settings = load_config()
        check_port_free(settings["HOST"], settings["PORT"])  # before anything says "ready"
    except (ConfigError, PreflightError) as exc:
        fail(str(exc))
    app = create_app_or_exit()
    log_effective_settings(app)
    mail.log_probe(app.config)  # confirm mode: say now whether activation mail will go out

    class IndexServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings).items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app

    IndexServer().run()


@click.command("serve")
def serve_command() -> None:
    """Serve the index with gunicorn (workers, timeouts and TLS from the INDEX_* settings)."""
    serve()
