"""A self-hostable Docker Index (API v1): accounts, repositories, tokens, search, built-in registry."""
from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask, Response

from . import (activation, cli, health, logs, openapi, probes, proxies, ratelimit, registry,
               repositories, search, transport, users)
from .backup import backup_command, restore_command
from .config import load_config
from .errors import (InsufficientStorage, StorageUnavailable, error_response,
                     register_error_handlers)
from .names import ValidationError
from .passwords import VerifiedCredentials, hash_password, warm_up
from .probes import API_VERSION
from .secrets import load_or_create_key, stored_fallbacks
from .services import EXTENSION_KEY, Services
from .store import AlreadyExists, CorruptDataFile, StorageFailure, Store
from .tokens import TokenSigner

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the index: settings, data, services, error handling, then the API's blueprints."""
    settings = load_config(config)
    logs.configure(settings)
    app = Flask(__name__, static_folder=None)  # an API: no /static route
    app.config.update(settings)
    app.json.sort_keys = False
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
        config=settings,
        activation=activation.ActivationLinks(secret_key, settings["ACTIVATION_TTL"],
                                              settings["SECRET_KEY_FALLBACKS"]),
    )
    _bootstrap_admin(store, settings)
    ratelimit.init_app(app)
    warm_up(settings["BCRYPT_ROUNDS"])  # so the first unknown user is not slower than the rest

    register_error_handlers(app)
    _register_domain_errors(app)
    app.after_request(_common_headers)
    transport.init_app(app)
    for blueprint in (probes.bp, users.bp, repositories.bp, search.bp, health.bp, activation.bp, openapi.bp):
        app.register_blueprint(blueprint)
    cli.register(app)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
    if not settings["REGISTRY_ENDPOINTS"]:
        registry.install(app)  # built-in registry; otherwise external ones serve the layers
    return app


def _bootstrap_admin(store: Store, settings: Mapping[str, Any]) -> None:
    """Create INDEX_ADMIN_USERNAME as an active admin if it does not exist yet."""
    username, password = settings["ADMIN_USERNAME"], settings["ADMIN_PASSWORD"]
    if not username or store.find_user(username) is not None:
        return
    from . import names
    try:
        names.username(username)
        names.password(password)
    except ValidationError as exc:
        raise ValueError(f"INDEX_ADMIN_USERNAME/INDEX_ADMIN_PASSWORD: {exc}") from None
    try:
        store.create_user(username, hash_password(password, settings["BCRYPT_ROUNDS"]),
                          f"{username}@index.invalid", active=True, admin=True)
        log.info("created admin account %s", username)
    except AlreadyExists:
        pass  # another worker created it first


def _register_domain_errors(app: Flask) -> None:
    @app.errorhandler(ValidationError)
    def _invalid(exc: ValidationError) -> Response:
        return error_response(400, str(exc))

    @app.errorhandler(StorageFailure)
    def _storage(exc: StorageFailure) -> Response:
        log.error("storage failure: %s", exc)
        status = InsufficientStorage.status if exc.no_space else StorageUnavailable.status
        return error_response(status, f"storage unavailable, nothing was changed: {exc}")

    @app.errorhandler(CorruptDataFile)
    def _corrupt(exc: CorruptDataFile) -> Response:
        log.error("%s", exc)
        return error_response(500, "a data file of the index is damaged; the administrator must restore it from a backup")


def _common_headers(response: Response) -> Response:
    # docker-registry sends its API version on every answer; security headers: index.transport.
    response.headers.setdefault("X-Docker-Registry-Version", API_VERSION)
    return response
