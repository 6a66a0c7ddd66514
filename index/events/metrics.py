"""Prometheus metrics through ``prometheus_client``, added up across worker processes.

Multi-process mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set (``python -m index serve`` makes a
fresh folder for it before any worker starts, see :func:`prepare_multiprocess_dir`), every process
writes its counters to files there and ``GET /metrics`` adds them all up. Without it (one process:
the development server, tests, an embedded index) the numbers live in this process.

Gauges of state (outbox depth, repositories, stored bytes) are read from the data dir when
scraped, so they are right whichever worker answers.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STATE_CACHE_SECONDS = 30.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


def prepare_multiprocess_dir() -> Path:
    """Give the processes about to be forked a fresh, empty folder for their metric files.

    Called by the serve command before the server starts its workers; an operator's own
    ``PROMETHEUS_MULTIPROC_DIR`` is kept (emptying it is then the operator's job, as
    prometheus_client documents). The folder we made is removed when this process exits.
    """
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        return Path(existing)
    folder = Path(tempfile.mkdtemp(prefix="docker-index-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    owner = os.getpid()
    atexit.register(lambda: shutil.rmtree(folder, ignore_errors=True) if os.getpid() == owner else None)
    return folder


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """The metric objects of this process (prometheus_client allows one of each name)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, values
        # *_created series double the output and tell nothing here. (prometheus_client leaves
        # this and the multi-process helpers below unannotated.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        if multiprocess():
            # A folder that vanished (a temp dir cleaned up) must not stop the app from starting.
            Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)
        if multiprocess() and values.ValueClass is values.MutexValue:
            # prometheus_client was imported before the folder was set: switch it over now,
            # before the first metric object is made.
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.multiprocess = multiprocess()
        # Multi-process: the files are the registry, collected per scrape; otherwise our own one.
        self.registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter("index_http_requests", "HTTP requests answered, by route and status",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("index_http_request_duration_seconds", "Time to answer a request, by route",
                                 ["route", "method"], buckets=LATENCY_BUCKETS, registry=registry)
        self.pushes = Counter("index_pushes", "Completed pushes (docker's final PUT of the image list)",
                              registry=registry)
        self.pulls = Counter("index_pulls", "Pulls started (image list fetched by a docker client)",
                             registry=registry)
        self.layer_bytes_in = Counter("index_layer_bytes_received", "Layer bytes accepted by the registry",
                                      registry=registry)
        self.layer_bytes_out = Counter("index_layer_bytes_sent", "Layer bytes served by the registry",
                                       registry=registry)
        self.failed_logins = Counter("index_failed_logins", "Logins refused for a wrong username or password",
                                     registry=registry)
        self.lockouts = Counter("index_login_lockouts", "Login attempts refused (429) after too many failures",
                                registry=registry)
        self.deliveries = Counter("index_webhook_deliveries", "Webhook delivery attempts by outcome",
                                  ["event", "outcome"], registry=registry)

        # (route, method, status) -> its request counter and latency histogram: prometheus's
        # ``labels()`` validates and locks on every call, a tenth of a ping's time in the app.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request_series(self, rule: str, method: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram of one route, method and status."""
        key = (rule, method, status)
        found = self._series.get(key)
        if found is None:  # routes x methods x statuses: a few hundred at most
            found = (self.requests.labels(rule, method, str(status)), self.latency.labels(rule, method))
            self._series[key] = found
        return found

    def exposition(self, state: StateCollector) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            assert self.registry is not None
            registry = self.registry
        gauges = CollectorRegistry()
        gauges.register(state)
        return generate_latest(registry) + generate_latest(gauges)


def count(change: Callable[[Metrics], None]) -> None:
    """Apply ``change`` to this process's metrics; a failure (its folder gone, a full disk) is
    logged, never turned into an error answer: counting must not break what it counts."""
    try:
        change(metrics())
    except Exception as exc:
        log.warning("could not update a metric: %s", exc)


def metrics() -> Metrics:
    """This process's metrics, made on first use."""
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            _metrics = Metrics()
        return _metrics


class StateCollector:
    """Gauges read from the data dir at scrape time (cached briefly: a scrape must stay cheap)."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read
        self._cached: tuple[float, dict[str, float]] | None = None
        self._lock = threading.Lock()

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > STATE_CACHE_SECONDS:
                self._cached = (time.monotonic(), self._read())
            values = self._cached[1]
        helps = {
            "index_webhook_outbox_depth": "Webhook deliveries waiting in the outbox",
            "index_repositories": "Repositories in the index",
            "index_stored_bytes": "Bytes of data (layers, image and account records) in the data dir",
        }
        for name, text in helps.items():
            if name in values:
                yield GaugeMetricFamily(name, text, value=values[name])

    def forget(self) -> None:
        """Read afresh on the next scrape (tests, after known changes)."""
        with self._lock:
            self._cached = None


def directory_bytes(root: Path, skip: tuple[str, ...] = ()) -> int:
    """The size of every regular file under ``root``, without following links."""
    total = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if entry.name in skip:
                    continue
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
    return total
