"""Chat on a terminal: the chat adapter of `opendispatch demo`."""

from .chat import ConsoleChat

__all__ = ["ConsoleChat"]
