"""Serving the webhook app under the caller's nursery, reporting the bound URL when ready."""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
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


async def serve_webhooks(
    app: QuartTrio, bind: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; `started()` reports the real base URL (port 0 works).

    An app from `build_webhook_app` carries a `SidecarFront` (see front.py): the sidecars'
    requests are then served without hypercorn and Quart, which cost several times as much.
    """
    front = app.extensions.get(SIDECAR_FRONT)
    async with trio.open_nursery() as nursery:
        if isinstance(front, SidecarFront):
            binds = await nursery.start(serve_front, app, _hypercorn_config(bind), front)
        else:
            binds = await nursery.start(partial(serve, app, _hypercorn_config(bind), mode="asgi"))
        task_status.started(_public_url(binds[0]))


def _public_url(bound: str) -> str:
    """hypercorn reports `http://127.0.0.1:PORT`; a wildcard bind is reached via loopback."""
    return bound.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
