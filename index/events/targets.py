"""Webhook target URLs: which are allowed, and one POST to an address checked beforehand.

A host name is resolved once per attempt, every address it resolves to is checked, and the
connection goes to that checked address (TLS still verifies the name): a DNS answer that changes
between the check and the connection cannot smuggle a private address in.
"""
from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 10.0
MAX_URL_CHARS = 2048
MAX_ANSWER_BYTES = 64 * 1024  # of a receiver's answer body, read and dropped


class TargetRefused(ValueError):
    """The URL is malformed or points where deliveries may not go; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query string


def parse_url(url: object) -> Target:
    """Check the shape of a webhook URL: http(s), a host, no credentials, no fragment."""
    if not isinstance(url, str) or not url:
        raise TargetRefused("config.url must be a non-empty string")
    if len(url) > MAX_URL_CHARS or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetRefused(f"config.url must be at most {MAX_URL_CHARS} printable characters without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("config.url must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("config.url must not hold credentials: use the secret's signature instead")
    if parts.fragment:
        raise TargetRefused("config.url must not have a #fragment")
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused("config.url has an invalid port") from None
    host = parts.hostname
    if not host:
        raise TargetRefused("config.url has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local, private, or otherwise not a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_link_local or address.is_private or address.is_multicast
            or address.is_unspecified or address.is_reserved or not address.is_global)


def resolve(target: Target, allow_private: bool) -> str:
    """The address to connect to: the first one the host resolves to, after all were checked."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {target.host}: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"{target.host} resolves to no address")
    if not allow_private:
        for raw in addresses:
            if is_private(ipaddress.ip_address(raw.split("%", 1)[0])):
                raise TargetRefused(
                    f"{target.host} resolves to {raw}, a loopback, link-local or private address; "
                    "set INDEX_WEBHOOK_ALLOW_PRIVATE=true to allow such targets")
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to the checked address; the certificate must still name the URL's host."""

    def __init__(self, target: Target, address: str, timeout: float, context: ssl.SSLContext | None = None) -> None:
        self._tls = context or ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _abort(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the HTTP status, None when no answer came
    duration: float     # seconds
    error: str | None   # why it failed, None when delivered

    @property
    def delivered(self) -> bool:
        return self.error is None


def post(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool,
         timeout: float = TIMEOUT_SECONDS, tls_context: ssl.SSLContext | None = None) -> Outcome:
    """One POST; a 2xx answer is a delivery. Redirects are not followed (a 3xx is a failure)."""
    started = time.monotonic()
    status = None
    try:
        target = parse_url(url)
        address = resolve(target, allow_private)
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = _PinnedHTTPS(target, address, timeout, tls_context)  # system CAs by default
        else:
            connection = _PinnedHTTP(target, address, timeout)
        # The socket timeout bounds each read; this bounds the whole attempt, so a receiver that
        # trickles its answer a byte at a time cannot hold the delivery thread.
        deadline = threading.Timer(timeout, _abort, args=(connection,))
        deadline.daemon = True
        deadline.start()
        try:
            connection.request("POST", target.path, body=body,
                               headers={**headers, "Content-Type": "application/json",
                                        "User-Agent": "docker-index-webhooks"})
            answer = connection.getresponse()
            status = answer.status
            answer.read(MAX_ANSWER_BYTES)
        finally:
            deadline.cancel()
            connection.close()
    except TargetRefused as exc:
        return Outcome(None, time.monotonic() - started, str(exc))
    except (OSError, http.client.HTTPException) as exc:
        duration = time.monotonic() - started
        if duration >= timeout:
            return Outcome(status, duration, f"no complete answer within {timeout:g} s")
        if status is None:
            return Outcome(None, duration, f"{type(exc).__name__}: {exc}")
    duration = time.monotonic() - started
    if status is not None and 200 <= status < 300:
        return Outcome(status, duration, None)
    return Outcome(status, duration, f"answered HTTP {status}")
