"""A standby dispatcher's listener: every request goes on to the leader, byte for byte.

Dispatchers sharing a database (ports/cluster.py): sidecars and chat platforms reach whichever
machine Fly's proxy or `.internal` DNS picks. A standby answers `GET /health` itself (it is
healthy: ready to lead) and passes every other connection on to the leader's address as it
is, both ways, so the leader alone stores records and edits chat; no request is parsed here
beyond its first line. With no leader (the moment between one dying and the next starting),
it answers 503 with `Retry-After: 1`: sidecars keep their records and send them again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from urllib.parse import urlsplit

import trio

from ...support.tcp_splice import splice
from .server import _hypercorn_config, _public_url

log = logging.getLogger(__name__)

#: The most a request line may take before it is refused (hypercorn's and h11's order).
MAX_REQUEST_LINE = 16 * 1024
READ_SIZE = 64 * 1024


async def serve_standby(
    bind: str,
    leader_url: Callable[[], str | None],
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `bind` until cancelled, passing connections on to `leader_url()`."""
    sockets = _hypercorn_config(bind).create_sockets().insecure_sockets
    listeners = []
    for sock in sockets:
        sock.listen(1024)
        listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    host, port = sockets[0].getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    task_status.started(_public_url(f"http://{shown}:{port}"))
    await trio.serve_listeners(partial(_pass_on, leader_url), listeners)


async def _pass_on(leader_url: Callable[[], str | None], client: trio.SocketStream) -> None:
    async with client:
        try:
            head = await _request_line(client)
            if head is None:
                return
            if head.startswith((b"GET /health ", b"GET /health?")):
                await _answer(client, 200, {"status": "ok", "role": "standby", "leader": leader_url() is not None})
                return
            url = leader_url()
            if url is None:
                await _answer(client, 503, {"error": "no dispatcher leads at the moment; try again"}, retry_after=1)
                return
            parts = urlsplit(url)
            try:
                upstream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 80)
            except OSError as exc:
                log.warning("standby: cannot reach the leader at %s: %s", url, exc)
                await _answer(client, 503, {"error": "the leading dispatcher cannot be reached; try again"}, retry_after=1)
                return
            async with upstream:
                await splice(client, upstream, head, far_closing_ends=True)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return  # either side went away: the sidecar or platform sends again


async def _request_line(client: trio.SocketStream) -> bytes | None:
    """The bytes read until the request line is complete (None: closed or too long)."""
    head = b""
    while b"\n" not in head:
        if len(head) > MAX_REQUEST_LINE:
            await _answer(client, 414, {"error": "request line too long"})
            return None
        chunk = await client.receive_some(READ_SIZE)
        if not chunk:
            return None
        head += chunk
    return head


async def _answer(client: trio.SocketStream, status: int, body: dict[str, object], *, retry_after: int | None = None) -> None:
    reason = {200: "OK", 414: "URI Too Long", 503: "Service Unavailable"}[status]
    data = json.dumps(body).encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Connection: close",
    ]
    if retry_after is not None:
        headers.append(f"Retry-After: {retry_after}")
    await client.send_all(("\r\n".join(headers) + "\r\n\r\n").encode() + data)
