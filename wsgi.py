"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``.

Quiet like every admin command: only ``docker-index serve`` logs the effective settings.
"""
from index.ops.serving import create_app_or_exit

app = create_app_or_exit()
