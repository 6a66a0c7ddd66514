"""What every request needs, built once per app: the store, the token signer, the credential cache."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

from .passwords import VerifiedCredentials
from .store import Store
from .tokens import TokenSigner

if TYPE_CHECKING:
    from .activation import ActivationLinks

EXTENSION_KEY = "docker_index"


@dataclass
class Services:
    store: Store
    signer: TokenSigner
    credentials: VerifiedCredentials
    config: dict[str, Any]
    activation: "ActivationLinks | None" = None


def services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
