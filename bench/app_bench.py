"""The index's own cost per request, without the server or sockets: the WSGI app called directly.

    .venv/bin/python bench/app_bench.py [--requests 3000] [--profile]

Builds each request of the HTTP workloads once, calls the Flask app with it ``--requests`` times
in this one thread and prints microseconds per request; ``--profile`` adds cProfile's top
functions for each. Compare with the server CPU per request that http_bench.py prints: the rest
is the server, the sockets and the kernel. The data dir is a temp dir (bcrypt at 4 rounds; the
credential cache makes the cost of later checks independent of it).
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.test import EnvironBuilder  # noqa: E402

from index import create_app  # noqa: E402
from index.passwords import hash_password  # noqa: E402
from index.services import EXTENSION_KEY  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="index-app-bench-"))
    try:
        app = create_app({"DATA_DIR": data_dir, "BCRYPT_ROUNDS": 4})
        found = app.extensions[EXTENSION_KEY]
        found.store.create_user("bench0", hash_password("benchpass0", 4), "b@example.com", active=True)
        found.store.announce_repository("bench0", "app", [{"id": f"{i:064x}"} for i in range(3)], owner="bench0")
        basic = "Basic " + base64.b64encode(b"bench0:benchpass0").decode()
        write_token = found.signer.issue("bench0/app", "write", "bench0")
        read_token = found.signer.issue("bench0/app", "read", None)
        images = "/v1/repositories/bench0/app/images"
        cases = {
            "GET /v1/_ping": dict(path="/v1/_ping"),
            "login": dict(path="/v1/users/", headers={"Authorization": basic}),
            "PUT repo/": dict(path="/v1/repositories/bench0/app/", method="PUT",
                              data=b'[{"id":"' + b"a" * 64 + b'","Tag":"latest"}]',
                              headers={"Authorization": basic, "X-Docker-Token": "true",
                                       "Content-Type": "application/json"}),
            "token check (write)": dict(path=images, headers={"Authorization": f"Token {write_token}"}),
            "PUT images []": dict(path=images, method="PUT", data=b"[]",
                                  headers={"Authorization": basic, "X-Docker-Token": "true",
                                           "Content-Type": "application/json",
                                           "X-Docker-Endpoints": "http://127.0.0.1:5000/v1/"}),
            "pull GET images": dict(path=images, headers={"X-Docker-Token": "true"}),
            "token check (read)": dict(path=images, headers={"Authorization": f"Token {read_token}"}),
            "search 'app'": dict(path="/v1/search", query_string={"q": "app"}),
        }
        statuses: list[str] = []

        def start_response(status: str, headers, exc_info=None) -> None:
            statuses.append(status)

        def run(case: dict, count: int) -> None:
            environ = EnvironBuilder(**case).get_environ()
            body = case.get("data", b"")
            for _ in range(count):
                request = dict(environ, **{"wsgi.input": io.BytesIO(body)})
                response = app(request, start_response)
                b"".join(response)
                getattr(response, "close", lambda: None)()

        print(f"{'request':<22} {'status':<16} {'µs/request':>10}")
        for name, case in cases.items():
            run(case, 100)  # warm: caches, the credential cache, the search index
            statuses.clear()
            started = time.perf_counter()
            run(case, args.requests)
            elapsed = (time.perf_counter() - started) / args.requests * 1e6
            print(f"{name:<22} {statuses[-1]:<16} {elapsed:>10.1f}")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                run(case, args.requests)
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
