"""Every command of the index, registered here and nowhere else.

* ``docker-index <command>`` (:func:`main`, the installed console script; ``python -m index`` is
  the same): serving, certificates and self-check need no data dir; the admin commands (users,
  repositories, backup, gc, rotate-key, and whatever other parts add in :func:`register`) open the
  index of ``--data-dir`` / ``INDEX_DATA_DIR`` and refuse a directory that holds none, rather than
  quietly creating an empty index somewhere else. Nothing is loaded, created or logged before a
  command actually runs: ``docker-index --help`` only prints. ``restore`` never builds the app, so
  it works on a data dir too damaged for the app to start.
* ``flask --app wsgi <command>``: the app's own commands (:func:`register`, called by
  ``create_app``), run with the app and its data dir.
"""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask import Flask
from flask.cli import ScriptInfo, with_appcontext

from ..api.cli import COMMANDS as ACCESS_COMMANDS
from ..events.cli import audit_group, notifications_group
from ..version import __version__
from .backup import backup_command, restore_command, standalone_restore
from .certs import cert_command
from .cli import repositories, rotate_key_command, users
from .gc import gc_command
from .selfcheck import self_check_command
from .serving import create_app_or_exit, serve_command
from .usage import usage_command

APP_COMMANDS = (users, repositories, self_check_command, cert_command, backup_command, restore_command,
                usage_command, gc_command, rotate_key_command, *ACCESS_COMMANDS, audit_group, notifications_group)


def register(app: Flask) -> None:
    """Add the app's commands to ``app.cli`` (``flask --app wsgi ...``, and found by ``main``)."""
    for command in APP_COMMANDS:
        app.cli.add_command(command)


PROG_NAME = "docker-index"


def holds_index(data_dir: Path) -> bool:
    """True once a server (or an admin command) has prepared ``data_dir`` (it has ``db/``)."""
    return (data_dir / "db").is_dir()


def _admin_app() -> Flask:
    """The app on the configured data dir, or one clear line and exit 2 when there is no index."""
    from ..config import configured_data_dir
    from .serving import fail
    data_dir = configured_data_dir()
    if not holds_index(data_dir):
        fail(f"no index data in {data_dir}; start the server once or pass --data-dir")
    return create_app_or_exit()


class IndexGroup(click.Group):
    """The built-in commands, then whatever other parts registered on the app's ``cli``."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        from ..config import configured_data_dir
        _prepare(ctx)  # click looks the command up before the group's own callback runs
        if not holds_index(configured_data_dir()):
            return None  # "No such command": never create an index to look a name up
        app = ctx.obj.load_app()
        found: click.Command | None = app.cli.get_command(ctx, cmd_name)
        if found is not None:
            ctx.with_resource(app.app_context())
        return found


@click.group(cls=IndexGroup, name=PROG_NAME, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name=PROG_NAME, message="%(prog)s %(version)s")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="INDEX_DATA_DIR",
              help="The index's data directory (default: INDEX_DATA_DIR, else ./data).")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """Docker index (API v1): serve it, and administer its data.

    Settings come from INDEX_* environment variables (see the README's Settings table).
    """
    _prepare(ctx)


def _prepare(ctx: click.Context) -> None:
    """Apply ``--data-dir`` and set up the lazy app loader (idempotent)."""
    data_dir = ctx.params.get("data_dir")
    if data_dir is not None:
        # Every later reader (the app, serve's workers, restore) takes it from the settings.
        os.environ["INDEX_DATA_DIR"] = str(data_dir)
    if not isinstance(ctx.obj, ScriptInfo):
        ctx.obj = ScriptInfo(create_app=_admin_app, set_debug_flag=False)


def needs_app(command: click.Command) -> click.Command:
    """Run ``command`` inside the app of the configured index (loaded only when it runs)."""
    if command.callback is not None and not getattr(command.callback, "_needs_app", False):
        command.callback = with_appcontext(command.callback)
        command.callback._needs_app = True  # type: ignore[attr-defined]
    return command


for _command in (serve_command, cert_command, self_check_command, users, repositories, gc_command,
                 rotate_key_command, *ACCESS_COMMANDS):
    main.add_command(_command)
main.add_command(needs_app(backup_command))
# Restoring must work when the data dir is too damaged for the app to start, and onto an empty
# one: the app is never loaded for it.
main.add_command(standalone_restore, "restore")
