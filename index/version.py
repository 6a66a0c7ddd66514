"""The project's version: pyproject.toml reads it from here, ``docker-index --version`` prints it."""
__version__ = "0.2.0"
