"""The trivial Flask app of the server ceiling: ``GET /v1/_ping`` answering ``true``, nothing else.

What any server can do at best with Flask here; ``server_ceiling.py`` serves it under each
candidate server.
"""
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/v1/_ping")
def ping():
    return jsonify(True)


@app.post("/v1/users/")
def body():
    # Reads the whole body, as a JSON endpoint does: a trickling body holds this request.
    from flask import request
    return jsonify(len(request.get_data()))


def _bridged(inline=None):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from index.ops.wsgi_on_rsgi import WsgiOnRsgi
    return WsgiOnRsgi(app, threads=4, min_body_rate=500, body_grace=10.0, inline=inline)


# The same app through the index's RSGI bridge (granian --interface rsgi trivial_app:bridged).
bridged = _bridged()
# The same, with requests without a body run on the event loop's thread.
bridged_inline = _bridged(lambda environ: True)
