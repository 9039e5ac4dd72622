"""Serving the webhook app under the caller's nursery, on sockets bound before anything is built.

The default path is the Quart app on hypercorn, through hypercorn's public API only; the
fast path for sidecars' output (fast/, one setting: OPENDISPATCH_FAST_INGEST) is chosen here.

`bind_webhooks` creates the listening sockets (port 0 works: the real port is known at once,
so the composition root can hand sprites their callback URL before it builds the runner);
`serve_webhooks` serves the app on them until cancelled.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import partial

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.utils import repr_socket_addr
from quart_trio import QuartTrio

from .reports import SIDECAR_ENDPOINTS, SidecarEndpoints

GRACEFUL_TIMEOUT_S = 5.0
#: How long an idle connection is kept for its next request: sidecars keep one open between batches.
KEEP_ALIVE_S = 75.0
#: hypercorn's `read_timeout` (none by default: a trickled body held on). It also runs while
#: a response is awaited, so it must outlast a session's long poll (25 s).
HYPERCORN_READ_TIMEOUT_S = 60  # whole seconds: hypercorn types it an int

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
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.read_timeout = HYPERCORN_READ_TIMEOUT_S
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
    fast_ingest: bool = False,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled on `bind` (an address, or sockets from `bind_webhooks`, which are
    closed when this returns); `started()` reports the base URL.

    By default the app is served by hypercorn. `fast_ingest` (OPENDISPATCH_FAST_INGEST; an app
    from `build_webhook_app`, Linux): the fast path (fast/) serves the sidecar endpoints on
    these sockets and passes every other request on to the app on a loopback port of its own.
    """
    listeners = bind if isinstance(bind, WebhookListeners) else bind_webhooks(bind)
    try:
        async with trio.open_nursery() as nursery:
            if fast_ingest:
                await nursery.start(_serve_fast, app, listeners.sockets)
            else:
                await nursery.start(_serve_hypercorn, app, listeners.sockets)
            task_status.started(listeners.url)
    finally:
        listeners.close()


async def _serve_fast(
    app: QuartTrio, sockets: list[socket.socket], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    from .fast import AVAILABLE, SIDECAR_FRONT, SidecarFront, serve_fast

    endpoints = app.extensions.get(SIDECAR_ENDPOINTS)
    if not isinstance(endpoints, SidecarEndpoints):
        raise ValueError("the fast ingest path serves an app built by build_webhook_app")
    if not AVAILABLE:
        raise RuntimeError("the fast ingest path needs Linux (select.epoll)")
    behind = bind_webhooks("127.0.0.1:0")  # the plain app, reached through the fast listener only
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_serve_hypercorn, app, behind.sockets)
            front = SidecarFront(endpoints.reports, endpoints.streams, on_answer=endpoints.on_answer)
            app.extensions[SIDECAR_FRONT] = front  # the timeouts and the hub, for tests to see
            upstream = behind.sockets[0].getsockname()[:2]
            await nursery.start(partial(serve_fast, sockets, front, upstream, idle_timeout_s=KEEP_ALIVE_S))
            task_status.started()
    finally:
        behind.close()


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
