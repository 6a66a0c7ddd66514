"""Run the WSGI app under granian's RSGI interface, so that slow clients cost no Python thread.

Granian's own WSGI interface hands a request to a Python thread as soon as its headers are in;
the thread then waits inside ``wsgi.input.read`` for as long as the client takes to send the
body, and nothing can end that wait from Python. Here the event loop of each granian worker
reads request bodies instead, under a deadline (:class:`BodyDeadline`); only when a small body is
complete, or while a large one (a layer) is being streamed to the app chunk by chunk, does a
thread of the pool run the app. A body that stalls or trickles is answered ``408`` and its
connection closed, and the thread it would have held keeps serving others.

Headers are granian's job (``http1_header_read_timeout``). Responses go back through the event
loop: whole when the app's iterable ends within its first chunks, streamed otherwise; a file
(``send_file``: layers) is handed to granian, which sends it from disk at the client's pace.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from werkzeug.wsgi import _RangeWrapper  # what send_file answers a Range request with

log = logging.getLogger(__name__)

# Bodies up to this size are read whole on the event loop before the app runs (JSON documents);
# larger or chunked ones (layers) are streamed to the app as it reads them.
SMALL_BODY_BYTES = 256 * 1024
# An app that answers before reading a streamed body (a 404 for a layer without its json): this
# much of the rest is read and dropped so the client can read the answer; past it, the
# connection is closed after the answer.
DRAIN_BYTES = 4 * 1024 * 1024
# A response whose iterable yields at most this much before ending is sent in one piece.
WHOLE_RESPONSE_BYTES = 1024 * 1024
FILE_BLOCK_BYTES = 1024 * 1024
_TIMEOUT_BODY = b'{"error": "the request body arrived too slowly"}'
_ERROR_BODY = b'{"error": "internal server error"}'
_REASON_SPLIT = " "


class BodyTooSlow(Exception):
    """The client sent the request body slower than the minimum rate, or stopped sending it."""


class BodyDeadline:
    """How long the next wait for body bytes may last.

    A body gets ``grace`` seconds of waiting for free, then must have arrived at ``min_rate``
    bytes a second on average over the time spent waiting for it; and no single wait may last
    longer than ``grace`` (a client that stops entirely). Only time spent waiting for the client
    counts: while the app is busy (writing a layer to disk), the client is not to blame.
    """

    def __init__(self, min_rate: int, grace: float) -> None:
        self.min_rate = min_rate
        self.grace = grace
        self.received = 0
        self.waited = 0.0

    def next_timeout(self) -> float:
        allowance = self.grace + self.received / self.min_rate - self.waited
        return max(0.0, min(self.grace, allowance))

    def record(self, waited: float, received: int) -> None:
        self.waited += waited
        self.received += received


class StreamedBody(io.RawIOBase):
    """``wsgi.input`` for a large body: each read asks the event loop for the next chunk."""

    def __init__(self, loop: asyncio.AbstractEventLoop, chunks: Any, deadline: BodyDeadline) -> None:
        super().__init__()
        self._loop = loop
        self._chunks = chunks.__aiter__()
        self._deadline = deadline
        self._buffer = b""
        self._done = False
        self.too_slow = False

    def readable(self) -> bool:
        return True

    async def _next_chunk(self) -> bytes:
        timeout = self._deadline.next_timeout()
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):  # a third of wait_for's cost: no task of its own
                chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            return b""
        except TimeoutError:
            self.too_slow = True
            raise BodyTooSlow(f"no body bytes for {timeout:.1f} s") from None
        finally:
            self._deadline.record(time.monotonic() - started, 0)
        self._deadline.record(0.0, len(chunk))
        return bytes(chunk)

    async def drain(self, limit: int) -> bool:
        """On the event loop, after the app answered without reading it all: read and drop the
        rest of the body, up to ``limit`` bytes, so the client gets to read the answer instead
        of a reset connection. False when more remains (or it came too slowly)."""
        dropped = len(self._buffer)
        self._buffer = b""
        while not self._done and dropped <= limit:
            try:
                chunk = await self._next_chunk()
            except BodyTooSlow:
                return False
            if not chunk:
                self._done = True
            dropped += len(chunk)
        return self._done

    def _fill(self) -> bool:
        if self._done:
            return False
        chunk = asyncio.run_coroutine_threadsafe(self._next_chunk(), self._loop).result()
        if not chunk:
            self._done = True
            return False
        self._buffer += chunk
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            data, self._buffer = self._buffer, b""
            return data
        if not self._buffer:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        while b"\n" not in self._buffer and (size is None or size < 0 or len(self._buffer) < size):
            if not self._fill():
                break
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size is not None and size >= 0:
            end = min(end, size)
        data, self._buffer = self._buffer[:end], self._buffer[end:]
        return data


class FileBlocks:
    """``wsgi.file_wrapper``: a file read in large blocks (werkzeug asks for 8 KiB ones)."""

    def __init__(self, file: Any, block_size: int = 8192) -> None:
        self.file = file
        self.block_size = max(block_size, FILE_BLOCK_BYTES)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.file.read(self.block_size)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.file, "close", None)
        if close is not None:
            close()


def _split_host_port(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port


class RequestThreads:
    """The threads that run the app, fed from the event loop.

    What ``loop.run_in_executor`` does, without its two futures and their chained callbacks per
    call: a job goes into a queue, and the thread that ran it sets the loop's future through
    ``call_soon_threadsafe``. At a few thousand requests a second that difference is measurable.
    """

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"request-{n}", daemon=True)
                         for n in range(count)]
        for thread in self._threads:
            thread.start()

    def run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        self._jobs.put((future, function, args))
        return future

    def _work(self) -> None:
        loop = self._loop
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, function, args = job
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting coroutine
                loop.call_soon_threadsafe(_fail, future, exc)
            else:
                loop.call_soon_threadsafe(_succeed, future, result)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=30)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class WsgiOnRsgi:
    """An RSGI application (``__rsgi__``) that runs ``wsgi_app`` in a pool of ``threads``.

    ``inline(environ)``, when given, picks requests without a body that run on the event loop's
    thread instead: no hand-over to a pool thread and back (the caller vouches that they wait on
    nothing: see :mod:`index.ops.quick_requests`).
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], *, threads: int, min_body_rate: int,
                 body_grace: float, inline: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.wsgi_app = wsgi_app
        self.inline = inline
        self.threads = threads
        self.min_body_rate = min_body_rate
        self.body_grace = body_grace
        self._pool: RequestThreads | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Called in each worker after it started: threads must not be made before the fork.
        self._start_pool(loop)

    def _start_pool(self, loop: asyncio.AbstractEventLoop) -> RequestThreads:
        self._pool = RequestThreads(self.threads, loop)
        return self._pool

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        loop = asyncio.get_running_loop()
        pool = self._pool or self._start_pool(loop)
        environ = self._environ(scope)
        deadline = BodyDeadline(self.min_body_rate, self.body_grace)
        length = environ.get("CONTENT_LENGTH", "")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        streamed: StreamedBody | None = None
        if not chunked and (not length or length == "0"):
            environ["wsgi.input"] = io.BytesIO(b"")
        elif not chunked and length.isdigit() and int(length) <= SMALL_BODY_BYTES:
            try:
                environ["wsgi.input"] = io.BytesIO(await self._read_small(proto, deadline, int(length)))
            except BodyTooSlow:
                self._too_slow(proto)
                return
        else:
            streamed = StreamedBody(loop, proto, deadline)
            environ["wsgi.input"] = streamed
        try:
            if streamed is None and self.inline is not None and self.inline(environ):
                status, headers, first, rest = self._call_app(environ)
            else:
                status, headers, first, rest = await pool.run(self._call_app, environ)
        except Exception:
            if streamed is not None and streamed.too_slow:
                self._too_slow(proto)
                return
            log.exception("the app failed outside its own error handling")
            proto.response_bytes(500, [("Content-Type", "application/json"),
                                       ("Content-Length", str(len(_ERROR_BODY)))], _ERROR_BODY)
            return
        if streamed is not None and streamed.too_slow:
            # The app turned the broken body into an answer of its own (a 400 "upload broke
            # off"); the client is told why instead, and the connection closes.
            if rest is not None:
                await pool.run(_close, rest)
            self._too_slow(proto)
            return
        if streamed is not None and not await streamed.drain(DRAIN_BYTES):
            headers = [(name, value) for name, value in headers if name.lower() != "connection"]
            headers.append(("Connection", "close"))
        if rest is None:
            proto.response_bytes(status, headers, first)
            return
        if isinstance(rest, SentFile):
            if rest.start is None:
                proto.response_file(status, headers, rest.path)
            else:
                proto.response_file_range(status, headers, rest.path, rest.start, rest.end)
            return
        await self._stream(pool, proto, status, headers, first, rest)

    async def _read_small(self, proto: Any, deadline: BodyDeadline, length: int) -> bytes:
        """The whole body of ``length`` bytes (its Content-Length), under ``deadline``."""
        parts: list[bytes] = []
        received = 0
        chunks = proto.__aiter__()
        while received < length:  # the end of a body is its length: no wait for the stream's end
            timeout = deadline.next_timeout()
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return b"".join(parts)
            except TimeoutError:
                raise BodyTooSlow(f"no body bytes for {timeout:.1f} s") from None
            deadline.record(time.monotonic() - started, len(chunk))
            parts.append(bytes(chunk))
            received += len(chunk)
        return b"".join(parts)

    @staticmethod
    def _too_slow(proto: Any) -> None:
        proto.response_bytes(408, [("Content-Type", "application/json"), ("Connection", "close"),
                                   ("Content-Length", str(len(_TIMEOUT_BODY)))], _TIMEOUT_BODY)

    @staticmethod
    async def _stream(pool: RequestThreads, proto: Any, status: int,
                      headers: list[tuple[str, str]], first: bytes, rest: Iterator[bytes]) -> None:
        transport = proto.response_stream(status, headers)
        # The next block is read (in a pool thread) while the current one is being sent.
        upcoming = pool.run(next, rest, None)
        try:
            if first:
                await transport.send_bytes(first)
            while True:
                chunk = await upcoming
                if chunk is None:
                    return
                upcoming = pool.run(next, rest, None)
                if chunk:
                    await transport.send_bytes(chunk)
        except Exception as exc:  # the client went away mid-download
            log.debug("streaming a response stopped: %s", exc)
        finally:
            # A read still running must end before the iterable is closed under it.
            with contextlib.suppress(Exception):
                await upcoming
            close = getattr(rest, "close", None)
            if close is not None:
                await pool.run(close)

    def _call_app(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes, Any]:
        """In a pool thread: run the app; its answer whole, or its first part and an iterator."""
        started: list[Any] = []
        # PEP 3333's write(): what an app writes before returning goes ahead of its iterable.
        parts: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return parts.append

        result = self.wsgi_app(environ, start_response)
        sent_file = None if parts else _file_answer(result)
        if sent_file is not None:
            # granian sends the file itself, at the pace the client reads it (a streamed answer
            # would be queued in memory whole: granian's stream channel has no bound).
            _close(result)
            return _status(started[0]), list(started[1]), b"", sent_file
        iterator = iter(result)
        size = sum(len(part) for part in parts)
        try:
            for part in iterator:
                parts.append(part)
                size += len(part)
                if size > WHOLE_RESPONSE_BYTES:
                    break
            else:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                return _status(started[0]), list(started[1]), b"".join(parts), None
        except BaseException:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise
        return _status(started[0]), list(started[1]), b"".join(parts), _Closing(iterator, result)

    @staticmethod
    def _environ(scope: Any) -> dict[str, Any]:
        server_host, server_port = _split_host_port(scope.server)
        client_host, client_port = _split_host_port(scope.client)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": scope.path,
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_host,
            "REMOTE_PORT": client_port,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,  # read to the end, chunked bodies included
            "wsgi.file_wrapper": FileBlocks,
        }
        for name, value in scope.headers.items():
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
            else:
                environ[key] = value
        return environ


@dataclass(frozen=True)
class SentFile:
    """An answer that is a file on disk (``send_file``), whole or a byte range of it."""

    path: str
    start: int | None = None
    end: int | None = None  # exclusive


def _file_answer(result: Any) -> SentFile | None:
    """The file behind an app's answer, when it is one of ours read from a path on disk."""
    inner, start, end = result, None, None
    if isinstance(result, _RangeWrapper):
        inner, start, end = result.iterable, result.start_byte, result.end_byte
    if not isinstance(inner, FileBlocks):
        return None
    path = getattr(inner.file, "name", None)
    if not isinstance(path, str) or not os.path.isabs(path):
        return None
    if start is not None and end is None:
        end = os.fstat(inner.file.fileno()).st_size
    return SentFile(path, start, end)


class _Closing:
    """The rest of a streamed answer, closing the app's iterable at the end (PEP 3333)."""

    def __init__(self, iterator: Iterator[bytes], result: Any) -> None:
        self._iterator = iterator
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._iterator)

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


def _close(iterable: Any) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


def _status(line: str) -> int:
    return int(line.split(_REASON_SPLIT, 1)[0])

