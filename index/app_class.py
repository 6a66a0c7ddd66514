"""The Flask class the index is built on: Flask, minus a cost it pays on every request.

Flask passes every hook and view through ``ensure_sync`` on every request, and that asks
``inspect.iscoroutinefunction`` each time: eleven calls per request here, about a tenth of a
ping's time in the app (bench/README.md, "What the profile showed, and what changed"). The index
registers only plain functions, once, at start-up, so the answer for each is worked out once and
kept.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

# Hooks and views are registered once; a bound on the cache keeps a surprise from growing it.
_MAX_REMEMBERED = 1024


class IndexApp(Flask):
    """``Flask`` whose ``ensure_sync`` remembers its answer for each function."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._synced[func]
        except KeyError:
            pass
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)
        synced = super().ensure_sync(func)
        if len(self._synced) < _MAX_REMEMBERED:
            self._synced[func] = synced
        return synced
