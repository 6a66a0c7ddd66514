"""What pages show that the API does not: Markdown descriptions, sizes, times, docker lines."""
from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import current_app, request
from markdown_it import MarkdownIt
from markupsafe import Markup

# CommonMark without raw HTML: whatever a user typed is escaped; markdown-it refuses
# javascript:, vbscript: and data: (except images) links by itself.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def markdown(text: str) -> Markup:
    return Markup(_MARKDOWN.render(text or ""))


def public_host() -> str:
    """The host docker users type: INDEX_PUBLIC_HOST, else the host this page was asked for."""
    return str(current_app.config["PUBLIC_HOST"] or request.host)


def size(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


_ISO_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?")


def when(value: str | None) -> str:
    """An ISO 8601 time (docker writes nanoseconds) as ``2026-12-03 10:31 UTC``."""
    if not value:
        return "-"
    match = _ISO_RE.fullmatch(value.strip())
    if match is None:
        return value[:40]
    offset = match.group(2) or "Z"
    parsed = datetime.fromisoformat(match.group(1) + ("+00:00" if offset == "Z" else offset))
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
