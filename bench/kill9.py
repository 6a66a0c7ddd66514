"""kill -9 a writer at random moments, the full count (the test suite runs a smaller, forked one).

Each trial starts the writer as a fresh interpreter (``python -m tests.store.crashes writer``),
waits until it has opened the store (every other trial: until its first acknowledged write), lets
it write for a random 0-250 ms, sends SIGKILL, then re-opens the data dir as a starting server does
and checks that every file parses and that every write any writer so far had reported (after its
store method returned) is present. One namespace file is ~1.4 MB, so many kills land mid-write.

    .venv/bin/python bench/kill9.py [--trials 200] [--max-delay 0.25]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--max-delay", type=float, default=0.25, help="longest wait before the kill, s")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kill9-"))
    started = time.perf_counter()
    try:
        # The trials are the test suite's (tests/store/crashes.py), run as a program from the checkout.
        done = subprocess.run([sys.executable, "-m", "tests.store.crashes", "trials", str(workdir / "data"),
                               str(args.trials), str(args.max_delay), str(args.seed)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60 + args.trials * 45)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"the trials did not run: {done.stderr[-2000:]}")
    outcome = argparse.Namespace(**json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"trials: {outcome.trials} (writer killed with SIGKILL each time), "
          f"{time.perf_counter() - started:.0f} s")
    print(f"acknowledged writes, all checked again after every later kill: {outcome.acknowledged}")
    print(f"kills that left a temp file (landed between temp file and rename): {outcome.temp_files_left}")
    print(f"problems (unparsable file, lost acknowledged write): {len(outcome.problems)}")
    for problem in outcome.problems[:20]:
        print("  " + problem)
    sys.exit(1 if outcome.problems or outcome.trials < args.trials else 0)


if __name__ == "__main__":
    main()
