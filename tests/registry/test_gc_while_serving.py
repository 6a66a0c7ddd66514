"""``docker-index gc`` from another process while a real gunicorn server takes pushes and deletes."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import image_id
from tests.processes import clean_env

from .layers import chain

SCRIPT = Path(sys.executable).parent / "docker-index"
ROUNDS = 6


def _gc(data_dir: Path, env: dict[str, str] | None) -> subprocess.CompletedProcess:
    """The gc command, with the server's settings (its bucket, when its layers are in S3)."""
    return subprocess.run([str(SCRIPT), "--data-dir", str(data_dir), "gc"], env=clean_env(env or {}),
                          capture_output=True, text=True, timeout=120)


def test_gc_beside_pushes_and_deletes_breaks_none_of_them(server):
    pusher = server.register("gcbeside")
    kept_layers = chain([image_id(0xA00 + n) for n in range(2)], salt="kept")
    pusher.push("gcbeside/kept", kept_layers)
    runs: list[subprocess.CompletedProcess] = []
    stop = threading.Event()

    def collect_repeatedly():
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            runs.append(_gc(server.data_dir, server.env))

    collector = threading.Thread(target=collect_repeatedly)
    collector.start()
    try:
        for n in range(ROUNDS):   # pushes (new layers) and deletes while gc runs beside them
            layers = chain([image_id(0xB00 + 2 * n), image_id(0xB01 + 2 * n)], salt=f"round{n}")
            pusher.push(f"gcbeside/app{n}", layers)
            assert pusher.pull(f"gcbeside/app{n}")[layers[-1].image_id][1] == layers[-1].body
            if n % 2:
                pusher.delete(f"gcbeside/app{n}")
    finally:
        stop.set()
        collector.join(150)
    assert runs and all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    # Everything still referenced is whole; gc never took a layer a repository uses.
    for n in range(0, ROUNDS, 2):
        pulled = pusher.pull(f"gcbeside/app{n}")
        assert len(pulled) == 2
    assert pusher.pull("gcbeside/kept")[kept_layers[-1].image_id][1] == kept_layers[-1].body
    for run in runs:
        assert "removed image" not in run.stdout   # all young: within the grace time, kept
