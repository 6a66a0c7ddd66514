"""Issue 11 parts 4 and 6 through a real gunicorn: a delete never holds other accounts' pushes
up, and a layer body shorter than its Content-Length is refused with nothing kept."""
from __future__ import annotations

import json
import socket
import threading
import time

from index.ops.v1client import ProtocolError
from tests.conftest import image_id

from . import storage
from .layers import chain


def test_a_layer_body_shorter_than_its_content_length_is_400_and_keeps_nothing(server):
    erin = server.register("erinshort")
    layer = chain([image_id(0xA01)], salt="short")[0]
    announced = erin.announce("erinshort/app", [layer])
    auth = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
    assert erin.request("PUT", f"/v1/images/{layer.image_id}/json", layer.json_bytes,
                        {**auth, "Content-Type": "application/json"}).status == 200
    host, port = server.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = [f"PUT /v1/images/{layer.image_id}/layer HTTP/1.1", f"Host: {server.host}",
                f"Content-Length: {len(layer.body) + 5000}", "Connection: close",
                f"Authorization: {auth['Authorization']}"]
        # The whole (valid) layer, then a half-close: 5000 announced bytes never come.
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + layer.body)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while part := sock.recv(65536):
            received += part
    status_line, _, rest = received.partition(b"\r\n")
    assert b" 400 " in status_line, received[:300]
    assert b"Content-Length announced" in rest
    version = storage.versions(server.data_dir, layer.image_id)["erinshort"]
    assert version["state"] == "json" and version["blob"] is None
    assert not server.layer_file(layer.image_id).exists()
    assert server.unfinished_uploads() == []


def test_other_accounts_push_while_a_repository_with_many_ids_is_deleted(server):
    """bobby's repository announced 20,000 ids and holds a few real images; while its delete runs
    (registry side and index side), alice's pushes go through without waiting on it."""
    bobby = server.register("bobbybig")
    real = chain([image_id(0xB000 + n) for n in range(12)], salt="big")
    bobby.push("bobbybig/big", real)
    many = [{"id": image_id(0xC00000 + n)} for n in range(20_000)]
    listed = bobby.request("PUT", "/v1/repositories/bobbybig/big/images", json.dumps(many).encode(),
                           {**bobby.basic(), "Content-Type": "application/json"})
    assert listed.status == 204, listed.body
    assert all(server.layer_file(layer.image_id).exists() for layer in real)

    alice = server.register("alicebusy")
    slowest: list[float] = []
    failures: list[str] = []
    deleting = threading.Event()

    def delete() -> None:
        deleting.set()
        bobby.delete("bobbybig/big")

    def push_meanwhile() -> None:
        deleting.wait(10)
        for n in range(4):
            started = time.monotonic()
            try:
                report = alice.push(f"alicebusy/app{n}", chain([image_id(0xD00 + n)], salt=f"busy{n}"))
                if report.uploaded != [image_id(0xD00 + n)]:
                    failures.append(f"push {n}: {report}")
            except ProtocolError as exc:
                failures.append(f"push {n}: {exc}")
            slowest.append(time.monotonic() - started)

    threads = [threading.Thread(target=delete), threading.Thread(target=push_meanwhile)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    # A whole push (announce, json, layer, checksum, tag, images) well under the old 5-30 s stall.
    assert max(slowest) < 3.0, (slowest, time.monotonic() - started)
    assert not any(server.layer_file(layer.image_id).exists() for layer in real)
    for n in range(4):
        assert server.client().pull(f"alicebusy/app{n}")
