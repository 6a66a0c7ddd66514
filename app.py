"""Development launcher: ``python app.py [--host H] [--port P]`` (the same factory as wsgi.py)."""
import argparse

from index import create_app

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the Docker index with Flask's development server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--debug", action="store_true", help="reload on code changes")
    args = parser.parse_args()
    create_app().run(host=args.host, port=args.port, debug=args.debug, threaded=True)
