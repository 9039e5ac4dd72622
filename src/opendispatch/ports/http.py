"""Inbound HTTP routes that an adapter (Slack HTTP mode, Discord interactions, Teams) needs.

Framework-free values, so a chat adapter can add endpoints to our one webhook server
without importing it (adapters never import each other); the webhook adapter mounts them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import attrs


@attrs.frozen
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    query: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)


RouteHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@attrs.frozen
class HttpRoute:
    path: str
    handler: RouteHandler
    methods: tuple[str, ...] = ("POST",)
