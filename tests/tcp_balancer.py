"""A loopback stand-in for Fly's proxy and `.internal` DNS: each connection goes to one of
several dispatchers, taking turns, skipping one that refuses (a dead machine)."""

from __future__ import annotations

import itertools
from functools import partial
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from opendispatch.support.tcp_splice import splice


@attrs.define
class Balancer:
    port: int
    #: Which target each connection went to, in order.
    picks: list[int] = attrs.Factory(list)


@asynccontextmanager
async def open_balancer(targets: Sequence[int]) -> AsyncIterator[Balancer]:
    turns = itertools.cycle(range(len(targets)))
    balancer = Balancer(port=0)

    async def connection(client: trio.SocketStream) -> None:
        async with client:
            first = next(turns)
            for index in [first, *(i for i in range(len(targets)) if i != first)]:
                try:
                    upstream = await trio.open_tcp_stream("127.0.0.1", targets[index])
                except OSError:
                    continue
                balancer.picks.append(targets[index])
                async with upstream:
                    await splice(client, upstream, far_closing_ends=True)
                return

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, connection, 0, host="127.0.0.1"))
        balancer.port = listeners[0].socket.getsockname()[1]
        yield balancer
        nursery.cancel_scope.cancel()
