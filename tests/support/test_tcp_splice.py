"""The one splice every proxy of ours uses: both ways, half-closes passed on, ends as it should."""

from __future__ import annotations

import trio
import trio.testing

from opendispatch.support.tcp_splice import splice


async def test_bytes_go_both_ways_and_each_end_is_passed_on() -> None:
    client, near = trio.testing.memory_stream_pair()
    far, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(splice, near, far, b"GET / HTTP/1.1\r\n")
        await client.send_all(b"Host: x\r\n\r\n")
        await client.send_eof()
        received = b""
        while chunk := await server.receive_some():
            received += chunk
        assert received == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        await server.send_all(b"HTTP/1.1 200 OK\r\n\r\n")
        await server.send_eof()
        answer = b""
        while chunk := await client.receive_some():
            answer += chunk
        assert answer == b"HTTP/1.1 200 OK\r\n\r\n"
    # both ended: the splice returned by itself


async def test_the_far_side_closing_ends_it_when_asked_though_the_near_side_stays_open() -> None:
    client, near = trio.testing.memory_stream_pair()
    far, server = trio.testing.memory_stream_pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: splice(near, far, far_closing_ends=True))
            await server.send_eof()
            assert await client.receive_some() == b""
    # the client never closed; the splice still returned


async def test_a_broken_side_ends_it() -> None:
    client, near = trio.testing.memory_stream_pair()
    far, server = trio.testing.memory_stream_pair()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(splice, near, far)
            await trio.testing.wait_all_tasks_blocked()
            await server.aclose()
            await client.send_all(b"into the void")
