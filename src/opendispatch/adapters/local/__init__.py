"""Local sprites: the embedded default for demos, development and a single-host `serve`.

On Linux with bubblewrap, each sprite runs in a sandbox (`sandbox.py`, `network.py`);
`sandbox_problem()` says why it cannot where it cannot.
"""

from .sandbox import sandbox_problem
from .sidecar import sidecar_path
from .sprites import LocalSprites

__all__ = ["LocalSprites", "sandbox_problem", "sidecar_path"]
