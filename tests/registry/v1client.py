"""A small HTTP client that replays, request by request, what docker 1.x does (protocol.md 4, 5, 8).

Plain ``http.client`` so every header, chunked body and status is under the test's control.
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .layers import Layer

TIMEOUT = 30


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class PushReport:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def basic_header(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


class V1Client:
    """Talks to one host (index and registry on the same server, as with ``host:port/ns/repo``)."""

    def __init__(self, host: str, credentials: tuple[str, str] | None = None) -> None:
        self.host = host  # "127.0.0.1:port"
        self.credentials = credentials

    # -- plumbing -----------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, *, chunked: bool = False,
                host: str | None = None) -> Reply:
        connection = http.client.HTTPConnection(host or self.host, timeout=TIMEOUT)
        try:
            all_headers = dict(headers or {})
            if chunked:
                all_headers["Transfer-Encoding"] = "chunked"
            connection.request(method, path, body=body, headers=all_headers, encode_chunked=chunked)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def _basic(self) -> dict[str, str]:
        # docker always sends Basic on index PUTs, "Og==" (empty) when nobody is logged in.
        return basic_header(*(self.credentials or ("", "")))

    def truncated_upload(self, path: str, headers: dict[str, str], first_part: bytes) -> Reply:
        """Send one chunk of a chunked body, then half-close: the body breaks off mid-stream."""
        host, port = self.host.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
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

    # -- push (protocol.md 4.1) -----------------------------------------------------------------
    def announce(self, remote: str, layers: list[Layer], tag: str = "latest") -> Reply:
        entries = [{"id": layer.image_id} for layer in layers[:-1]]
        entries.append({"id": layers[-1].image_id, "Tag": tag})
        return self.request("PUT", f"/v1/repositories/{remote}/", json.dumps(entries).encode(),
                            {**self._basic(), "X-Docker-Token": "true",
                             "Content-type": "application/json"})

    def push(self, remote: str, layers: list[Layer], tag: str = "latest", *,
             lookup_first: bool = True) -> PushReport:
        """docker push: announce, upload each image parents first, tag, commit the list.

        ``lookup_first=False`` behaves like a client whose ``GET json`` is refused (docker-registry
        refuses it with a write token): it relies on the 409 "Image already exists" instead.
        """
        announced = self.announce(remote, layers, tag)
        assert announced.status == 200, (announced.status, announced.body)
        token = announced.headers["X-Docker-Token"]
        endpoints = announced.headers.get_all("X-Docker-Endpoints")
        assert endpoints == [self.host], endpoints
        registry = endpoints[0]
        auth = {"Authorization": f"Token {token}"}
        report = PushReport()
        for layer in layers:
            if lookup_first and self.request("GET", f"/v1/images/{layer.image_id}/json",
                                             headers=auth, host=registry).status == 200:
                report.skipped.append(layer.image_id)
                continue
            put_json = self.request("PUT", f"/v1/images/{layer.image_id}/json", layer.json_bytes,
                                    {**auth, "Content-type": "application/json"}, host=registry)
            if put_json.status != 200 and put_json.json() == {"error": "Image already exists"}:
                report.skipped.append(layer.image_id)
                continue
            assert put_json.status == 200, (put_json.status, put_json.body)
            put_layer = self.request("PUT", f"/v1/images/{layer.image_id}/layer", chunks(layer.body),
                                     {**auth, "Content-Type": "application/octet-stream"},
                                     chunked=True, host=registry)
            assert put_layer.status == 200, (put_layer.status, put_layer.body)
            put_checksum = self.request("PUT", f"/v1/images/{layer.image_id}/checksum", b"",
                                        {**auth, "X-Docker-Checksum": layer.tarsum,
                                         "X-Docker-Checksum-Payload": layer.payload_checksum},
                                        host=registry)
            assert put_checksum.status == 200, (put_checksum.status, put_checksum.body)
            report.uploaded.append(layer.image_id)
        tagged = self.request("PUT", f"/v1/repositories/{remote}/tags/{tag}",
                              json.dumps(layers[-1].image_id).encode(),
                              {**auth, "Content-type": "application/json"}, host=registry)
        assert tagged.status in (200, 201), (tagged.status, tagged.body)
        final = self.request("PUT", f"/v1/repositories/{remote}/images", b"[]",
                             {**self._basic(), "X-Docker-Token": "true",
                              "Content-type": "application/json",
                              "X-Docker-Endpoints": f"http://{registry}/v1/"})
        assert final.status == 204, (final.status, final.body)
        return report

    # -- pull (protocol.md 5) -------------------------------------------------------------------
    def read_token(self, remote: str) -> tuple[str, str]:
        headers = {"X-Docker-Token": "true", **(self._basic() if self.credentials else {})}
        listed = self.request("GET", f"/v1/repositories/{remote}/images", headers=headers)
        assert listed.status == 200, (listed.status, listed.body)
        return listed.headers["X-Docker-Token"], listed.headers.get_all("X-Docker-Endpoints")[0]

    def pull(self, remote: str, tag: str = "latest") -> dict[str, tuple[bytes, bytes]]:
        """docker pull: image id -> (json bytes, layer bytes), root first."""
        token, registry = self.read_token(remote)
        auth = {"Authorization": f"Token {token}"}
        tags_path = remote if "/" in remote else f"library/{remote}"  # GetRemoteTags adds library/
        tags = self.request("GET", f"/v1/repositories/{tags_path}/tags", headers=auth, host=registry)
        assert tags.status == 200, (tags.status, tags.body)
        top = tags.json()[tag]
        ancestry = self.request("GET", f"/v1/images/{top}/ancestry", headers=auth, host=registry)
        assert ancestry.status == 200, (ancestry.status, ancestry.body)
        pulled = {}
        for image_id in reversed(ancestry.json()):
            image_json = self.request("GET", f"/v1/images/{image_id}/json", headers=auth, host=registry)
            assert image_json.status == 200, (image_json.status, image_json.body)
            head = self.request("HEAD", f"/v1/images/{image_id}/layer", headers=auth, host=registry)
            assert head.status == 200 and head.headers["Accept-Ranges"] == "bytes"
            layer = self.request("GET", f"/v1/images/{image_id}/layer", headers=auth, host=registry)
            assert layer.status == 200, (layer.status, layer.body[:200])
            assert int(image_json.headers["X-Docker-Size"]) == len(layer.body)
            pulled[image_id] = (image_json.body, layer.body)
        return pulled

    # -- delete (protocol.md 8) -----------------------------------------------------------------
    def delete(self, remote: str) -> None:
        first = self.request("DELETE", f"/v1/repositories/{remote}/", b"",
                             {**self._basic(), "X-Docker-Token": "true"})
        assert first.status == 202, (first.status, first.body)
        token = first.headers["X-Docker-Token"]
        registry = first.headers.get_all("X-Docker-Endpoints")[0]
        second = self.request("DELETE", f"/v1/repositories/{remote}/", b"",
                              {"Authorization": f"Token {token}"}, host=registry)
        assert second.status == 200, (second.status, second.body)
        final = self.request("DELETE", f"/v1/repositories/{remote}/", b"",
                             {**self._basic(), "X-Docker-Endpoints": f"http://{registry}/v1/"})
        assert final.status == 200, (final.status, final.body)
