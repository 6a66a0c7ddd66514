"""What every request needs, built once per app: the store, the signers, the caches.

Settings are read from ``current_app.config``; everything built from them lives here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from flask import Response, current_app

from .names import RepoName
from .passwords import VerifiedCredentials
from .ratelimit import LoginThrottle, RegistrationThrottle
from .search_index import SearchIndex
from .store import Store
from .tokens import ActivationLinks, TokenSigner

EXTENSION_KEY = "docker_index"


class RegistryHooks(Protocol):
    """What the index's routes ask of the built-in registry (index.registry), when it is on."""

    def delete_repository(self, name: RepoName) -> Response:
        """The registry side of ``DELETE /v1/repositories/<ns>/<repo>/`` (a Token request)."""

    def repository_removed(self, record: dict[str, Any]) -> None:
        """The index removed this repository record: drop layers nothing references any more."""


@dataclass
class Services:
    store: Store
    signer: TokenSigner
    credentials: VerifiedCredentials
    activation: ActivationLinks
    login_throttle: LoginThrottle
    registration_throttle: RegistrationThrottle
    search: SearchIndex  # this worker's search index (built at the first query, then kept fresh)
    registry: RegistryHooks | None = None  # None when INDEX_REGISTRY_ENDPOINTS names external ones


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
