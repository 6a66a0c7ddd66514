"""``python -m index restore ARCHIVE``: restore without starting the app (see index.backup)."""
from .backup import main

main(prog_name="python -m index")
