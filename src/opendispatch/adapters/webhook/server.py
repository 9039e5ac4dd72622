"""Serving the webhook app under the caller's nursery, on sockets bound before anything is built.

`bind_webhooks` creates the listening sockets (port 0 works: the real port is known at once,
so the composition root can hand sprites their callback URL before it builds the runner);
`serve_webhooks` serves the app on them until cancelled.
"""

from __future__ import annotations

import logging
import os
import socket

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.utils import repr_socket_addr
from quart_trio import QuartTrio

from .front import HYPERCORN_READ_TIMEOUT_S, SIDECAR_FRONT, SidecarFront, serve_front

GRACEFUL_TIMEOUT_S = 5.0

#: Connections the kernel may hold for us before we accept them (capped by net.core.somaxconn).
#: Why not hypercorn's 100: a thousand sidecars open their streams within a second of a
#: deploy or a busy start; past the backlog the kernel drops their SYNs and each client waits
#: 1 s, 3 s, 7 s... to retry, which was the multi-second tail of bench/relay at N = 1,000.
LISTEN_BACKLOG = 4096


def _hypercorn_config(bind: str) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [bind]
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    config.accesslog = None
    config.errorlog = logging.getLogger("opendispatch.webhook.server")  # through our logging setup
    config.keep_alive_timeout = 75.0  # sidecars keep one connection open between batches
    config.read_timeout = HYPERCORN_READ_TIMEOUT_S  # none by default: a trickled body held on
    config.backlog = LISTEN_BACKLOG
    return config


@attrs.define(eq=False)
class WebhookListeners:
    """Listening sockets, bound and listening (connections wait in the backlog until served)."""

    sockets: list[socket.socket]
    #: The base URL they are reached at (a wildcard bind is reached via loopback).
    url: str

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def bind_webhooks(bind: str) -> WebhookListeners:
    """Bind and listen on `bind` ("host:port", port 0 for any free one) now."""
    sockets = _hypercorn_config(bind).create_sockets().insecure_sockets  # plain HTTP: TLS ends at a proxy
    try:
        for sock in sockets:
            sock.listen(LISTEN_BACKLOG)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    first = sockets[0]
    return WebhookListeners(sockets, _public_url(f"http://{repr_socket_addr(first.family, first.getsockname())}"))


async def serve_webhooks(
    app: QuartTrio,
    bind: str | WebhookListeners,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled on `bind` (an address, or sockets from `bind_webhooks`, which are
    closed when this returns); `started()` reports the base URL.

    An app from `build_webhook_app` carries a `SidecarFront` (see front.py): the sidecars'
    requests are then served without hypercorn and Quart, which cost several times as much.
    """
    listeners = bind if isinstance(bind, WebhookListeners) else bind_webhooks(bind)
    front = app.extensions.get(SIDECAR_FRONT)
    try:
        async with trio.open_nursery() as nursery:
            if isinstance(front, SidecarFront):
                await nursery.start(serve_front, app, _hypercorn_config(""), front, listeners.sockets)
            else:
                await nursery.start(_serve_hypercorn, app, listeners.sockets)
            task_status.started(listeners.url)
    finally:
        listeners.close()


async def _serve_hypercorn(
    app: QuartTrio, sockets: list[socket.socket], *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
) -> None:
    """hypercorn's public `serve` on sockets already bound: handed over as `fd://` binds (the
    way a socket-activated server gets them), each a duplicate so that ours close as we like."""
    from hypercorn.trio import serve

    config = _hypercorn_config("")
    config.bind = [f"fd://{os.dup(sock.fileno())}" for sock in sockets]
    await serve(app, config, mode="asgi", task_status=task_status)


def _public_url(bound: str) -> str:
    """hypercorn reports `http://127.0.0.1:PORT`; a wildcard bind is reached via loopback."""
    return bound.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
