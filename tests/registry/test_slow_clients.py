"""Slow clients cannot stall ``python -m index serve`` (issue 18 part 1, at a scale that runs in
seconds; bench/slow_clients.py holds the full 500/100/60 s load).

One worker with two request threads: before the server change, a handful of half-sent requests
held every thread. Here 60 connections hold half-sent headers and 20 trickle a body while the
ping and a whole push keep answering; the server then closes all 80 after the header timeout
(2 s) and the minimum body rate, the trickling ones with a 408. A layer sent at a normal pace for
longer than the header timeout is not cut off.
"""
from __future__ import annotations

import os
import time

import pytest

from index.ops.slow_clients import SlowClients
from index.ops.v1client import V1Client, chunks

from .conftest import running_server, start_stalled_upload
from .layers import Entry, Layer

pytestmark = pytest.mark.live  # starts processes

HEADER_TIMEOUT = 2
SETTINGS = {"INDEX_THREADS": "2", "INDEX_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "INDEX_MIN_BODY_RATE": "500"}


def _paced(data: bytes, piece: int, pause: float):
    for part in chunks(data, piece):
        time.sleep(pause)
        yield part


def test_slow_clients_do_not_stall_ping_or_push_and_are_closed(tmp_path):
    with running_server(tmp_path / "data", tmp_path / "serve.log", workers=1, extra_env=SETTINGS) as server:
        alice = server.register("alice")
        port = int(server.host.rsplit(":", 1)[1])
        with SlowClients(port, partial=60, trickling=20, interval=0.25) as slow:
            time.sleep(0.5)  # every slow connection is in the server's hands by now
            assert not slow.all_closed(slow.partial + slow.trickling)
            timings = []
            for _ in range(20):
                started = time.monotonic()
                assert server.client().request("GET", "/v1/_ping").status == 200
                timings.append(time.monotonic() - started)
            started = time.monotonic()
            announced = alice.announce("alice/app", [Layer("ab" * 32, None)])
            assert announced.status == 200
            token = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
            assert alice.request("GET", "/v1/repositories/alice/app/images", headers=token).status == 200
            committed = alice.request("PUT", "/v1/repositories/alice/app/images", b"[]",
                                      {**alice.basic(), "Content-Type": "application/json"})
            assert committed.status == 204
            handshake = time.monotonic() - started
            # All of it while the slow ones were still open (they get HEADER_TIMEOUT seconds).
            assert not slow.all_closed(slow.partial + slow.trickling)
            assert max(timings) < 1.0 and handshake < 2.0, (timings, handshake)

            assert slow.wait_closed(HEADER_TIMEOUT + 8), (len(slow.closed_at), slow.answers)
            for sock in slow.partial:
                assert slow.answer(sock) == b""
            for sock in slow.trickling:
                answer = slow.answer(sock)
                assert answer.startswith(b"HTTP/1.1 408 "), answer
                assert b"arrived too slowly" in answer
            closing = sorted(slow.closed_at.values())
            assert HEADER_TIMEOUT - 0.5 <= closing[0] and closing[-1] <= HEADER_TIMEOUT + 6, closing

        # A layer sent at a steady pace for longer than the header timeout goes through whole.
        layer = Layer("cd" * 32, None, [Entry("data.bin", os.urandom(96 * 1024))])
        announced = alice.announce("alice/paced", [layer])
        token = {"Authorization": "Token " + announced.headers["X-Docker-Token"]}
        assert alice.request("PUT", f"/v1/images/{layer.image_id}/json", layer.json_bytes,
                             {**token, "Content-Type": "application/json"}).status == 200
        started = time.monotonic()
        reply = alice.request("PUT", f"/v1/images/{layer.image_id}/layer", _paced(layer.body, 8 * 1024, 0.25),
                              {**token, "Content-Type": "application/octet-stream"}, chunked=True)
        assert time.monotonic() - started > HEADER_TIMEOUT + 0.5
        assert reply.status == 200, reply.body
        assert server.layer_file(layer.image_id).read_bytes() == layer.body


def test_a_stalled_layer_upload_is_answered_408_and_leaves_nothing(tmp_path):
    with running_server(tmp_path / "data", tmp_path / "serve.log", workers=1, extra_env=SETTINGS) as server:
        alice: V1Client = server.register("alice")
        layer = Layer("ef" * 32, None, [Entry("data.bin", os.urandom(64 * 1024))])
        sock, _ = start_stalled_upload(server, alice, "alice/stalled", layer, timeout=15)
        with sock:
            started = time.monotonic()
            answer = b""
            while part := sock.recv(65536):  # then nothing more: the server must end it
                answer += part
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"too slowly" in answer and b"connection: close" in answer.lower()
        assert HEADER_TIMEOUT - 0.5 < waited < HEADER_TIMEOUT + 5
        assert not server.layer_file(layer.image_id).exists()
        assert list((server.data_dir / "uploads").glob("*.part")) == []
        # The worker still serves.
        assert server.client().request("GET", "/v1/_ping").status == 200
