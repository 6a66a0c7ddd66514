"""The world of callers every access test starts from (tests/access/world.py)."""
from __future__ import annotations

import pytest

from .world import World, build_world


@pytest.fixture
def world(tmp_path) -> World:
    return build_world(tmp_path)
