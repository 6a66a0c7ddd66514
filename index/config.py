"""Settings: defaults, then ``INDEX_*`` environment variables, then the mapping given to create_app.

This is the only module that reads ``os.environ``. Every value is parsed and checked here, so a
bad setting stops the start with one line that names it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

REGISTRATION_POLICIES = ("open", "closed")


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_endpoints(raw: str) -> list[str]:
    endpoints = [part.strip() for part in raw.split(",") if part.strip()]
    for endpoint in endpoints:
        # The client builds "<scheme>://<endpoint>/v1/" itself (protocol.md 4.2).
        if "://" in endpoint or "/" in endpoint or any(c.isspace() for c in endpoint):
            raise ValueError(f"{endpoint!r} must be a bare host[:port], without scheme or path")
    return endpoints


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"must be a positive whole number, got {raw!r}")
    return value


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"must be 0 or a positive whole number, got {raw!r}")
    return value


def _parse_rounds(raw: str) -> int:
    value = int(raw)
    if not 4 <= value <= 31:
        raise ValueError(f"bcrypt rounds must be between 4 and 31, got {raw!r}")
    return value


def _parse_policy(raw: str) -> str:
    value = raw.strip().lower()
    if value not in REGISTRATION_POLICIES:
        raise ValueError(f"must be one of {', '.join(REGISTRATION_POLICIES)}, got {raw!r}")
    return value


def _parse_str(raw: str) -> str:
    return raw


# name -> (default, parser for strings from the environment)
SETTINGS: dict[str, tuple[Any, Callable[[str], Any]]] = {
    "DATA_DIR": ("data", _parse_str),
    "SECRET_KEY": (None, _parse_str),
    "REGISTRATION": ("open", _parse_policy),
    "ADMIN_USERNAME": (None, _parse_str),
    "ADMIN_PASSWORD": (None, _parse_str),
    # Long enough for a multi-gigabyte push on a slow link: a registry re-checks the same token on
    # every request of the push, so it must outlive the whole push.
    "TOKEN_TTL": (6 * 3600, _parse_positive_int),
    "BCRYPT_ROUNDS": (12, _parse_rounds),
    "REGISTRY_ENDPOINTS": ([], _parse_endpoints),
    # Index API bodies are small JSON documents (image lists); layers go through the registry.
    "MAX_JSON_BYTES": (4 * 1024 * 1024, _parse_positive_int),
    # How long verified Basic credentials are remembered, so a push does not pay bcrypt per request.
    "CREDENTIAL_CACHE_SECONDS": (60, int),
    # Failed Basic logins allowed per client address and per username in any 60 s (0 = no limit).
    # Counted in each worker process: with N workers an attacker gets up to N times as many.
    "LOGIN_FAILURES_PER_MINUTE": (10, _parse_non_negative_int),
    # Refuse credentials (Basic, or a password in a body) that arrive over plain HTTP.
    "REQUIRE_TLS": (False, _parse_bool),
    # ... except from 127.0.0.0/8 and ::1, where nothing crosses a network.
    "TLS_EXEMPT_LOOPBACK": (True, _parse_bool),
}

SECRET_SETTINGS = ("SECRET_KEY", "ADMIN_PASSWORD")


def load_config(overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the effective settings as a plain dict of validated values."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    config: dict[str, Any] = {}
    for name, (default, parse) in SETTINGS.items():
        env_name = f"INDEX_{name}"
        if name in overrides:
            value = overrides.pop(name)
            if isinstance(value, str) and parse is not _parse_str:
                value = _parse_or_fail(name, value, parse)
        elif env_name in environ:
            value = _parse_or_fail(env_name, environ[env_name], parse)
        else:
            value = default
        config[name] = value
    config["DATA_DIR"] = Path(config["DATA_DIR"]).resolve()
    if config["REGISTRATION"] not in REGISTRATION_POLICIES:
        raise ConfigError(f"REGISTRATION: must be one of {', '.join(REGISTRATION_POLICIES)}")
    if bool(config["ADMIN_USERNAME"]) != bool(config["ADMIN_PASSWORD"]):
        raise ConfigError("INDEX_ADMIN_USERNAME and INDEX_ADMIN_PASSWORD must be set together")
    # Anything else given to create_app (TESTING, Flask's own keys) passes through unchanged.
    config.update(overrides)
    return config


def _parse_or_fail(name: str, raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def describe(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings for a log line, with secrets masked."""
    return {name: ("***" if name in SECRET_SETTINGS and config.get(name) else config.get(name))
            for name in SETTINGS}
