"""``usage [NAMESPACE ...]``: storage each namespace's repositories hold in the built-in registry."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from .. import names
from ..services import services


@click.command("usage")
@click.argument("namespaces", nargs=-1)
@with_appcontext
def usage_command(namespaces: tuple[str, ...]) -> None:
    """Bytes (image json + layers) each NAMESPACE holds, against INDEX_NAMESPACE_QUOTA_BYTES.

    Without NAMESPACE: every namespace. A layer shared by several repositories of one namespace
    counts once; one shared with other namespaces counts in each.
    """
    from ..registry.core import Registry
    registry = services().registry
    if not isinstance(registry, Registry):
        raise click.ClickException("the built-in registry is off (INDEX_REGISTRY_ENDPOINTS is set)")
    for namespace in namespaces:
        if not names.NAMESPACE_RE.fullmatch(namespace):
            raise click.ClickException(f"invalid namespace {namespace!r}")
    quota = registry.quota_bytes
    click.echo(f"{'namespace':<32} {'bytes':>15} {'quota':>15} {'used':>6}")
    for namespace in namespaces or services().store.namespaces():
        used = registry.usage(namespace)
        share = f"{100 * used / quota:5.1f}%" if quota else "     -"
        click.echo(f"{namespace:<32} {used:>15} {quota or '-':>15} {share:>6}")
