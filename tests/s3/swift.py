"""A real S3 server for tests and benchmarks: OpenStack Swift with its s3api middleware.

One replica in a temporary folder, every server on 127.0.0.1 on a free port, ``workers = 0``
(each server is one process, so stopping it by its PID stops it), tempauth for accounts
(``test:tester`` / ``testing`` are also the S3 access key and secret) and a memcached that
tempauth needs. Standard library only (bench/ imports it); the Swift code runs in Debian's
``/usr/bin/python3`` (package python3-swift), never in our venv.

Pitfalls this module works around (issue 15):
- Swift logs only to syslog; here over UDP to a small listener that keeps the lines in a file.
- ``/etc/swift/swift.conf`` is always read from /etc (the packaged one is fine); the rings and
  the other configs live in ``swift_dir``, the temporary folder.
- ``swift-ring-builder`` costs seconds per call; its Python API builds the three rings at once.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port, stop, wait_for_http

SYSTEM_PYTHON = "/usr/bin/python3"
ACCESS_KEY = "test:tester"   # tempauth's account:user is the S3 access key ...
SECRET_KEY = "testing"       # ... and its key the S3 secret
REGION = "us-east-1"         # s3api's default location
START_TIMEOUT = 60.0
PROGRAMS = {  # program -> Debian package (tests.system.require names both)
    "swift-proxy-server": "swift-proxy",
    "swift-object-server": "swift-object",
    "swift-container-server": "swift-container",
    "swift-account-server": "swift-account",
    "memcached": "memcached",
}

_BUILD_RINGS = """
import sys
from swift.common.ring import RingBuilder
folder = sys.argv[1]
for kind, port in zip(("account", "container", "object"), sys.argv[2:5]):
    builder = RingBuilder(8, 1, 0)  # 256 partitions, one replica, no move delay
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port),
                     "device": "d1", "weight": 100, "meta": ""})
    builder.rebalance()
    builder.save(f"{folder}/{kind}.builder")
    builder.get_ring().save(f"{folder}/{kind}.ring.gz")
"""

_COMMON = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
swift_dir = {folder}
devices = {folder}/srv
mount_check = false
log_udp_host = 127.0.0.1
log_udp_port = {log_port}
log_name = {name}
"""

_BACKEND = _COMMON + """
[pipeline:main]
pipeline = {name}

[app:{name}]
use = egg:swift#{kind}
"""

_PROXY = _COMMON + """
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = {region}

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached_port}

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
"""


@dataclass
class SwiftS3:
    """A running instance: where it answers and with which credentials."""

    endpoint: str        # http://127.0.0.1:<port>
    access_key: str
    secret_key: str
    region: str
    folder: Path
    log_path: Path

    def environment(self) -> dict[str, str]:
        """The variables boto3 reads (how the index is pointed at this server)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region,
                # No profile or config file of the caller's may change what the tests see.
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def missing_programs() -> list[tuple[str, str]]:
    missing = [(program, package) for program, package in PROGRAMS.items() if shutil.which(program) is None]
    if not Path(SYSTEM_PYTHON).exists() or not Path("/etc/swift/swift.conf").exists():
        missing.append(("/etc/swift/swift.conf", "swift"))
    return missing


class _SyslogSink:
    """Swift's log lines arrive as UDP syslog datagrams; this keeps them in a file."""

    def __init__(self, path: Path) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._file = open(path, "ab")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swift-syslog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self._file.write(datagram.rstrip(b"\x00\n") + b"\n")
            self._file.flush()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._socket.close()
        self._file.close()


@contextlib.contextmanager
def running_swift(folder: Path) -> Iterator[SwiftS3]:
    """Start memcached and the four Swift servers in ``folder``; stop exactly those on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "srv" / "d1").mkdir(parents=True, exist_ok=True)
    log_path = folder / "swift.log"
    sink = _SyslogSink(log_path)
    ports = {kind: free_port() for kind in ("account", "container", "object", "proxy", "memcached")}
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([SYSTEM_PYTHON, "-c", _BUILD_RINGS, str(folder), str(ports["account"]),
                        str(ports["container"]), str(ports["object"])],
                       check=True, capture_output=True, timeout=60)
        for kind in ("account", "container", "object"):
            name = f"{kind}-server"
            (folder / f"{name}.conf").write_text(_BACKEND.format(
                port=ports[kind], folder=folder, log_port=sink.port, name=name, kind=kind))
        (folder / "proxy-server.conf").write_text(_PROXY.format(
            port=ports["proxy"], folder=folder, log_port=sink.port, name="proxy-server",
            region=REGION, memcached_port=ports["memcached"]))
        with open(folder / "stdout.log", "ab") as output:
            processes.append(subprocess.Popen(
                ["memcached", "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0", "-m", "16",
                 "-u", "root"], stdout=output, stderr=subprocess.STDOUT))
            for kind in ("account", "container", "object", "proxy"):
                processes.append(subprocess.Popen(
                    [f"swift-{kind}-server", str(folder / f"{kind}-server.conf")],
                    stdout=output, stderr=subprocess.STDOUT))
        endpoint = f"http://127.0.0.1:{ports['proxy']}"
        wait_for_http(f"{endpoint}/healthcheck", processes[-1], folder / "stdout.log", START_TIMEOUT)
        _wait_for_backends(processes, ports, folder / "stdout.log")
        yield SwiftS3(endpoint, ACCESS_KEY, SECRET_KEY, REGION, folder, log_path)
    finally:
        for process in reversed(processes):
            stop(process)
        sink.close()


def _wait_for_backends(processes: list[subprocess.Popen], ports: dict[str, int], log_path: Path) -> None:
    """The proxy answers /healthcheck before the account/container/object servers listen."""
    deadline = time.monotonic() + START_TIMEOUT
    for kind in ("account", "container", "object"):
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", ports[kind]), timeout=1):
                break
            if any(process.poll() is not None for process in processes):
                raise RuntimeError(f"a Swift server exited:\n{log_path.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"swift {kind} server did not listen within {START_TIMEOUT} s")
            time.sleep(0.1)


if __name__ == "__main__":  # python -m tests.s3.swift: start one and wait (for trying things by hand)
    import sys
    import tempfile
    with tempfile.TemporaryDirectory(prefix="swift-") as temp, running_swift(Path(temp)) as swift:
        print(swift.environment(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 3600)
