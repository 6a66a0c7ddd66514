"""The handshake's reads answer while every request thread is held (index/ops/quick_requests.py).

One worker with ONE request thread, and a layer upload that sends its first chunk and then waits:
that upload holds the thread (the app is reading its body). The ping, a token check, a pull's
image list, a remembered login and a search still answer, since they run on the event loop's
thread; a write (PUT repo/) waits for a request thread, and gets one as soon as the upload ends.
"""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from index.ops.v1client import V1Client

from .conftest import running_server, start_stalled_upload
from .layers import Entry, Layer

# The stalled upload keeps its thread up to this long (then it is answered 408).
pytestmark = pytest.mark.live  # starts processes

SETTINGS = {"INDEX_THREADS": "1", "INDEX_HEADER_TIMEOUT": "20", "INDEX_MIN_BODY_RATE": "500"}


def test_quick_reads_answer_while_the_only_request_thread_is_held(tmp_path):
    with running_server(tmp_path / "data", tmp_path / "serve.log", workers=1, extra_env=SETTINGS) as server:
        alice: V1Client = server.register("alice")
        layer = Layer("ab" * 32, None, [Entry("data.bin", os.urandom(64 * 1024))])
        # alice's Basic credentials are remembered after the announce
        upload, token = start_stalled_upload(server, alice, "alice/held", layer, timeout=30)
        with upload:
            time.sleep(0.5)  # the app is now reading the body in the only request thread

            write: dict[str, object] = {}

            def announce_other() -> None:
                started = time.monotonic()
                write["status"] = alice.announce("alice/other", [Layer("cd" * 32, None)]).status
                write["seconds"] = time.monotonic() - started

            writer = threading.Thread(target=announce_other, daemon=True)
            writer.start()
            started = time.monotonic()
            anonymous = server.client()
            assert anonymous.request("GET", "/v1/_ping").status == 200
            assert alice.request("GET", "/v1/repositories/alice/held/images", headers=token).status == 200
            pull = anonymous.request("GET", "/v1/repositories/alice/held/images", headers={"X-Docker-Token": "true"})
            assert pull.status == 200 and pull.headers["X-Docker-Token"]
            assert alice.request("GET", "/v1/users/", headers=alice.basic()).status == 200
            assert anonymous.request("GET", "/v1/search?q=held").json()["num_results"] == 1
            quick = time.monotonic() - started
            assert "status" not in write  # the write is waiting for the request thread
            # Ending the upload (its body breaks off) frees the thread: the write goes through.
            upload.shutdown(socket.SHUT_RDWR)
        writer.join(timeout=30)
        assert write.get("status") == 200
        assert quick < float(write["seconds"]), (quick, write)
