"""``python -m index``: serve, make a certificate, check a deployment, and the admin commands."""
from __future__ import annotations

from .ops.commands import main

if __name__ == "__main__":
    main()
