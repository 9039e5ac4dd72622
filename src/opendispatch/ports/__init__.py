"""The interfaces the application needs from the outside world (typing.Protocol)."""

from .chat import ChatPort, InboundHandler
from .job_store import JobStore
from .sprites import Sprite, SpritePort, SpriteRequest

__all__ = ["ChatPort", "InboundHandler", "JobStore", "Sprite", "SpritePort", "SpriteRequest"]
