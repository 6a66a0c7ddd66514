"""Settings: defaults, then ``INDEX_*`` environment variables, then the mapping given to create_app.

This is the only module that reads ``os.environ``. Every value is parsed and checked here, so a
bad setting stops the start with one line that names it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ops.preflight import PreflightError, check_tls_pair

REGISTRATION_POLICIES = ("open", "confirm", "approval", "closed")
LOG_FORMATS = ("plain", "json")
SMTP_SECURITY_MODES = ("starttls", "ssl", "none")
VISIBILITIES = ("private", "public")


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
        # The client builds "<scheme>://<endpoint>/v1/" itself (docs/protocol.md 4.2).
        if "://" in endpoint or "/" in endpoint or any(c.isspace() for c in endpoint):
            raise ValueError(f"{endpoint!r} must be a bare host[:port], without scheme or path")
    return endpoints


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"must be a positive whole number, got {raw!r}")
    return value


def _parse_header_timeout(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 60:
        raise ValueError(f"must be between 1 and 60 seconds, got {raw!r}")
    return value


def _parse_rounds(raw: str) -> int:
    value = int(raw)
    if not 4 <= value <= 31:
        raise ValueError(f"bcrypt rounds must be between 4 and 31, got {raw!r}")
    return value


def _parse_str(raw: str) -> str:
    return raw


def _parse_port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"must be a port number (1-65535), got {raw!r}") from None
    if not 1 <= value <= 65535:
        raise ValueError(f"must be a port number (1-65535), got {raw!r}")
    return value


def _parse_count(raw: str) -> int:
    """A whole number >= 0 (0 switches the feature off)."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"must not be negative, got {raw!r}")
    return value


def _parse_public_host(raw: str) -> str | None:
    hosts = _parse_endpoints(raw)
    if len(hosts) > 1:
        raise ValueError(f"must be one host[:port], got {raw!r}")
    return hosts[0] if hosts else None


def _parse_hosts(raw: str) -> list[str]:
    """Host names for the Host-header check; ``.example.com`` also allows its subdomains."""
    hosts = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for host in hosts:
        if "://" in host or "/" in host or any(c.isspace() for c in host):
            raise ValueError(f"{host!r} must be a bare host name, without scheme or path")
    return hosts


def _parse_keys(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value
    return parse


def _parse_bind_host(raw: str) -> str:
    value = raw.strip()
    if not value or "/" in value or any(c.isspace() for c in value):
        raise ValueError(f"must be an address to listen on, like 127.0.0.1 or 0.0.0.0, got {raw!r}")
    return value


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "some/path/" (always ending in "/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def parse_location(raw: str) -> S3Location | None:
    """``s3://bucket[/prefix]`` -> S3Location; empty -> None (layers in the data dir)."""
    value = raw.strip()
    if not value:
        return None
    if not value.startswith("s3://"):
        raise ValueError(f"must be s3://bucket[/prefix] (or empty for the data dir), got {raw!r}")
    bucket, _, prefix = value[len("s3://"):].partition("/")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"the prefix {prefix!r} has an empty, '.' or '..' segment")
    return S3Location(bucket, prefix + "/" if prefix else "")


# name -> (default, parser for strings from the environment)
SETTINGS: dict[str, tuple[Any, Callable[[str], Any]]] = {
    "DATA_DIR": ("data", _parse_str),
    "SECRET_KEY": (None, _parse_str),
    "REGISTRATION": ("open", _choice(*REGISTRATION_POLICIES)),
    "ADMIN_USERNAME": (None, _parse_str),
    "ADMIN_PASSWORD": (None, _parse_str),
    # Long enough for a multi-gigabyte push on a slow link: a registry re-checks the same token on
    # every request of the push, so it must outlive the whole push.
    "TOKEN_TTL": (6 * 3600, _parse_positive_int),
    "BCRYPT_ROUNDS": (12, _parse_rounds),
    "REGISTRY_ENDPOINTS": ([], _parse_endpoints),
    # Where the built-in registry keeps layer bytes: empty = the data dir, s3://bucket[/prefix] =
    # S3-compatible object storage (endpoint and credentials the way boto3 finds them: AWS_*).
    "LAYER_STORAGE": (None, parse_location),
    "S3_PATH_STYLE": (False, _parse_bool),       # http://host/bucket/key instead of bucket.host
    "S3_REDIRECT": (False, _parse_bool),         # layer GETs answer 302 to a presigned S3 URL
    "S3_REDIRECT_SECONDS": (300, _parse_positive_int),  # how long such a URL stays valid
    # Index API bodies are small JSON documents (image lists); layers go through the registry.
    "MAX_JSON_BYTES": (4 * 1024 * 1024, _parse_positive_int),
    # How long verified Basic credentials are remembered, so a push does not pay bcrypt per request.
    "CREDENTIAL_CACHE_SECONDS": (60, _parse_count),
    # Serving (python -m index serve / make run).
    "HOST": ("127.0.0.1", _parse_bind_host),
    "PORT": (5000, _parse_port),
    "WORKERS": (2, _parse_positive_int),
    "THREADS": (4, _parse_positive_int),
    # Slow clients: a request's headers must be complete within this many seconds (at most 60),
    # and its body must keep arriving (see MIN_BODY_RATE) or the connection is closed.
    "HEADER_TIMEOUT": (20, _parse_header_timeout),
    # Bytes per second a request body must average, after its first HEADER_TIMEOUT seconds.
    "MIN_BODY_RATE": (500, _parse_positive_int),
    "TLS_CERT": (None, _parse_str),
    "TLS_KEY": (None, _parse_str),
    # Behind a reverse proxy: how many proxies' X-Forwarded-* headers to believe (0 = none).
    "PROXY_COUNT": (0, _parse_count),
    "TRUSTED_HOSTS": ([], _parse_hosts),
    "PUBLIC_HOST": (None, _parse_public_host),
    # Accounts: activation links and the mail that carries them.
    "SECRET_KEY_FALLBACKS": ([], _parse_keys),
    "ACTIVATION_TTL": (3 * 24 * 3600, _parse_positive_int),
    "SMTP_HOST": (None, _parse_str),
    "SMTP_PORT": (None, _parse_port),
    "SMTP_SECURITY": ("starttls", _choice(*SMTP_SECURITY_MODES)),
    "SMTP_USERNAME": (None, _parse_str),
    "SMTP_PASSWORD": (None, _parse_str),
    "SMTP_FROM": ("docker-index@localhost", _parse_str),
    "LOG_FORMAT": ("plain", _choice(*LOG_FORMATS)),
    # Failed Basic logins allowed per client address and per username in any 60 s (0 = no limit).
    # Counted in each worker process: with N workers an attacker gets up to N times as many.
    "LOGIN_FAILURES_PER_MINUTE": (10, _parse_count),
    # Accounts registered per client address in any hour (0 = no limit); per worker as above.
    "REGISTRATIONS_PER_HOUR": (20, _parse_count),
    # E-mail addresses one account may hold (PUT /v1/users/<name>/ adds one each time).
    "MAX_EMAILS_PER_ACCOUNT": (10, _parse_positive_int),
    # What one account can make the built-in registry hold (0 = no limit; see README Security).
    "IMAGE_JSON_MAX_BYTES": (256 * 1024, _parse_count),
    "IMAGE_PENDING_SECONDS": (24 * 3600, _parse_positive_int),
    "LAYER_MAX_BYTES": (20 * 1024 ** 3, _parse_count),
    "LAYER_MAX_INFLATED_BYTES": (64 * 1024 ** 3, _parse_count),
    "LAYER_MAX_RATIO": (200, _parse_count),
    "LAYER_MAX_ENTRIES": (250_000, _parse_count),
    "NAMESPACE_QUOTA_BYTES": (0, _parse_count),
    # Refuse credentials (Basic, or a password in a body) that arrive over plain HTTP.
    "REQUIRE_TLS": (False, _parse_bool),
    # ... except from 127.0.0.0/8 and ::1, where nothing crosses a network.
    "TLS_EXEMPT_LOOPBACK": (True, _parse_bool),
    # Web interface: a browser session ends after this many seconds without a request.
    "WEB_SESSION_IDLE_SECONDS": (8 * 3600, _parse_positive_int),
    # Pull/push counts are batched per worker and saved at most this often (see index.activity).
    "ACTIVITY_FLUSH_SECONDS": (10, _parse_positive_int),
    # Webhooks (index.events): deliveries to loopback, link-local and private addresses are refused
    # unless this is true, so a public index cannot be made to reach into its own network.
    "WEBHOOK_ALLOW_PRIVATE": (False, _parse_bool),
    # A failed delivery is retried after this many seconds, doubling up to the maximum, and given
    # up once the event is older than WEBHOOK_GIVE_UP_SECONDS.
    "WEBHOOK_RETRY_SECONDS": (10, _parse_positive_int),
    "WEBHOOK_RETRY_MAX_SECONDS": (3600, _parse_positive_int),
    "WEBHOOK_GIVE_UP_SECONDS": (24 * 3600, _parse_positive_int),
    # The audit trail (<data dir>/audit/audit.jsonl) starts a new file past this size; this many
    # older files are kept.
    "AUDIT_MAX_BYTES": (10 * 1024 * 1024, _parse_positive_int),
    "AUDIT_KEEP_FILES": (5, _parse_count),
    # GET /metrics answers loopback clients, and others that send this as a bearer token.
    "METRICS_TOKEN": (None, _parse_str),
    # Access control (index.permissions): what a new repository is, and whether reading public
    # repositories needs an account.
    "DEFAULT_VISIBILITY": ("private", _choice(*VISIBILITIES)),
    "ANONYMOUS_PULL": (True, _parse_bool),
}

SECRET_SETTINGS = ("SECRET_KEY", "ADMIN_PASSWORD", "SECRET_KEY_FALLBACKS", "SMTP_PASSWORD", "METRICS_TOKEN")
_DEFAULT_SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# HMAC keys shorter than this are guessable offline from one signed token.
MIN_SECRET_KEY_BYTES = 32


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
            if name == "SECRET_KEY":
                _check_secret_key(value)
        else:
            value = default
        config[name] = value
    config["DATA_DIR"] = Path(config["DATA_DIR"]).resolve()
    if config["REGISTRATION"] not in REGISTRATION_POLICIES:
        raise ConfigError(f"INDEX_REGISTRATION: must be one of {', '.join(REGISTRATION_POLICIES)}, "
                          f"got {config['REGISTRATION']!r}")
    if bool(config["ADMIN_USERNAME"]) != bool(config["ADMIN_PASSWORD"]):
        raise ConfigError("INDEX_ADMIN_USERNAME and INDEX_ADMIN_PASSWORD must be set together")
    if bool(config["SMTP_USERNAME"]) != bool(config["SMTP_PASSWORD"]):
        raise ConfigError("INDEX_SMTP_USERNAME and INDEX_SMTP_PASSWORD must be set together")
    if config["REGISTRATION"] == "confirm" and not config["PUBLIC_HOST"]:
        # Activation links must never be built from a Host header an attacker chose.
        raise ConfigError("INDEX_REGISTRATION=confirm needs INDEX_PUBLIC_HOST (the host[:port] that "
                          "activation links name)")
    if config["SMTP_PORT"] is None:
        config["SMTP_PORT"] = _DEFAULT_SMTP_PORTS[config["SMTP_SECURITY"]]
    _check_tls(config)
    _check_data_dir(config["DATA_DIR"])
    # Anything else given to create_app (TESTING, Flask's own keys) passes through unchanged.
    config.update(overrides)
    return config


def configured_data_dir(overrides: Mapping[str, Any] | None = None,
                        environ: Mapping[str, str] | None = None) -> Path:
    """The data dir the settings name, without creating it (the admin commands check it first)."""
    environ = os.environ if environ is None else environ
    if overrides and overrides.get("DATA_DIR") is not None:
        return Path(overrides["DATA_DIR"]).resolve()
    return Path(environ.get("INDEX_DATA_DIR", SETTINGS["DATA_DIR"][0])).resolve()


def _check_secret_key(key: str) -> None:
    """An operator's key (INDEX_SECRET_KEY) must be long enough to resist guessing."""
    if len(key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(f"INDEX_SECRET_KEY: must be at least {MIN_SECRET_KEY_BYTES} bytes, got "
                          f"{len(key.encode())} (make one with: python3 -c 'import secrets; "
                          f"print(secrets.token_urlsafe(48))'), or unset it to have one generated")


def _parse_or_fail(name: str, raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("invalid literal for int()"):
            # Parsers that call int() directly: say it in words a person can act on.
            message = f"must be a whole number, got {raw!r}"
        raise ConfigError(f"{name}: {message}") from None


def _check_tls(config: Mapping[str, Any]) -> None:
    """Both files or neither; both readable, and the key must belong to the certificate."""
    cert, key = config["TLS_CERT"], config["TLS_KEY"]
    if not cert and not key:
        return
    if not cert or not key:
        raise ConfigError("INDEX_TLS_CERT and INDEX_TLS_KEY must be set together")
    try:
        check_tls_pair(cert, key)
    except PreflightError as exc:
        raise ConfigError(str(exc)) from None


def _check_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"INDEX_DATA_DIR: cannot create {path}: {exc.strerror}") from None
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"INDEX_DATA_DIR: {path} is not readable and writable by this user")


def describe(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings for a log line, with secrets masked and paths as strings."""
    described: dict[str, Any] = {}
    for name in SETTINGS:
        value = config.get(name)
        if name in SECRET_SETTINGS and value:
            value = "***"
        elif isinstance(value, Path):
            value = str(value)
        described[name] = value
    return described

