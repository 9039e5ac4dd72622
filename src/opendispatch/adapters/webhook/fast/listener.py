"""The fast path's listener: the sidecar endpoints served here, every other request passed on.

Each connection's first request line is read here (with the head's deadline). Requests for
the sidecar endpoints are served by `SidecarFront` in the connection's own task (a stream's
body by the stream hub); the first request for anything else (chat platforms' webhooks,
`/metrics`, the web view, sessions' long polls), and everything after it on that connection,
goes on byte for byte to the plain server (Quart on hypercorn) on a loopback address of its
own: hypercorn is driven only through its public API, as on the default path.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence

import trio

from ....support.tcp_splice import splice
from .arrivals import StampedStream, stamp_arrivals
from .front import DRAIN_S, SidecarFront, read_first_line, read_whole_head

log = logging.getLogger(__name__)

_HEAD_TIMED_OUT_BODY = b'{"ok": false, "error": "the request head did not arrive in time"}'
_HEAD_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_HEAD_TIMED_OUT_BODY)}\r\n\r\n".encode()
    + _HEAD_TIMED_OUT_BODY
)


async def serve_fast(
    sockets: Sequence[socket.socket],
    front: SidecarFront,
    upstream: tuple[str, int],
    *,
    idle_timeout_s: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the listening `sockets` until cancelled: the sidecar requests `front` takes here,
    the rest passed on to `upstream` (host, port). An idle connection may wait
    `idle_timeout_s` for its next request (hypercorn's keep-alive timeout)."""
    for sock in sockets:
        stamp_arrivals(sock)

    async def connection(socket_stream: trio.SocketStream) -> None:
        """One connection's requests; `serve_listening_sockets` closes it afterwards."""
        stream = StampedStream(socket_stream)
        try:
            received: bytes | None = await read_first_line(stream, b"", idle_timeout_s, front.head_timeout_s)
            if received and front.takes(received):
                received = await front.serve(stream, received, idle_timeout_s=idle_timeout_s)
            if not received:
                return
            received = await read_whole_head(stream, received, front.head_timeout_s)
            if received is None:
                with trio.move_on_after(DRAIN_S):
                    await stream.send_all(_HEAD_TIMED_OUT)
                return
            async with await trio.open_tcp_stream(*upstream) as passed_on:
                await splice(stream, passed_on, received, far_closing_ends=True)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away
        except Exception:
            # One connection's failure must not take the server (and every job) down.
            log.exception("webhook connection failed")

    async with trio.open_nursery() as nursery:
        await nursery.start(front.run_stream_hub)
        await nursery.start(serve_listening_sockets, sockets, connection)
        task_status.started()


#: accept() errors that mean the process is out of file descriptors or memory: pause, retry.
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
#: accept() errors about one connection (it went away before we took it): skip it.
_CONNECTION_GONE = {errno.ECONNABORTED, errno.EPERM, errno.EPROTO}
ACCEPT_PAUSE_S = 0.1
ACCEPT_BATCH = 1024


async def serve_listening_sockets(
    sockets: Sequence[socket.socket],
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Like `trio.serve_listeners`, but every connection waiting is accepted at each wake-up.

    Why: trio's `accept` yields to the scheduler after each connection, so a busy server
    accepted one per round of its event loop (~10 ms under load): when a thousand sidecars
    connected at once, the last waited ten seconds, their records unread in the kernel.
    """
    async with trio.open_nursery() as nursery:
        for sock in sockets:
            sock.setblocking(False)
            nursery.start_soon(_accept_forever, sock, handler, nursery)
        task_status.started()


async def _accept_forever(
    sock: socket.socket, handler: Callable[[trio.SocketStream], Awaitable[object]], nursery: trio.Nursery
) -> None:
    while True:
        await trio.lowlevel.wait_readable(sock)
        for _ in range(ACCEPT_BATCH):  # then let the others run, even if more keep coming
            try:
                accepted, _ = sock.accept()
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in _CONNECTION_GONE:
                    continue
                if exc.errno in _OUT_OF_RESOURCES:
                    log.error("cannot accept connections (%s); retrying in %g s", exc.strerror, ACCEPT_PAUSE_S)
                    await trio.sleep(ACCEPT_PAUSE_S)
                    break
                raise
            nursery.start_soon(_serve_connection, handler, trio.SocketStream(trio.socket.from_stdlib_socket(accepted)))


async def _serve_connection(handler: Callable[[trio.SocketStream], Awaitable[object]], stream: trio.SocketStream) -> None:
    """The handler, then the connection closed whatever happened (a shutdown cancels handlers
    that may not have begun: the client must see the connection end, not wait on it)."""
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)
