"""The fast path's listener: sidecar requests served on trio + h11, everything else passed on
to the plain app on hypercorn (OPENDISPATCH_FAST_INGEST=1; every test here runs on it).

Raw bytes over a loopback socket, so a test decides exactly what shares a connection.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import pytest
import trio

from harness import Harness, open_harness
from opendispatch.adapters.webhook.fast import SIDECAR_FRONT, SidecarFront
from opendispatch.adapters.webhook.fast.listener import serve_listening_sockets
from webhook_paths import fast_ingest  # noqa: F401  (autouse: the fast path)

CEILING_S = 10.0


async def connect(h: Harness) -> trio.SocketStream:
    url = urlsplit(h.running.webhook_url)
    assert url.hostname == "127.0.0.1" and url.port is not None
    return await trio.open_tcp_stream(url.hostname, url.port)


def post(path: str, body: Any, token: str = "nope", extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
    )
    return head.encode() + data


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def answers(socket: trio.SocketStream, count: int) -> list[tuple[int, dict[str, str], Any]]:
    """Read `count` answers (informational ones included) in order from one connection."""
    # h11's client parses answers only to requests it sent; we wrote raw bytes, so each
    # answer gets a fresh client that "sent" a dummy request, and leftovers move forward.
    results: list[tuple[int, dict[str, str], Any]] = []
    buffered = b""
    with trio.fail_after(CEILING_S):
        while len(results) < count:
            client = h11.Connection(h11.CLIENT)
            client.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
            client.send(h11.EndOfMessage())
            if buffered:
                client.receive_data(buffered)  # (an empty call would mean "closed")
            status, headers, body = 0, {}, bytearray()
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(await socket.receive_some())
                    continue
                if isinstance(event, h11.InformationalResponse):
                    results.append((event.status_code, {}, None))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    results.append((status, headers, json.loads(body)))
                    buffered = client.trailing_data[0]
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return results
    return results


async def closed(socket: trio.SocketStream) -> bool:
    with trio.fail_after(CEILING_S):
        while True:
            try:
                if not await socket.receive_some():
                    return True
            except trio.BrokenResourceError:
                return True


def test_the_front_takes_only_the_sidecar_endpoints() -> None:
    front = SidecarFront({"/webhooks/logs": None, "/webhooks/status": None}, streams=None)  # type: ignore[dict-item]
    assert front.takes(b"POST /webhooks/logs HTTP/1.1\r\n")
    assert front.takes(b"POST /webhooks/status?x=1 HTTP/1.1\r\n")
    assert not front.takes(b"POST /webhooks/logsX HTTP/1.1\r\n")
    assert not front.takes(b"GET /webhooks/logs HTTP/1.1\r\n")
    assert not front.takes(b"POST /webhooks/stream HTTP/1.1\r\n")  # no streams configured
    assert not front.takes(b"POST http://host/webhooks/logs HTTP/1.1\r\n")
    assert not front.takes(b"GET /health HTTP/1.1\r\n")


async def test_one_connection_carries_sidecar_requests_then_passes_the_rest_on_to_hypercorn() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        token = (await h.sidecar()).token
        socket = await connect(h)
        # Pipelined in one write: two for the front, then one it must pass on with the
        # bytes it has already read, then one more that goes on to hypercorn too.
        await socket.send_all(
            post("/webhooks/status", {"jobId": job.id, "status": "running"}, token)
            + post("/webhooks/logs", {"jobId": job.id, "seq": 0, "lines": ["hello"]}, "wrong")
            + get("/health")
            + post("/webhooks/logs", {"jobId": job.id, "seq": 0, "lines": ["hello"]}, token)
        )
        got = await answers(socket, 4)
        assert [status for status, _, _ in got] == [200, 401, 200, 200]
        assert got[0][2] == {"ok": True}
        assert got[1][2]["ok"] is False and "www-authenticate" in got[1][1]
        assert got[2][2]["ok"] is True  # /health, from the Quart app
        assert got[3][2]["ok"] is True  # answered by the Quart route: the same contract
        assert await h.store.output(job.id) == ["hello"]
        await socket.aclose()


async def test_a_malformed_request_gets_400_and_the_connection_closes() -> None:
    async with open_harness() as h:
        socket = await connect(h)
        await socket.send_all(b"POST /webhooks/logs HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        got = await answers(socket, 1)
        assert got[0][0] == 400 and got[0][2]["ok"] is False
        assert await closed(socket)


async def test_a_body_over_the_limit_is_refused_before_it_is_all_read() -> None:
    async with open_harness() as h:
        socket = await connect(h)
        size = 2 * 1024 * 1024
        await socket.send_all(
            f"POST /webhooks/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode() + b"x" * 1_100_000
        )
        got = await answers(socket, 1)
        assert got[0][0] == 413 and got[0][1].get("connection") == "close"
        await socket.aclose()


async def test_expect_100_continue_is_honoured() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        token = (await h.sidecar()).token
        socket = await connect(h)
        request = post("/webhooks/logs", {"jobId": job.id, "seq": 0, "lines": ["hi"]}, token, "Expect: 100-continue\r\n")
        head, body = request.split(b"\r\n\r\n", 1)
        await socket.send_all(head + b"\r\n\r\n")
        first = await socket.receive_some()
        assert first.startswith(b"HTTP/1.1 100 ")
        await socket.send_all(body)
        got = await answers(socket, 1)
        assert got[0][0] == 200
        assert await h.store.output(job.id) == ["hi"]
        await socket.aclose()


async def test_a_client_that_never_finishes_its_request_is_closed() -> None:
    async with open_harness() as h:
        front = h.running.webhook_app.extensions[SIDECAR_FRONT]
        front.request_timeout_s = 0.2
        socket = await connect(h)
        await socket.send_all(b"POST /webhooks/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        assert await closed(socket)


async def test_a_burst_of_connections_waits_in_the_backlog_instead_of_being_dropped() -> None:
    """A thousand sidecars connect at once after a deploy: the kernel must queue them.

    The connects below run on the event loop's own thread, so the server cannot accept any
    of them until they are done: each one completes only if the listen backlog has room.
    With hypercorn's default backlog (100) the kernel drops the SYNs past it and the client
    waits 1 s, 3 s, 7 s... to retry; here every connect must complete at once.
    """
    burst = 600
    if _kernel_listen_cap() < burst + 100:
        pytest.skip("net.core.somaxconn caps every backlog below this test's burst")
    async with open_harness() as h:
        url = urlsplit(h.running.webhook_url)
        assert url.hostname is not None and url.port is not None
        opened: list[socket.socket] = []
        try:
            for _ in range(burst):
                opened.append(socket.create_connection((url.hostname, url.port), timeout=0.5))
        except TimeoutError:
            pass
        finally:
            for sock in opened:
                sock.close()
        assert len(opened) == burst


def _kernel_listen_cap() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 0


async def test_connections_waiting_together_are_accepted_together_while_the_loop_is_busy() -> None:
    """trio's own accept loop takes one connection per scheduling round; under load (a
    thousand streams) that left the last sidecars unread for seconds. Here a busy task
    counts the rounds it takes to accept a burst that waits in the backlog."""
    burst = 200
    listener = socket.create_server(("127.0.0.1", 0), backlog=burst * 2)
    accepted: list[trio.SocketStream] = []
    all_in = trio.Event()
    rounds = 0

    async def handler(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        if len(accepted) == burst:
            all_in.set()

    async def busy() -> None:
        nonlocal rounds
        while True:
            await trio.lowlevel.checkpoint()
            rounds += 1

    clients: list[socket.socket] = []
    try:
        with trio.fail_after(CEILING_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_listening_sockets, [listener], handler)
                nursery.start_soon(busy)
                await trio.lowlevel.checkpoint()
                address = listener.getsockname()
                clients = [socket.create_connection(address, timeout=1.0) for _ in range(burst)]  # all wait together
                rounds = 0
                await all_in.wait()
                assert rounds < 10, f"{rounds} rounds to accept {burst} waiting connections"
                nursery.cancel_scope.cancel()
    finally:
        for client in clients:
            client.close()
        for stream in accepted:
            stream.socket.close()


async def test_a_shutdown_closes_every_accepted_connection() -> None:
    """Clients (a session's long-poll) must see the connection end when the server stops,
    even one whose handler holds it and is cancelled, so that they reconnect at once."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[trio.SocketStream] = []
    both_in = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        held.append(stream)  # kept referenced: garbage collection cannot close it for us
        if len(held) == 2:
            both_in.set()
        await trio.sleep_forever()

    clients = [socket.create_connection(listener.getsockname(), timeout=CEILING_S) for _ in range(2)]
    try:
        with trio.fail_after(CEILING_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_listening_sockets, [listener], handler)
                await both_in.wait()
                nursery.cancel_scope.cancel()
        for client in clients:
            assert await trio.to_thread.run_sync(client.recv, 1) == b""  # end of stream, not a hang
    finally:
        for client in clients:
            client.close()
        listener.close()


@pytest.mark.parametrize(
    "started",
    [
        b"GET /health HTTP/1.1\r\nX-Slow: ",  # hypercorn's path: the line is in, the headers trickle
        b"GET /heal",  # the request line itself never ends
        b"POST /webhooks/logs HTTP/1.1\r\nHost: x\r\n",  # the sidecar path
    ],
)
async def test_a_request_head_that_does_not_arrive_in_time_closes_the_connection(started: bytes) -> None:
    """A slow head held a connection (and its descriptor) for good on hypercorn's path."""
    async with open_harness() as h:
        front = h.running.webhook_app.extensions[SIDECAR_FRONT]
        assert isinstance(front, SidecarFront)
        front.head_timeout_s = front.request_timeout_s = 0.3
        socket = await connect(h)
        await socket.send_all(started)
        received = b""
        with trio.fail_after(CEILING_S):
            while chunk := await socket.receive_some():
                received += chunk
        assert received == b"" or received.startswith(b"HTTP/1.1 408 ")
        # ...and the server is fine: /health answers on a new connection.
        healthy = await connect(h)
        await healthy.send_all(get("/health"))
        [(status, _, _)] = await answers(healthy, 1)
        assert status == 200


def test_serve_raises_the_open_file_limit_to_what_the_system_allows() -> None:
    import resource

    from opendispatch.bootstrap import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        raised = raise_open_file_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        assert raised == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_one_setting_turns_the_fast_path_on() -> None:
    from opendispatch.config import Config

    assert Config.from_env({}, dotenv=None).fast_ingest is False  # the default: Quart on hypercorn
    assert Config.from_env({"OPENDISPATCH_FAST_INGEST": "1"}, dotenv=None).fast_ingest is True
    assert [p.message for p in Config.problems({"OPENDISPATCH_FAST_INGEST": "maybe"})] == [
        "OPENDISPATCH_FAST_INGEST='maybe' must be 1 or 0 (true/false, yes/no, on/off)."
    ]
