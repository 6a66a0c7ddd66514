"""Pytest fixtures for a real S3 server (Swift + s3api, tests/s3/swift.py), registered for the
whole suite in tests/conftest.py so any test can run against both layer stores.

``swift_s3`` starts one instance per test session (5-10 s) and stops it at the end; ``s3_bucket``
gives each test a bucket of its own; ``s3_environment`` points boto3 (in this process) at it.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.system import require

from .swift import SwiftS3, missing_programs, running_swift

_bucket_numbers = itertools.count(1)


def require_swift() -> None:
    """Skip (locally) or fail (CI) unless the Swift packages are installed."""
    for program, package in missing_programs():
        require(program, package)  # skips (or fails, in CI) on the first missing one


@pytest.fixture(scope="session")
def swift_s3(tmp_path_factory) -> Iterator[SwiftS3]:
    require_swift()
    with running_swift(tmp_path_factory.mktemp("swift")) as server:
        yield server


@pytest.fixture
def s3_environment(swift_s3, monkeypatch) -> SwiftS3:
    """boto3 in this process finds the test server (endpoint, credentials, region) and nothing
    of the developer's own AWS configuration."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in swift_s3.environment().items():
        monkeypatch.setenv(name, value)
    return swift_s3


def client_for(swift: SwiftS3) -> Any:
    """An S3 client of the index's kind, aimed at ``swift`` whatever this process's environment."""
    from index.registry.s3blobs import make_client
    return make_client(True, endpoint_url=swift.endpoint, aws_access_key_id=swift.access_key,
                       aws_secret_access_key=swift.secret_key, region_name=swift.region)


def blobs_for(swift: SwiftS3, location: str) -> Any:
    """An S3Blobs over ``location`` on ``swift`` (to look at what a server process stored)."""
    from index.config import parse_location
    from index.registry.s3blobs import S3Blobs
    return S3Blobs(parse_location(location), path_style=True, client_factory=lambda _: client_for(swift))


def new_bucket(swift: SwiftS3) -> str:
    name = f"test-{os.getpid()}-{next(_bucket_numbers)}"
    client_for(swift).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(s3_environment) -> str:
    """A new, empty bucket for one test."""
    return new_bucket(s3_environment)
