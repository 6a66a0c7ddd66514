"""Managing repositories and organizations: visibility, grants, teams, robots (issue 12's model)."""
from __future__ import annotations

from typing import Any


def organization_view(namespace: str, viewer: dict[str, Any] | None) -> dict[str, Any] | None:
    """Teams and members of organization ``namespace`` as ``viewer`` may see them; None when
    ``namespace`` is no organization."""
    return None


def robots_of(namespace: str, viewer: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The robot accounts of ``namespace`` (name, and token for its admins)."""
    return None
