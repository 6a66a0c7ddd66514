"""How long a Basic login takes per outcome, at production bcrypt cost.

    .venv/bin/python bench/login_timing.py [--rounds 12] [--samples 20]

Prints the median and spread for: wrong password of an existing user, unknown user (must match
the first: no enumeration by time), a remembered (cached) right password, and a throttled (429)
attempt. In-process through the Flask test client, on a temporary data dir.
"""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index import create_app  # noqa: E402


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def timed(client, samples: int, headers_for, address: str, expected: int) -> list[float]:
    durations = []
    for sample in range(samples):
        started = time.perf_counter()
        answer = client.get("/v1/users/", headers=headers_for(sample), environ_base={"REMOTE_ADDR": address})
        durations.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == expected, (answer.status_code, answer.data)
    return durations


def describe(label: str, durations: list[float]) -> str:
    return (f"{label:<34} median {statistics.median(durations):8.2f} ms   "
            f"min {min(durations):8.2f}   max {max(durations):8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATA_DIR": Path(folder) / "data", "SECRET_KEY": "bench",
                          "BCRYPT_ROUNDS": args.rounds, "LOGIN_FAILURES_PER_MINUTE": 10_000})
        client = app.test_client()
        body = json.dumps({"username": "victim", "password": "right-password", "email": "v@example.com"})
        assert client.post("/v1/users/", data=body, content_type="application/json").status_code == 201
        wrong = timed(client, args.samples, lambda n: basic("victim", f"wrong{n}"), "10.1.0.1", 401)
        unknown = timed(client, args.samples, lambda n: basic(f"ghost{n:03d}", "wrong"), "10.1.0.2", 401)
        client.get("/v1/users/", headers=basic("victim", "right-password"))
        cached = timed(client, args.samples, lambda n: basic("victim", "right-password"), "10.1.0.3", 200)
        throttled_app = create_app({"DATA_DIR": Path(folder) / "data", "SECRET_KEY": "bench",
                                    "BCRYPT_ROUNDS": args.rounds, "LOGIN_FAILURES_PER_MINUTE": 1})
        throttled_client = throttled_app.test_client()
        timed(throttled_client, 1, lambda n: basic("victim", "wrong"), "10.1.0.4", 401)
        throttled = timed(throttled_client, args.samples, lambda n: basic("victim", "wrong"), "10.1.0.4", 429)
    print(f"bcrypt rounds {args.rounds}, {args.samples} samples each")
    print(describe("wrong password, existing user", wrong))
    print(describe("unknown user", unknown))
    print(f"{'unknown / existing (medians)':<34} {statistics.median(unknown) / statistics.median(wrong):.3f}")
    print(describe("right password, remembered", cached))
    print(describe("throttled (429, no bcrypt)", throttled))


if __name__ == "__main__":
    main()
