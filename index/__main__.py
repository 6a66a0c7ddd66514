"""``python -m index``: serve, make a certificate, check a deployment, and the admin commands."""
from __future__ import annotations

from flask.cli import FlaskGroup

from .backup import standalone_restore
from .certs import cert_command
from .selfcheck import self_check_command
from .serving import create_app_or_exit, serve_command

cli = FlaskGroup(
    name="python -m index", create_app=lambda: create_app_or_exit(),
    help="Docker index administration. Settings come from INDEX_* environment variables.")
for command in (serve_command, cert_command, self_check_command):
    cli.add_command(command)
# Restoring must work when the data dir is too damaged for the app to start: it is the group's
# own command, so the app is never loaded for it.
cli.add_command(standalone_restore, "restore")

if __name__ == "__main__":
    cli.main(prog_name="python -m index")
