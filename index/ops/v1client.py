"""One client of the docker v1 protocol, for ``self-check``, the tests and the benchmarks.

:class:`V1Client` sends one request at a time over plain ``http.client``: every header, a chunked
body and the status stay under the caller's control; nothing is retried or redirected. With
``keep_alive`` it keeps one connection per host open (the benchmarks' load generator); without,
each request has its own connection. The docker flows (push, pull, delete: docs/protocol.md 4,
5 and 8) raise :class:`ProtocolError` when an answer is not what docker accepts.
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 30.0


class ProtocolError(Exception):
    """The server answered something a docker client would not accept."""


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage  # case-insensitive; repeated headers through get_all
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise ProtocolError(f"body is not JSON: {self.body[:200]!r}") from None

    def excerpt(self) -> str:
        return self.body[:200].decode("utf-8", "replace")


class Image(Protocol):
    """What a push needs of an image: its json exactly as sent, its layer, and their checksums."""

    @property
    def image_id(self) -> str: ...
    @property
    def json_bytes(self) -> bytes: ...
    @property
    def body(self) -> bytes: ...
    @property
    def tarsum(self) -> str: ...
    @property
    def payload_checksum(self) -> str: ...


@dataclass
class PushReport:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def basic_header(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def expect(reply: Reply, *statuses: int) -> Reply:
    """``reply`` if its status is one of ``statuses``, else ProtocolError quoting the answer."""
    if reply.status not in statuses:
        wanted = " or ".join(map(str, statuses))
        raise ProtocolError(f"expected {wanted}, got {reply.status}: {reply.excerpt()}")
    return reply


class V1Client:
    """Talks to the index at ``base_url`` (``http://127.0.0.1:5000``, or a bare ``host:port``),
    and to the registries it names, as ``credentials`` (None: anonymous)."""

    def __init__(self, base_url: str, credentials: tuple[str, str] | None = None, *,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = TIMEOUT_SECONDS,
                 keep_alive: bool = False) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected a URL like http://127.0.0.1:5000, got {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.netloc  # "127.0.0.1:port"
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.keep_alive = keep_alive
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}

    # -- plumbing -----------------------------------------------------------------------------
    def _connection(self, scheme: str, host: str) -> http.client.HTTPConnection:
        connection = self._connections.get((scheme, host)) if self.keep_alive else None
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(host, timeout=self.timeout, context=self.ssl_context)
            else:
                connection = http.client.HTTPConnection(host, timeout=self.timeout)
            if self.keep_alive:
                self._connections[(scheme, host)] = connection
        return connection

    def request(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, *, chunked: bool = False,
                host: str | None = None) -> Reply:
        """One request to the index (or, with ``host``, to that registry: ``host:port`` or a URL)."""
        scheme, target = self.scheme, self.host
        if host is not None:
            if "://" in host:
                parts = urlsplit(host)
                scheme, target = parts.scheme, parts.netloc
            else:
                target = host
        all_headers = dict(headers or {})
        if chunked:
            all_headers["Transfer-Encoding"] = "chunked"
        connection = self._connection(scheme, target)
        try:
            connection.request(method, path, body=body, headers=all_headers, encode_chunked=chunked)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        except BaseException:
            self._drop(scheme, target, connection)
            raise
        if not self.keep_alive or response.will_close:
            self._drop(scheme, target, connection)
        return reply

    def _drop(self, scheme: str, host: str, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if self._connections.get((scheme, host)) is connection:
            del self._connections[(scheme, host)]

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def basic(self) -> dict[str, str]:
        """Basic credentials as docker sends them: always on index PUTs, empty when anonymous."""
        return basic_header(*(self.credentials or ("", "")))

    def truncated_upload(self, path: str, headers: dict[str, str], first_part: bytes) -> Reply:
        """Send one chunk of a chunked body, then half-close: the body breaks off mid-stream."""
        host, port = self.host.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=self.timeout) as sock:
            lines = [f"PUT {path} HTTP/1.1", f"Host: {self.host}", "Transfer-Encoding: chunked",
                     "Content-Type: application/octet-stream", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            sock.sendall(f"{len(first_part) + 1000:x}\r\n".encode() + first_part)  # promises more
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while len(received) < 1 << 20:
                part = sock.recv(65536)
                if not part:
                    break
                received += part
        head, _, body = received.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        return Reply(status, http.client.HTTPMessage(), body)

    # -- push (docs/protocol.md 4.1) ----------------------------------------------------------
    def announce(self, remote: str, images: list[Image], tag: str = "latest") -> Reply:
        entries: list[dict[str, str]] = [{"id": image.image_id} for image in images[:-1]]
        entries.append({"id": images[-1].image_id, "Tag": tag})
        return self.request("PUT", f"/v1/repositories/{remote}/", json.dumps(entries).encode(),
                            {**self.basic(), "X-Docker-Token": "true", "Content-type": "application/json"})

    def push(self, remote: str, images: list[Image], tag: str = "latest", *,
             lookup_first: bool = True) -> PushReport:
        """docker push: announce, upload each image parents first, tag, commit the list.

        ``lookup_first=False`` behaves like a client whose ``GET json`` is refused (docker-registry
        refuses it with a write token): it relies on the 409 "Image already exists" instead.
        """
        announced = expect(self.announce(remote, images, tag), 200, 201)
        token = announced.headers["X-Docker-Token"]
        endpoints = announced.headers.get_all("X-Docker-Endpoints") or []
        if not token or not endpoints:
            raise ProtocolError("the push answer lacks X-Docker-Token or X-Docker-Endpoints")
        registry = endpoints[0]
        auth = {"Authorization": f"Token {token}"}
        report = PushReport()
        for image in images:
            if lookup_first and self.request("GET", f"/v1/images/{image.image_id}/json",
                                             headers=auth, host=registry).status == 200:
                report.skipped.append(image.image_id)
                continue
            put_json = self.request("PUT", f"/v1/images/{image.image_id}/json", image.json_bytes,
                                    {**auth, "Content-type": "application/json"}, host=registry)
            if put_json.status != 200 and put_json.json() == {"error": "Image already exists"}:
                report.skipped.append(image.image_id)
                continue
            expect(put_json, 200)
            expect(self.request("PUT", f"/v1/images/{image.image_id}/layer", chunks(image.body),
                                {**auth, "Content-Type": "application/octet-stream"},
                                chunked=True, host=registry), 200)
            expect(self.request("PUT", f"/v1/images/{image.image_id}/checksum", b"",
                                {**auth, "X-Docker-Checksum": image.tarsum,
                                 "X-Docker-Checksum-Payload": image.payload_checksum}, host=registry), 200)
            report.uploaded.append(image.image_id)
        expect(self.request("PUT", f"/v1/repositories/{remote}/tags/{tag}",
                            json.dumps(images[-1].image_id).encode(),
                            {**auth, "Content-type": "application/json"}, host=registry), 200, 201)
        final = self.request("PUT", f"/v1/repositories/{remote}/images", b"[]",
                             {**self.basic(), "X-Docker-Token": "true", "Content-type": "application/json",
                              "X-Docker-Endpoints": f"{self.scheme}://{registry}/v1/"})
        expect(final, 204)  # exactly: docker treats anything else as an error
        return report

    # -- pull (docs/protocol.md 5) ------------------------------------------------------------
    def read_token(self, remote: str) -> tuple[str, str]:
        """(read token, first registry endpoint) from the pull's image list request."""
        headers = {"X-Docker-Token": "true", **(self.basic() if self.credentials else {})}
        listed = expect(self.request("GET", f"/v1/repositories/{remote}/images", headers=headers), 200)
        endpoints = listed.headers.get_all("X-Docker-Endpoints") or [self.host]
        return listed.headers.get("X-Docker-Token", ""), endpoints[0]

    def pull(self, remote: str, tag: str = "latest") -> dict[str, tuple[bytes, bytes]]:
        """docker pull: image id -> (json bytes, layer bytes), root first."""
        token, registry = self.read_token(remote)
        auth = {"Authorization": f"Token {token}"}
        tags_path = remote if "/" in remote else f"library/{remote}"  # GetRemoteTags adds library/
        tags = expect(self.request("GET", f"/v1/repositories/{tags_path}/tags", headers=auth, host=registry), 200)
        top = tags.json()[tag]
        ancestry = expect(self.request("GET", f"/v1/images/{top}/ancestry", headers=auth, host=registry), 200)
        pulled = {}
        for image_id in reversed(ancestry.json()):
            image_json = expect(self.request("GET", f"/v1/images/{image_id}/json", headers=auth, host=registry), 200)
            head = expect(self.request("HEAD", f"/v1/images/{image_id}/layer", headers=auth, host=registry), 200)
            if head.headers["Accept-Ranges"] != "bytes":
                raise ProtocolError("the layer answer does not offer byte ranges")
            layer = expect(self.request("GET", f"/v1/images/{image_id}/layer", headers=auth, host=registry), 200)
            if int(image_json.headers["X-Docker-Size"]) != len(layer.body):
                raise ProtocolError(f"X-Docker-Size of {image_id} differs from its layer's size")
            pulled[image_id] = (image_json.body, layer.body)
        return pulled

    # -- delete (docs/protocol.md 8) ----------------------------------------------------------
    def delete(self, remote: str) -> None:
        first = expect(self.request("DELETE", f"/v1/repositories/{remote}/", b"",
                                    {**self.basic(), "X-Docker-Token": "true"}), 202)
        token = first.headers["X-Docker-Token"]
        registry = (first.headers.get_all("X-Docker-Endpoints") or [self.host])[0]
        expect(self.request("DELETE", f"/v1/repositories/{remote}/", b"",
                            {"Authorization": f"Token {token}"}, host=registry), 200)
        expect(self.request("DELETE", f"/v1/repositories/{remote}/", b"",
                            {**self.basic(), "X-Docker-Endpoints": f"{self.scheme}://{registry}/v1/"}), 200)
