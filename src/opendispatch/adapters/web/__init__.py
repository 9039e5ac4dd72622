"""The web view of jobs (docs/web.md): pages, a live stream and downloads on the dispatcher's
own server, reached through signed, expiring links handed out in chat."""

from .routes import add_web_routes

__all__ = ["add_web_routes"]
