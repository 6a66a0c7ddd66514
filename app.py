"""Development launcher: ``python app.py [--debug]`` (the same factory as wsgi.py).

Flask's development server, with the reloader under ``--debug``; address, port and TLS come from
the same INDEX_* settings as ``make run``. For anything but development use ``make run``.
"""
import argparse

from werkzeug.serving import WSGIRequestHandler

from index.ops.serving import create_app_or_exit


class QuietRequestHandler(WSGIRequestHandler):
    """The app logs one line per request itself; Werkzeug's line would add the query string."""

    def log_request(self, code="-", size="-") -> None:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the Docker index with Flask's development server.")
    parser.add_argument("--debug", action="store_true", help="reload on code changes")
    args = parser.parse_args()
    app = create_app_or_exit()
    tls = (app.config["TLS_CERT"], app.config["TLS_KEY"]) if app.config["TLS_CERT"] else None
    app.run(host=app.config["HOST"], port=app.config["PORT"], debug=args.debug, threaded=True,
            ssl_context=tls, request_handler=QuietRequestHandler)
