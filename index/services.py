"""What every request needs, built once per app: the store, the signers, the caches.

Settings are read from ``current_app.config``; everything built from them lives here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from flask import Response

from .current import this_app
from .names import RepoName
from .passwords import VerifiedCredentials
from .ratelimit import LoginThrottle, RegistrationThrottle
from .search_index import SearchIndex
from .store import Store
from .store.records import RepositoryRecord
from .tokens import ActivationLinks, TokenSigner

if TYPE_CHECKING:
    from .activity import Activity

EXTENSION_KEY = "docker_index"


class RegistryHooks(Protocol):
    """What the index's routes ask of the built-in registry (index.registry), when it is on."""

    def delete_repository(self, name: RepoName) -> Response:
        """The registry side of ``DELETE /v1/repositories/<ns>/<repo>/`` (a Token request)."""

    def repository_removed(self, record: RepositoryRecord) -> None:
        """The index removed this repository record: drop layers nothing references any more."""

    def repository_moved(self, old: RepoName, record: RepositoryRecord) -> None:
        """Repository ``old`` now lives as ``record`` (another namespace): its images follow."""

    def account_removed(self, username: str, account_id: str) -> int:
        """Account ``username`` is gone: what it and its robots uploaded must satisfy no later
        account of that name."""

    def principal_removed(self, name: str) -> int:
        """Robot ``name`` is gone: a new robot of that name must satisfy none of its uploads."""


@dataclass
class Services:
    store: Store
    signer: TokenSigner
    credentials: VerifiedCredentials
    activation: ActivationLinks
    login_throttle: LoginThrottle
    registration_throttle: RegistrationThrottle
    search: SearchIndex  # this worker's search index (built at the first query, then kept fresh)
    activity: Activity  # pull/push counts (batched)
    registry: RegistryHooks | None = None  # None when INDEX_REGISTRY_ENDPOINTS names external ones



def services() -> Services:
    found: Services = this_app().extensions[EXTENSION_KEY]
    return found
