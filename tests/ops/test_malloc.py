"""The serving process tunes glibc's malloc (index.ops.malloc) before its workers fork."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_mallopt_is_accepted_and_a_forked_child_still_allocates():
    # In a process of its own: the setting lasts for the life of the process.
    script = ("import os, sys; from index.ops.malloc import limit_heap_growth; "
              "print(limit_heap_growth()); sys.stdout.flush(); pid = os.fork()\n"
              "if pid == 0:\n"
              "    blocks = [bytearray(300_000) for _ in range(50)]; del blocks; os._exit(0)\n"
              "print(os.waitpid(pid, 0)[1])")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "0"], done.stderr
