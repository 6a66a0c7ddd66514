"""Keep a serving process's C heap from holding on to memory Python has given back.

glibc's malloc gives each thread that allocates its own arena (up to 8 per core), and after a
large block is freed it raises its mmap threshold, so later large blocks (a search that matches
100,000 repositories, the parse of a large data file) come from those arenas' heaps, which rarely
shrink. A worker at 100,000 repositories grew from 78 to 98-111 MiB over a few hundred
searches that way; with two arenas and a fixed threshold (large blocks mapped and unmapped) it
stayed at 82 MiB (bench/README.md, "Flat memory"). Elsewhere (musl, macOS) this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # mallopt parameters, from glibc's <malloc.h>
_M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept fixed


def limit_heap_growth() -> bool:
    """Set glibc's arena count and mmap threshold for this process and the workers it forks.

    True when they were set (glibc), False where there is no ``mallopt``.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_ARENA_MAX, ARENAS)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not done:
        log.warning("could not tune malloc (mallopt refused); memory may grow under large searches")
    return done
