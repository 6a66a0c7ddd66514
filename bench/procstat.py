"""What the kernel says about the processes under test: resident memory, CPU time, children.

The one reader of ``/proc`` for every bench script (memory and CPU figures must be taken the
same way everywhere to be comparable).
"""
from __future__ import annotations

import os
from pathlib import Path


def status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``, ``VmHWM``); 0 when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mib(pids: list[int]) -> float:
    """The resident memory of these processes together, in MiB."""
    return sum(status_kib(pid, "VmRSS") for pid in pids) / 1024


def children(pid: int) -> list[int]:
    """The direct children of a process (all its threads' children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    """A process and everything it started, at any depth."""
    found, queue = [], [pid]
    while queue and len(found) < 10_000:
        current = queue.pop()
        found.append(current)
        queue += children(current)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
