"""Slow clients against a live server: connections that hold half-sent headers, and connections
that trickle a request body. Standard library only; the tests (tests/registry/test_slow_clients.py)
and bench/slow_clients.py share it, as they share :mod:`index.ops.v1client`. Nothing of the index
imports it.

Every loop is bounded in count and time; all sockets are closed on exit.
"""
from __future__ import annotations

import select
import socket
import threading
import time

PARTIAL_HEADERS = b"GET /v1/_ping HTTP/1.1\r\nHost: 127.0.0.1\r\n"
TRICKLE_HEAD = (b"POST /v1/users/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{")


class SlowClients:
    """``partial`` connections that sent part of their headers, ``trickling`` ones that send one
    byte of a 1,000-byte body every ``interval`` seconds; what the server did to each is recorded:
    ``closed_at`` (seconds after opening) and ``answers`` (the first bytes it sent back)."""

    def __init__(self, port: int, partial: int, trickling: int, interval: float = 1.0,
                 limit_seconds: float = 120.0, reopen: bool = False) -> None:
        self.port = port
        self.reopen = reopen  # replace each connection the server closes (a persistent attacker)
        self.reopened = 0
        self.partial_count, self.trickling_count = partial, trickling
        self.interval, self.limit_seconds = interval, limit_seconds
        self.partial: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self.opened = 0.0
        self.closed_at: dict[int, float] = {}     # fileno at opening -> seconds until the server closed
        self.answers: dict[int, bytes] = {}       # fileno at opening -> what the server sent
        self._ids: dict[socket.socket, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        self.opened = time.monotonic()
        for _ in range(self.partial_count):
            self.partial.append(self._open(PARTIAL_HEADERS))
        for _ in range(self.trickling_count):
            self.trickling.append(self._open(TRICKLE_HEAD))
        self._thread.start()
        return self

    def _open(self, first: bytes) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(first)
        sock.setblocking(False)
        self._ids[sock] = len(self._ids)
        return sock

    def _run(self) -> None:
        """Trickle a byte per interval into each trickling socket; note what the server does."""
        deadline = self.opened + self.limit_seconds
        next_trickle = time.monotonic() + self.interval
        while not self._stop.is_set() and time.monotonic() < deadline:
            open_sockets = [s for s in self._ids if self._ids[s] not in self.closed_at]
            if not open_sockets:
                return
            wait = max(0.0, min(0.2, next_trickle - time.monotonic()))
            poller = select.poll()  # not select(): descriptors past 1024 with hundreds open
            by_fd = {sock.fileno(): sock for sock in open_sockets}
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(wait * 1000):
                self._read(by_fd[fd])
            if time.monotonic() >= next_trickle:
                next_trickle += self.interval
                for sock in self.trickling:
                    if self._ids[sock] not in self.closed_at:
                        try:
                            sock.send(b" ")
                        except OSError:
                            self._closed(sock)

    def _read(self, sock: socket.socket) -> None:
        key = self._ids[sock]
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.answers[key] = self.answers.get(key, b"") + data
        else:
            self._closed(sock)

    def _closed(self, sock: socket.socket) -> None:
        key = self._ids[sock]
        if key in self.closed_at:
            return
        self.closed_at[key] = time.monotonic() - self.opened
        if self.reopen and not self._stop.is_set() and self.reopened < 100_000:
            kind = self.trickling if sock in self.trickling else self.partial
            try:
                kind.append(self._open(TRICKLE_HEAD if kind is self.trickling else PARTIAL_HEADERS))
                self.reopened += 1
            except OSError:
                pass
            sock.close()

    def open_count(self) -> tuple[int, int]:
        """(partial, trickling) connections open right now."""
        return (sum(self._ids[s] not in self.closed_at for s in self.partial),
                sum(self._ids[s] not in self.closed_at for s in self.trickling))

    def all_closed(self, sockets: list[socket.socket]) -> bool:
        return all(self._ids[sock] in self.closed_at for sock in sockets)

    def wait_closed(self, timeout: float) -> bool:
        """True once the server closed every slow connection (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.all_closed(self.partial + self.trickling):
                return True
            time.sleep(0.1)
        return False

    def answer(self, sock: socket.socket) -> bytes:
        return self.answers.get(self._ids[sock], b"")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._ids:
            sock.close()
