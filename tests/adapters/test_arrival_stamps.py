"""The fast path's listener knows when a request's bytes arrived, not when its task got to them."""

from __future__ import annotations

import socket

import trio

from opendispatch.adapters.webhook.fast.arrivals import StampedStream, stamp_arrivals


async def test_the_stamp_is_the_arrival_even_when_read_later_and_out_of_order() -> None:
    listener = socket.socket()
    stamp_arrivals(listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with listener:
        clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
        servers = [StampedStream(trio.SocketStream(trio.socket.from_stdlib_socket(listener.accept()[0]))) for _ in clients]
        clients[0].sendall(b"first")
        await trio.sleep(0.05)  # a gap the stamps must show (real time: the kernel stamps it)
        clients[1].sendall(b"second")
        await trio.sleep(0.05)
        read_at = trio.current_time()
        assert await servers[1].receive_some() == b"second"
        assert await servers[0].receive_some() == b"first"
        first, second = servers[0].last_arrival, servers[1].last_arrival
        assert first < second <= read_at
        assert 0.03 < second - first < 0.5
        assert read_at - second > 0.03  # the arrival, not the read
        for stream in servers:
            await stream.aclose()
        for client in clients:
            client.close()
