"""Layer downloads through ``python -m index serve``: whole and by byte range, byte for byte, and
sent by granian from the file (so a slow reader is not buffered in the worker's memory)."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from .conftest import running_server
from .layers import Entry, Layer


def _rss_kib(pid: int) -> int:
    total = 0
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


@pytest.mark.live
def test_whole_and_ranged_downloads_and_a_slow_reader_costs_no_memory(tmp_path):
    with running_server(tmp_path / "data", tmp_path / "serve.log", workers=1) as server:
        alice = server.register("alice")
        layer = Layer("aa" * 32, None, [Entry("blob.bin", os.urandom(48 * 1024 * 1024))])
        body = layer.body
        report = alice.push("alice/big", [layer])
        assert report.uploaded == [layer.image_id]
        token = alice.read_token("alice/big")[0]
        auth = {"Authorization": f"Token {token}"}
        whole = alice.request("GET", f"/v1/images/{layer.image_id}/layer", headers=auth)
        assert whole.status == 200 and whole.body == body
        ranged = alice.request("GET", f"/v1/images/{layer.image_id}/layer",
                               headers={**auth, "Range": "bytes=10-1033"})
        assert ranged.status == 206 and ranged.body == body[10:1034]
        assert ranged.headers["Content-Range"] == f"bytes 10-1033/{len(body)}"
        tail = alice.request("GET", f"/v1/images/{layer.image_id}/layer", headers={**auth, "Range": "bytes=-100"})
        assert tail.status == 206 and tail.body == body[-100:]

        # A client that asks for the layer and then reads nothing: the worker must not queue
        # the 48 MiB in its memory meanwhile.
        before = _rss_kib(server.process.pid)
        with socket.create_connection(("127.0.0.1", int(server.host.rsplit(":", 1)[1])), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET /v1/images/{layer.image_id}/layer HTTP/1.1\r\nHost: {server.host}\r\n"
                         f"Authorization: Token {token}\r\n\r\n".encode())
            time.sleep(1.5)
            grown = _rss_kib(server.process.pid) - before
        assert grown < 16 * 1024, f"the worker grew {grown} KiB while the client read nothing"
