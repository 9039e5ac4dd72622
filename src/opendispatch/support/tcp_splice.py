"""Bytes both ways between two connections: what a proxy does once it knows where a
connection goes (a standby passing a request to the leader, the fast ingest path passing
non-sidecar requests to the app, a sandboxed sprite's forwarded ports and its HTTP proxy)."""

from __future__ import annotations

import trio

READ_BYTES = 64 * 1024
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def splice(
    near: trio.abc.HalfCloseableStream,
    far: trio.abc.HalfCloseableStream,
    first: bytes = b"",
    *,
    far_closing_ends: bool = False,
) -> None:
    """Send `first` to `far`, then copy both ways. Each side's end is passed on as a
    half-close, and the splice ends when both sides have ended, or at once when either breaks.
    `far_closing_ends`: it also ends when `far` has ended: an HTTP server that closed the
    connection will answer nothing more, and a kept-alive client need not hold it open."""

    async def copy(source: trio.abc.ReceiveStream, target: trio.abc.HalfCloseableStream, done: trio.CancelScope) -> None:
        try:
            while chunk := await source.receive_some(READ_BYTES):
                await target.send_all(chunk)
            await target.send_eof()
        except _GONE:
            done.cancel()  # one side broke off: nothing more can be passed on

    if first:
        try:
            await far.send_all(first)
        except _GONE:
            return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, near, far, nursery.cancel_scope)
        await copy(far, near, nursery.cancel_scope)
        if far_closing_ends:
            nursery.cancel_scope.cancel()
