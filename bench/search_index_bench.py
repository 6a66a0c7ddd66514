"""The search index in one process, without HTTP: build time, memory, query and refresh times.

    .venv/bin/python bench/search_index_bench.py [--repositories 100000]

Fills a data dir (on /dev/shm when there is one) with the same generator as http_bench.py (bench/dataset.py), then
prints: the first query (which builds the index), the memory it added, each bench search term
and a few harder ones (20 runs each), what a query costs right after a write and once the
folder's time is old, and queries that each follow a write by another ``Store`` (another worker).
"""
from __future__ import annotations

import argparse
import functools
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataset  # noqa: E402

from index.search_index import RACY_NS, SearchIndex  # noqa: E402
from index.store import Store  # noqa: E402

HARDER = ["a", "e", "", "nginx-proxy", "-", "team3/"]
WRITES = 50


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_ms(action, runs: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        action()
    return (time.perf_counter() - started) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repositories", type=int, default=100_000)
    args = parser.parse_args()
    scratch_parent = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    data_dir = Path(tempfile.mkdtemp(prefix="index-search-bench-", dir=scratch_parent))
    try:
        namespaces = dataset.populate(data_dir, args.repositories, [], seed=args.repositories,
                                         bulk=args.repositories > dataset.BULK_ABOVE)
        store = Store(data_dir)
        store.open()  # parses every file, as a starting worker does
        print(f"{args.repositories:,} repositories in {namespaces:,} namespaces")
        before = max_rss_mb()
        index = SearchIndex(store)
        print(f"first query (builds the index): {timed_ms(lambda: index.search('x', 0, 25)):.0f} ms, "
              f"max RSS {before:.0f} -> {max_rss_mb():.0f} MB")
        print(f"{'query':<16} {'matches':>8} {'ms/query':>9}")
        for term in dataset.SEARCH_TERMS + HARDER:
            total = index.search(term, 0, 25)[0]
            print(f"{term!r:<16} {total:>8} {timed_ms(functools.partial(index.search, term, 0, 25), 20):>9.3f}")
        store.announce_repository("library", "fresh", [{"id": "a" * 64}], owner="library")
        print(f"first query after a write: {timed_ms(lambda: index.search('fresh', 0, 25)):.1f} ms "
              f"(found {index.search('fresh', 0, 25)[0]})")
        time.sleep(2 * RACY_NS / 1e9)
        index.search("fresh", 0, 25)
        print(f"once the folder's time is {2 * RACY_NS / 1e6:.0f} ms old: "
              f"{timed_ms(lambda: index.search('fresh', 0, 25), 20):.3f} ms")
        # Another worker pushing while this one answers searches: each query follows a write.
        other = Store(data_dir)
        after_write = []
        for n in range(WRITES):
            other.announce_repository(f"team{n % 7}", f"pushed{n}", [{"id": f"{n:064x}"}], owner=f"team{n % 7}")
            after_write.append(timed_ms(lambda: index.search("pushed", 0, 25)))
        after_write.sort()
        found = index.search("pushed", 0, 25)[0]
        print(f"{WRITES} queries, each right after a write by another Store: p50 "
              f"{after_write[WRITES // 2]:.3f} ms, max {after_write[-1]:.3f} ms (found {found})")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
