"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``."""
from index.ops.serving import create_app_or_exit, log_effective_settings

app = create_app_or_exit()
log_effective_settings(app)
