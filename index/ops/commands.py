"""Every command of the index, registered here and nowhere else.

* ``flask --app wsgi <command>``: the app's own commands (:func:`register`, called by
  ``create_app``), run with the app and its data dir.
* ``python -m index <command>`` (:data:`group`): the app's commands too (the app is built when
  one of them runs), plus those that must work without it: ``serve`` checks the settings before
  building it, ``cert`` and ``self-check`` need no data dir, and ``restore`` must work on a data
  dir too damaged for the app to start.
"""
from __future__ import annotations

from flask import Flask
from flask.cli import FlaskGroup

from ..api.cli import COMMANDS as ACCESS_COMMANDS
from .backup import backup_command, restore_command, standalone_restore
from .certs import cert_command
from .cli import repositories, users
from .selfcheck import self_check_command
from .serving import create_app_or_exit, serve_command

APP_COMMANDS = (users, repositories, self_check_command, cert_command, backup_command, restore_command,
                *ACCESS_COMMANDS)


def register(app: Flask) -> None:
    """Add the app's commands to ``app.cli`` (``flask --app wsgi ...``)."""
    for command in APP_COMMANDS:
        app.cli.add_command(command)


group = FlaskGroup(
    name="python -m index", create_app=lambda: create_app_or_exit(),
    help="Docker index administration. Settings come from INDEX_* environment variables.")
for command in (serve_command, cert_command, self_check_command):
    group.add_command(command)
# Restoring must work when the data dir is too damaged for the app to start: it is the group's
# own command, so the app is never loaded for it.
group.add_command(standalone_restore, "restore")


def main() -> None:
    """``python -m index``."""
    group.main(prog_name="python -m index")
