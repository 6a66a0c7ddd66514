"""``python -m index``: the same command as the installed ``docker-index``."""
from __future__ import annotations

from .ops.commands import PROG_NAME, main

if __name__ == "__main__":
    main(prog_name=PROG_NAME)
