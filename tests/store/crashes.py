"""kill -9 trials: a writer process is killed at a random moment, then the data dir is checked.

The writer reports each write on its stdout (one line, flushed) only after the store method has
returned, i.e. when the write counts as acknowledged. After the kill every file must parse
(``Store.open()``) and every reported write must be present. One namespace file is made large so
that most kills land in the middle of writing it. New ids of existing repositories go to journals
(``files.DataFile.append_patch``), one of them beside a small file that is folded into its base
every few hundred appends, so kills land mid-append and mid-compaction too.

Used by ``tests/store/test_crashes.py`` (forked writers, fast) and ``bench/kill9.py`` (writers
started as fresh interpreters: ``python -m tests.store.crashes writer DATA_DIR SEED``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from index.store import Store
from index.store.files import TEMP_MARK

BIG = "bignamespace"
SMALL = "smallns"
MAX_WRITES_PER_TRIAL = 10_000


def image_id(*parts: int) -> str:
    return "".join(f"{part:08x}" for part in parts).rjust(64, "0")[-64:]


def prepare(data_dir: Path, repositories: int = 3000) -> None:
    """A data dir whose BIG namespace file is about 1.3 MB, so writing it takes a while."""
    store = Store(data_dir)
    store.open()
    store.create_user("alice", "hash", "alice@example.com")
    store.announce_repository(BIG, "shared", [], owner="alice")
    store.announce_repository(SMALL, "hot", [], owner="alice")  # pushes to it go to the journal
    from index.store.files import DataFile
    path = data_dir / "db" / "namespaces" / f"{BIG}.json"
    datafile = DataFile(path)
    with datafile.locked():
        data = datafile.read_private()
        repos = data["repositories"]
        for n in range(repositories):
            repos[f"filler{n}"] = {"namespace": BIG, "name": f"filler{n}", "description": "x" * 40,
                                   "owner": "alice", "state": "active", "created": "2026-01-01",
                                   "images": {image_id(9, n, k): "" for k in range(4)}}
        datafile.write(data)
    store.close()


def writer(data_dir: Path, seed: int, emit: Callable[[str], None]) -> None:
    """Write forever (bounded) and report each acknowledged write; the caller kills us."""
    store = Store(data_dir)
    store.open()
    emit("ready")
    for i in range(MAX_WRITES_PER_TRIAL):
        kind = i % 5
        if kind == 0:
            store.announce_repository(BIG, f"r{seed}-{i}", [{"id": image_id(seed, i)}], owner="alice")
            emit(f"repo {BIG} r{seed}-{i} {image_id(seed, i)}")
        elif kind == 1:
            store.merge_images(BIG, "shared", [{"id": image_id(seed, i)}])
            emit(f"repo {BIG} shared {image_id(seed, i)}")
        elif kind == 2:
            store.announce_repository(SMALL, f"r{seed}-{i}", [{"id": image_id(seed, i)}], owner="alice")
            emit(f"repo {SMALL} r{seed}-{i} {image_id(seed, i)}")
        elif kind == 3:
            store.create_user(f"u{seed}x{i}", "hash", f"u{seed}x{i}@example.com")
            emit(f"user u{seed}x{i}")
        else:  # a journal line in a small file: folded into its base every few hundred
            store.announce_repository(SMALL, "hot", [{"id": image_id(seed, i)}], owner="alice")
            emit(f"repo {SMALL} hot {image_id(seed, i)}")


@dataclass
class Outcome:
    trials: int = 0
    acknowledged: int = 0  # writes reported by all trials so far; all are checked after every kill
    temp_files_left: int = 0  # kills that landed between a temp file's creation and its rename
    problems: list[str] = field(default_factory=list)


def check(data_dir: Path, acks: list[str], outcome: Outcome) -> None:
    """Re-open the data dir as a starting server would, and look for every acknowledged write.

    Earlier trials' writes are looked for again: a later kill must not damage them either.
    """
    outcome.temp_files_left += sum(1 for _ in (data_dir / "db").rglob(f"*{TEMP_MARK}*"))
    store = Store(data_dir)
    try:
        store.open()  # parses every file; raises CorruptDataFile for a damaged one
    except Exception as exc:  # noqa: BLE001 - any failure to open is what we are looking for
        outcome.problems.append(f"open failed: {exc}")
        return
    try:
        if any((data_dir / "db").rglob(f"*{TEMP_MARK}*")):
            outcome.problems.append("temp files left after open()")
        for ack in acks:
            kind, *rest = ack.split()
            if kind == "user" and store.find_user(rest[0]) is None:
                outcome.problems.append(f"lost acknowledged user {rest[0]}")
            elif kind == "repo":
                namespace, name, wanted = rest
                record = store.get_repository(namespace, name)
                if record is None or wanted not in {image["id"] for image in record["images"]}:
                    outcome.problems.append(f"lost acknowledged image {wanted} of {namespace}/{name}")
        outcome.acknowledged = len(acks)
    finally:
        store.close()


def _collect(fd: int, deadline: float, lines: int | None) -> bytes:
    """Read from ``fd`` until ``lines`` whole lines (None: EOF) arrived, bounded by ``deadline``."""
    buffer = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        if lines is not None and buffer.count(b"\n") >= lines:
            break
    return buffer


def _forked_writer(data_dir: Path, seed: int) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        os.close(read_end)
        try:
            writer(data_dir, seed, lambda line: os.write(write_end, (line + "\n").encode()))
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def _exec_writer(data_dir: Path, seed: int) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-m", "tests.store.crashes", "writer", str(data_dir), str(seed)],
                               stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    assert process.stdout is not None
    return process, process.stdout.fileno()


def run_trials(data_dir: Path, trials: int, *, max_delay: float = 0.25, fork: bool = True,
               seed: int = 1) -> Outcome:
    """``trials`` kill -9 trials on one data dir (state accumulates across trials)."""
    rng = random.Random(seed)
    prepare(data_dir)
    outcome = Outcome()
    acknowledged: list[str] = []
    for trial in range(trials):
        if fork:
            pid, fd = _forked_writer(data_dir, trial)
            process = None
        else:
            process, fd = _exec_writer(data_dir, trial)
            pid = process.pid
        try:
            # Odd trials wait for a first acknowledged write, so every other kill has some to check
            # even on a slow, busy machine; even ones may kill before any write got through.
            raw = _collect(fd, time.monotonic() + 30, lines=1 + trial % 2)
            if b"ready\n" not in raw:
                outcome.problems.append(f"trial {trial}: writer did not start: {raw[-200:]!r}")
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(rng.uniform(0, max_delay))
            os.kill(pid, signal.SIGKILL)
            raw += _collect(fd, time.monotonic() + 10, lines=None)
        finally:
            if process is not None:
                process.wait(timeout=10)
                process.stdout.close()
            else:
                os.waitpid(pid, 0)
                os.close(fd)
        # A line cut by the kill (no newline yet) was never fully reported: not acknowledged.
        lines = raw.decode().split("\n")[:-1]
        acknowledged += [line for line in lines if line != "ready" and _complete(line)]
        check(data_dir, acknowledged, outcome)
        outcome.trials += 1
    return outcome


def _complete(line: str) -> bool:
    parts = line.split()
    return (parts[0] == "user" and len(parts) == 2) or (parts[0] == "repo" and len(parts) == 4
                                                         and len(parts[3]) == 64)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "writer":
        def _print(line: str) -> None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        writer(Path(sys.argv[2]), int(sys.argv[3]), _print)
    elif len(sys.argv) == 6 and sys.argv[1] == "trials":
        # bench/kill9.py: the full count, each writer a fresh interpreter; the outcome as JSON.
        found = run_trials(Path(sys.argv[2]), int(sys.argv[3]), max_delay=float(sys.argv[4]), fork=False,
                           seed=int(sys.argv[5]))
        print(json.dumps(dataclasses.asdict(found)))
    else:
        sys.exit("usage: python -m tests.store.crashes writer DATA_DIR SEED\n"
                 "       python -m tests.store.crashes trials DATA_DIR TRIALS MAX_DELAY SEED")
