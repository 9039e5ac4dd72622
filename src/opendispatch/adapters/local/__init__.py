"""Local subprocess sprites: the embedded default for demos and development."""

from .sidecar import sidecar_path
from .sprites import LocalSprites

__all__ = ["LocalSprites", "sidecar_path"]
