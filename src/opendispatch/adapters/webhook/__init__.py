"""The HTTP server sprites report to (quart-trio on hypercorn)."""

from .app import build_webhook_app
from .server import WebhookListeners, bind_webhooks, serve_webhooks

__all__ = ["WebhookListeners", "bind_webhooks", "build_webhook_app", "serve_webhooks"]
