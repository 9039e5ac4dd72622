"""The stream hub: one task reads every stream's body (real sockets on 127.0.0.1).

The sink is an in-memory StreamSink; each stream is a loopback TCP connection whose client
end the test writes chunk by chunk, as a sidecar's HTTP client would after the head.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from opendispatch.adapters.webhook.fast.body_framing import ChunkedBody
from opendispatch.adapters.webhook.stream import RecordSplitter, RecordTooLarge, Tally
from opendispatch.adapters.webhook.fast.stream_hub import AVAILABLE, StreamEnd, StreamHub
from opendispatch.domain.errors import JobClosed
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.sidecar import LogBatch

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="the stream hub needs epoll (Linux)")

MAX_RECORD_BYTES = 1024


def job(job_id: str) -> Job:
    return Job.queued(job_id, JobSpec(task="x", agent=AgentKind.SHELL), Conversation("c", "t"), User("u", "u"), at=0.0)


def chunk(seq: int, *lines: str) -> bytes:
    """One record in its own HTTP chunk, as the sidecar sends it."""
    record = json.dumps({"seq": seq, "lines": list(lines)}).encode() + b"\n"
    return b"%x\r\n%s\r\n" % (len(record), record)


LAST_CHUNK = b"0\r\n\r\n"


class Sink:
    """A StreamSink that keeps what it is given; a job in `closed` refuses records."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self.closed: set[str] = set()
        self.broken: set[str] = set()
        self.changed = trio.Event()

    async def open_stream(self, authorization: str | None, job_id: object) -> Job:
        return job(str(job_id))

    async def accept_stream_records(self, job: Job, batches: Sequence[LogBatch]) -> None:
        if job.id in self.closed:
            raise JobClosed(job.id)
        if job.id in self.broken:
            raise RuntimeError("a bug in the sink")
        for batch in batches:
            self.lines.setdefault(job.id, []).extend(batch.lines)
        self.changed.set()
        self.changed = trio.Event()

    async def last_seq(self, job_id: str) -> int | None:
        return None

    def stream_batch_interval_ms(self) -> int | None:
        return None

    async def until(self, job_id: str, lines: list[str]) -> None:
        with trio.fail_after(10):
            while self.lines.get(job_id, []) != lines:
                await self.changed.wait()


class Pair:
    """A loopback connection: the server end followed by the hub, the client end for the test."""

    def __init__(self, server: trio.SocketStream, client: trio.SocketStream) -> None:
        self.server, self.client = server, client


@asynccontextmanager
async def loopback() -> AsyncIterator[Pair]:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = trio.socket.socket()
    await client.connect(listener.getsockname())
    server, _ = await listener.accept()
    listener.close()
    pair = Pair(trio.SocketStream(server), trio.SocketStream(client))
    try:
        yield pair
    finally:
        await trio.aclose_forcefully(pair.client)
        await trio.aclose_forcefully(pair.server)


@asynccontextmanager
async def running_hub(sink: Sink, read_timeout_s: float = 60.0) -> AsyncIterator[StreamHub]:
    hub = StreamHub(sink, read_timeout_s=read_timeout_s)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        yield hub
        nursery.cancel_scope.cancel()


class Follower:
    """A connection's task following its stream through the hub; `end` once it returns."""

    def __init__(self, hub: StreamHub, pair: Pair, job_id: str, already: bytes = b"") -> None:
        self.hub, self.pair, self.job_id, self.already = hub, pair, job_id, already
        self.end: StreamEnd | None = None
        self.error: Exception | None = None
        self.tally = Tally()
        self.done = trio.Event()

    async def run(self) -> None:
        records = RecordSplitter(MAX_RECORD_BYTES)
        try:
            self.end = await self.hub.follow(
                self.pair.server, job(self.job_id), ChunkedBody(), records, self.tally, self.already, False
            )
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    async def result(self) -> StreamEnd | Exception | None:
        with trio.fail_after(10):
            await self.done.wait()
        return self.error if self.error is not None else self.end


@asynccontextmanager
async def one_followed_stream(already: bytes = b"") -> AsyncIterator[tuple[Sink, Pair, Follower]]:
    """A running hub following one stream (job j-1) from a connection's task."""
    sink = Sink()
    async with running_hub(sink) as hub, loopback() as pair, trio.open_nursery() as nursery:
        follower = Follower(hub, pair, "j-1", already)
        nursery.start_soon(follower.run)
        yield sink, pair, follower


@pytest.mark.trio
async def test_records_of_many_streams_are_applied_in_order_and_each_body_ends_complete() -> None:
    sink = Sink()
    async with running_hub(sink) as hub, loopback() as a, loopback() as b, trio.open_nursery() as nursery:
        followers = [Follower(hub, a, "j-a"), Follower(hub, b, "j-b")]
        for follower in followers:
            nursery.start_soon(follower.run)
        await trio.testing.wait_all_tasks_blocked()
        for seq in range(3):
            await a.client.send_all(chunk(seq, f"a{seq}"))
            await b.client.send_all(chunk(seq, f"b{seq}", f"b{seq}'"))
        await sink.until("j-a", ["a0", "a1", "a2"])
        await sink.until("j-b", ["b0", "b0'", "b1", "b1'", "b2", "b2'"])
        assert not followers[0].done.is_set()  # the body has not ended yet
        await a.client.send_all(LAST_CHUNK)
        await b.client.send_all(LAST_CHUNK)
        assert [await f.result() for f in followers] == [StreamEnd.COMPLETE, StreamEnd.COMPLETE]
        assert [f.tally.records for f in followers] == [3, 3]


@pytest.mark.trio
async def test_what_came_with_the_head_is_applied_before_the_socket_is_read() -> None:
    async with one_followed_stream(already=chunk(0, "early") + chunk(1, "with the head")) as (sink, pair, follower):
        await sink.until("j-1", ["early", "with the head"])
        await pair.client.send_all(chunk(2, "later") + LAST_CHUNK)
        assert await follower.result() is StreamEnd.COMPLETE
        assert sink.lines["j-1"] == ["early", "with the head", "later"]


@pytest.mark.trio
async def test_a_record_split_across_reads_is_applied_once_whole() -> None:
    async with one_followed_stream() as (sink, pair, follower):
        data = chunk(0, "one whole line") + LAST_CHUNK
        for i in range(len(data)):
            await pair.client.send_all(data[i : i + 1])
            await trio.testing.wait_all_tasks_blocked()
        assert await follower.result() is StreamEnd.COMPLETE
        assert sink.lines["j-1"] == ["one whole line"]


@pytest.mark.trio
async def test_a_connection_reset_mid_body_keeps_what_came_before_and_other_streams_go_on() -> None:
    sink = Sink()
    async with running_hub(sink) as hub, loopback() as a, loopback() as b, trio.open_nursery() as nursery:
        gone, staying = Follower(hub, a, "j-gone"), Follower(hub, b, "j-stays")
        nursery.start_soon(gone.run)
        nursery.start_soon(staying.run)
        await a.client.send_all(chunk(0, "kept"))
        await sink.until("j-gone", ["kept"])
        # A reset (RST, not FIN): SO_LINGER with a zero timeout, then close.
        a.client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.client.socket.close()
        assert await gone.result() is StreamEnd.BROKEN
        await b.client.send_all(chunk(0, "still read") + LAST_CHUNK)
        assert await staying.result() is StreamEnd.COMPLETE
        assert sink.lines == {"j-gone": ["kept"], "j-stays": ["still read"]}


@pytest.mark.trio
async def test_a_body_that_ends_without_its_last_chunk_is_broken() -> None:
    async with one_followed_stream() as (sink, pair, follower):
        await pair.client.send_all(chunk(0, "before the close"))
        await pair.client.send_eof()
        assert await follower.result() is StreamEnd.BROKEN
        assert sink.lines["j-1"] == ["before the close"]


@pytest.mark.trio
async def test_broken_chunk_framing_ends_the_stream_keeping_what_came_before() -> None:
    async with one_followed_stream() as (sink, pair, follower):
        await pair.client.send_all(chunk(0, "good") + b"zz\r\nnot a chunk size\r\n")
        assert await follower.result() is StreamEnd.BROKEN
        assert sink.lines["j-1"] == ["good"]


@pytest.mark.trio
async def test_a_stream_idle_for_the_read_timeout_ends_idle(autojump_clock: trio.testing.MockClock) -> None:
    sink = Sink()
    async with running_hub(sink, read_timeout_s=30.0) as hub, loopback() as quiet, loopback() as busy:
        async with trio.open_nursery() as nursery:
            idle, talking = Follower(hub, quiet, "j-quiet"), Follower(hub, busy, "j-busy")
            nursery.start_soon(idle.run)
            nursery.start_soon(talking.run)
            began = trio.current_time()
            for seq in range(4):  # one record every 10 s keeps this one open
                await busy.client.send_all(chunk(seq, str(seq)))
                await trio.sleep(10)
            assert await idle.result() is StreamEnd.IDLE
            assert 30.0 <= trio.current_time() - began <= 40.0
            assert not talking.done.is_set()
            await busy.client.send_all(LAST_CHUNK)
            assert await talking.result() is StreamEnd.COMPLETE


@pytest.mark.trio
async def test_a_record_over_the_limit_is_raised_for_the_connection_to_answer() -> None:
    async with one_followed_stream() as (sink, pair, follower):
        await pair.client.send_all(chunk(0, "fine"))
        await sink.until("j-1", ["fine"])
        await pair.client.send_all(chunk(1, "x" * (2 * MAX_RECORD_BYTES)))
        assert isinstance(await follower.result(), RecordTooLarge)
        assert sink.lines["j-1"] == ["fine"]


@pytest.mark.trio
async def test_a_closed_job_or_a_failing_sink_ends_only_that_stream_with_its_error() -> None:
    sink = Sink()
    sink.closed.add("j-closed")
    sink.broken.add("j-bug")
    async with running_hub(sink) as hub, loopback() as a, loopback() as b, loopback() as c:
        async with trio.open_nursery() as nursery:
            closed, bug, fine = Follower(hub, a, "j-closed"), Follower(hub, b, "j-bug"), Follower(hub, c, "j-fine")
            for follower in (closed, bug, fine):
                nursery.start_soon(follower.run)
            await trio.testing.wait_all_tasks_blocked()
            for pair in (a, b, c):
                await pair.client.send_all(chunk(0, "line"))
            assert isinstance(await closed.result(), JobClosed)
            assert isinstance(await bug.result(), RuntimeError)
            await c.client.send_all(LAST_CHUNK)
            assert await fine.result() is StreamEnd.COMPLETE
            assert sink.lines == {"j-fine": ["line"]}


@pytest.mark.trio
async def test_when_the_hub_stops_its_streams_end_broken_instead_of_hanging() -> None:
    sink = Sink()
    async with loopback() as pair, trio.open_nursery() as outer:
        hub = StreamHub(sink, read_timeout_s=60.0)
        async with trio.open_nursery() as hub_nursery:
            await hub_nursery.start(hub.run)
            follower = Follower(hub, pair, "j-1")
            outer.start_soon(follower.run)
            await pair.client.send_all(chunk(0, "read"))
            await sink.until("j-1", ["read"])
            hub_nursery.cancel_scope.cancel()
        assert await follower.result() is StreamEnd.BROKEN
        assert not hub.running
        with pytest.raises(trio.ClosedResourceError):
            await Follower(hub, pair, "j-2").hub.follow(
                pair.server, job("j-2"), ChunkedBody(), RecordSplitter(MAX_RECORD_BYTES), Tally(), b"", False
            )
