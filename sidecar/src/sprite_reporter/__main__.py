"""`python3 -m sprite_reporter` (from sidecar/src), as the shipped zipapp runs it."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
