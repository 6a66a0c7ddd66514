"""``python -m index``: the same command as the installed ``docker-index``."""
from .console import PROG_NAME, main

if __name__ == "__main__":
    main(prog_name=PROG_NAME)
