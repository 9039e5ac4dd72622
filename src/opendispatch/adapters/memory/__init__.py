"""In-memory adapters: fakes for tests, demos and embedding."""

from .sprites import FakeSprites
from .store import MemoryJobStore
from .chat import MemoryChat

__all__ = ["FakeSprites", "MemoryChat", "MemoryJobStore"]
