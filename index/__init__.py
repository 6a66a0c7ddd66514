"""A self-hostable Docker Index (API v1): accounts, repositories, tokens, search, built-in registry."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response

from . import (
    activation,
    api,
    events,
    health,
    logs,
    openapi,
    probes,
    proxies,
    registry,
    repositories,
    search,
    transport,
    users,
    web,
)
from .accounts import create_account
from .activity import Activity
from .app_class import IndexApp
from .config import load_config
from .errors import register_error_handlers
from .names import ValidationError
from .ops import commands
from .passwords import VerifiedCredentials, warm_up
from .probes import API_VERSION
from .ratelimit import LoginThrottle, RegistrationThrottle
from .search_index import SNAPSHOT_NAME, SearchIndex
from .secrets import load_or_create_key, stored_fallbacks
from .services import EXTENSION_KEY, Services
from .store import AlreadyExists, Store, StoreError
from .tokens import ActivationLinks, TokenSigner

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the index: settings, data, services, error handling, then the API's blueprints."""
    settings = load_config(config)
    logs.configure(settings)
    app = IndexApp(__name__, static_folder=None)  # an API: no /static route
    # "ns//images" is not "ns/images": an empty path segment is a 404, never merged and redirected.
    app.url_map.merge_slashes = False
    app.config.update(settings)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's setting
    logs.install(app)
    proxies.install(app, settings)

    store = Store(settings["DATA_DIR"])
    store.open()
    secret_key = settings["SECRET_KEY"] or load_or_create_key(settings["DATA_DIR"])
    if not settings["SECRET_KEY"]:  # keys retired by `docker-index rotate-key` still verify
        settings["SECRET_KEY_FALLBACKS"] = [*settings["SECRET_KEY_FALLBACKS"],
                                            *stored_fallbacks(settings["DATA_DIR"])]
        app.config["SECRET_KEY_FALLBACKS"] = settings["SECRET_KEY_FALLBACKS"]
    app.extensions[EXTENSION_KEY] = Services(
        store=store,
        signer=TokenSigner(secret_key, settings["TOKEN_TTL"], settings["SECRET_KEY_FALLBACKS"]),
        credentials=VerifiedCredentials(secret_key.encode(), settings["CREDENTIAL_CACHE_SECONDS"]),
        activation=ActivationLinks(secret_key, settings["ACTIVATION_TTL"], settings["SECRET_KEY_FALLBACKS"]),
        login_throttle=LoginThrottle(settings["LOGIN_FAILURES_PER_MINUTE"]),
        registration_throttle=RegistrationThrottle(settings["REGISTRATIONS_PER_HOUR"]),
        search=SearchIndex(store, snapshot=store.db_dir / SNAPSHOT_NAME),
        activity=Activity(store, settings["ACTIVITY_FLUSH_SECONDS"]),
    )
    _bootstrap_admin(store, settings)
    _split_activity(app.extensions[EXTENSION_KEY].activity)
    warm_up(settings["BCRYPT_ROUNDS"])  # so the first unknown user is not slower than the rest

    register_error_handlers(app)
    app.after_request(_common_headers)
    transport.init_app(app)
    for blueprint in (probes.bp, users.bp, repositories.bp, search.bp, health.bp, activation.bp, openapi.bp):
        app.register_blueprint(blueprint)
    api.install(app, secret_key, settings["SECRET_KEY_FALLBACKS"])  # /api/v1 (access control)
    web.install(app, secret_key)
    commands.register(app)
    events.install(app)  # audit trail, webhooks, /metrics and their /api/v1 routes
    if not settings["REGISTRY_ENDPOINTS"]:
        registry.install(app)  # built-in registry; otherwise external ones serve the layers
    return app


def _split_activity(activity: Activity) -> None:
    """Pull/push counts saved by an earlier version (one file) go into their shards."""
    try:
        activity.split_legacy_file()
    except StoreError as exc:  # a read-only data dir is still served; its old counts are not shown
        log.warning("could not move the pull/push counts into shards: %s", exc)


def _bootstrap_admin(store: Store, settings: Mapping[str, Any]) -> None:
    """Create INDEX_ADMIN_USERNAME as an active admin if it does not exist yet."""
    username, password = settings["ADMIN_USERNAME"], settings["ADMIN_PASSWORD"]
    if not username or store.find_user(username) is not None:
        return
    try:
        create_account(store, username, password, f"{username}@index.invalid", active=True, admin=True,
                       bcrypt_rounds=settings["BCRYPT_ROUNDS"])
        log.info("created admin account %s", username)
    except ValidationError as exc:
        raise ValueError(f"INDEX_ADMIN_USERNAME/INDEX_ADMIN_PASSWORD: {exc}") from None
    except AlreadyExists:
        pass  # another worker created it first


def _common_headers(response: Response) -> Response:
    # docker-registry sends its API version on every answer; security headers: index.transport.
    response.headers.setdefault("X-Docker-Registry-Version", API_VERSION)
    return response
