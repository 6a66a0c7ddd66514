"""Tests that drive real components from Debian packages (a browser, an S3 server).

``require("chromium", "chromium")`` skips the calling test when the program is missing, with a
reason the end of the run lists; under CI (``CI=true``) a missing program fails the test
instead, because CI installs every package (.ci/run) and must never skip these tests.
"""
from __future__ import annotations

import os
import shutil

import pytest

SKIP_PREFIX = "needs the Debian package"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(program: str, package: str) -> str:
    """The path of ``program``; skip (locally) or fail (CI) when it is not installed."""
    path = shutil.which(program)
    if path is None:
        message = f"{SKIP_PREFIX} {package} ({program} not found; .ci/run installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
