"""Summarise py-spy's raw (collapsed) stacks: where a server worker spends its samples.

    py-spy record -p <worker pid> -d 10 -r 200 --nonblocking --format raw -o stacks.txt
    python bench/profile_summary.py stacks.txt [--top 25] [--match index/]

Prints the functions with the most samples, inclusive (the function or anything it called) and
self (the function itself), as a share of all samples. Line numbers are folded together.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (to/file.py)``: short, line-independent."""
    frame = _LINE.sub(")", frame.strip())
    name, _, location = frame.partition(" (")
    parts = location.rstrip(")").split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if location else name


def summarise(path: Path, top: int, match: str) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";") if frame]
        total += count
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", f"{'inclusive':>9}  function"]
    lines += [f"{100 * n / total:>8.1f}%  {name}" for name, n in inclusive.most_common()
              if match in name][:top]
    lines += ["", f"{'self':>9}  function"]
    lines += [f"{100 * n / total:>8.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only inclusive rows whose name contains this")
    args = parser.parse_args()
    print(summarise(args.stacks, args.top, args.match))


if __name__ == "__main__":
    main()
