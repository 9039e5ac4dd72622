"""The HTTP server sprites report to (quart-trio on hypercorn)."""

from .app import build_webhook_app
from .server import serve_webhooks

__all__ = ["build_webhook_app", "serve_webhooks"]
