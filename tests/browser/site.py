"""A tiny static HTTP/1.1 server on 127.0.0.1 (Trio + h11) for browser tests that need pages
of their own rather than the dispatcher's: fixed resources by path, the same extra headers on
every response (a Content-Security-Policy, say), 404 for anything else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import h11
import trio


@dataclass(frozen=True)
class Resource:
    body: str | bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: Sequence[tuple[str, str]] = ()


@dataclass
class Site:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    requested: list[str] = field(default_factory=list)  # request targets, in arrival order


async def serve_site(
    nursery: trio.Nursery,
    resources: Mapping[str, Resource],
    headers: Sequence[tuple[str, str]] = (),
) -> Site:
    """Serve `resources` (by path, query ignored) until `nursery` is cancelled."""
    site = Site(url="")

    def respond(target: str) -> tuple[h11.Response, bytes]:
        resource = resources.get(target.split("?", 1)[0]) or Resource(
            "not found", "text/plain; charset=utf-8", 404
        )
        body = resource.body.encode() if isinstance(resource.body, str) else resource.body
        response = h11.Response(
            status_code=resource.status,
            headers=[
                ("Content-Type", resource.content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                *headers,
                *resource.headers,
            ],
        )
        return response, body

    async def handle(stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        target = ""
        try:
            async with stream:
                while True:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        connection.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Request):
                        target = event.target.decode("ascii", "replace")
                        site.requested.append(target)
                    elif isinstance(event, h11.EndOfMessage):
                        response, body = respond(target)
                        for part in (response, h11.Data(data=body), h11.EndOfMessage()):
                            data = connection.send(part)
                            if data:
                                await stream.send_all(data)
                        if connection.our_state is not h11.DONE or (
                            connection.their_state is not h11.DONE
                        ):
                            return
                        connection.start_next_cycle()
                    elif isinstance(event, h11.ConnectionClosed):
                        return
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    site.url = f"http://127.0.0.1:{port}"
    return site
