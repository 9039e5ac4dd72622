"""Every open stream's body read by one task, from one epoll set of our own.

Why: with a task per stream reading its own body, each record woke that task: trio armed
the socket in its epoll again (a system call), resumed the connection's coroutine through
its eight frames and moved the stream's idle deadline. A thousand streams send thousands
of records a second, and those wake-ups were the largest share of the server's CPU left
(docs/performance.md, round 8). Here a stream's socket joins an epoll set once, level-
triggered, and stays armed; one task waits on the set and, each time it wakes, reads every
socket that has data and applies their records. The connection's own task only waits for
its stream to end, then answers.

Linux only (`select.epoll`): the fast path is (config.py refuses OPENDISPATCH_FAST_INGEST
elsewhere); the default path reads a stream's body through Quart (stream.py).
"""

from __future__ import annotations

import enum
import os
import select
from collections.abc import Sequence

import attrs
import trio

from ....domain.job import Job
from ....ports.sidecar_inbound import StreamSink
from ..stream import RecordSplitter, Tally, apply_records
from .body_framing import BodyFraming

RECEIVE_BYTES = 65536
#: Sockets taken from the set per wake-up; more ready ones are taken at the next (the set is
#: level-triggered, so none is missed).
READY_PER_WAKE = 4096

AVAILABLE = hasattr(select, "epoll")


class StreamEnd(enum.Enum):
    COMPLETE = "complete"  # the body ended as framed: answer it
    BROKEN = "broken"  # the connection closed or broke its framing inside the body
    IDLE = "idle"  # nothing came for the read timeout


def decode(framing: BodyFraming, received: bytes, closed: bool) -> tuple[bytes, StreamEnd | None]:
    """Body bytes in what was received, and how the body ended if it did: what came before
    a break is kept, the fault ends the stream as a broken connection."""
    data = framing.feed(received) if received else b""
    if framing.error is not None:
        return data, StreamEnd.BROKEN
    if framing.done:
        return data, StreamEnd.COMPLETE
    if closed:
        return data, StreamEnd.BROKEN
    return data, None


@attrs.define(eq=False)
class _Followed:
    fd: int
    job: Job
    framing: BodyFraming
    records: RecordSplitter
    tally: Tally
    last_read: float
    done: trio.Event = attrs.Factory(trio.Event)
    end: StreamEnd | None = None
    error: Exception | None = None


class StreamHub:
    """Reads the bodies of the streams handed to it (`follow`) until each one ends."""

    def __init__(self, sink: StreamSink, *, read_timeout_s: float) -> None:
        self.sink = sink
        self.read_timeout_s = read_timeout_s
        #: How often streams are checked for idleness: a tenth of the timeout, at most 1 s.
        self.idle_check_s = min(1.0, read_timeout_s / 10.0)
        self._epoll: select.epoll | None = None
        self._followed: dict[int, _Followed] = {}

    @property
    def running(self) -> bool:
        return self._epoll is not None

    @property
    def following(self) -> int:
        """How many streams are being read now."""
        return len(self._followed)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read until cancelled; a stream still followed then ends as broken (its sidecar resumes)."""
        epoll = select.epoll()
        self._epoll = epoll
        try:
            task_status.started()
            next_idle_check = trio.current_time() + self.idle_check_s
            while True:
                with trio.move_on_at(next_idle_check):
                    await trio.lowlevel.wait_readable(epoll.fileno())
                # Outside the deadline's scope: records being applied are never cut off.
                await self._read_ready(epoll.poll(0, READY_PER_WAKE))
                now = trio.current_time()
                if now >= next_idle_check:
                    self._end_idle(now)
                    next_idle_check = now + self.idle_check_s
        finally:
            self._epoll = None
            for followed in list(self._followed.values()):
                self._end(followed, StreamEnd.BROKEN)
            epoll.close()

    async def follow(
        self,
        stream: trio.SocketStream,
        job: Job,
        framing: BodyFraming,
        records: RecordSplitter,
        tally: Tally,
        already_received: bytes,
        closed: bool,
    ) -> StreamEnd:
        """Apply the stream's records as they come; how its body ended.

        Raises what applying a record raised (`RecordTooLarge`, `JobClosed`), for the
        connection to answer. `already_received` is what came with the request's head.
        """
        data, end = decode(framing, already_received, closed)
        await apply_records(self.sink, job, records.feed(data), tally)
        if end is not None:
            return end
        epoll = self._epoll
        if epoll is None:
            raise trio.ClosedResourceError("the stream hub has stopped")
        fd = stream.socket.fileno()
        followed = _Followed(fd, job, framing, records, tally, last_read=trio.current_time())
        self._followed[fd] = followed
        epoll.register(fd, select.EPOLLIN)
        try:
            await followed.done.wait()
        finally:
            self._forget(followed)
        if followed.error is not None:
            raise followed.error
        assert followed.end is not None
        return followed.end

    async def _read_ready(self, ready: Sequence[tuple[int, int]]) -> None:
        """Read every ready socket first, then apply their records: one sweep per wake-up."""
        received: list[tuple[_Followed, list[bytes], StreamEnd | None]] = []
        now = trio.current_time()
        for fd, _ in ready:
            followed = self._followed.get(fd)
            if followed is None or followed.done.is_set():
                continue  # it ended while its event waited
            try:
                chunk = os.read(fd, RECEIVE_BYTES)
            except BlockingIOError:
                continue  # a spurious wake-up
            except OSError:  # ECONNRESET and the like: the client went away
                chunk, broken = b"", True
            else:
                broken = not chunk
            followed.last_read = now
            try:
                data, end = decode(followed.framing, chunk, broken)
                received.append((followed, followed.records.feed(data), end))
            except Exception as exc:  # RecordTooLarge, or a bug: that stream ends, not the hub
                self._end(followed, error=exc)
        for followed, records, end in received:
            if followed.done.is_set():
                continue
            try:
                await apply_records(self.sink, followed.job, records, followed.tally)
            except Exception as exc:  # JobClosed, RecordTooLarge: the connection answers it
                self._end(followed, error=exc)
                continue
            if end is not None:
                self._end(followed, end)

    def _end_idle(self, now: float) -> None:
        for followed in list(self._followed.values()):
            if now - followed.last_read >= self.read_timeout_s:
                self._end(followed, StreamEnd.IDLE)

    def _end(self, followed: _Followed, end: StreamEnd | None = None, *, error: Exception | None = None) -> None:
        """Stop reading the stream now (its connection answers or closes it)."""
        self._forget(followed)
        followed.end, followed.error = end, error
        followed.done.set()

    def _forget(self, followed: _Followed) -> None:
        if self._followed.get(followed.fd) is followed:
            del self._followed[followed.fd]
            if self._epoll is not None:
                try:
                    self._epoll.unregister(followed.fd)
                except (OSError, ValueError):
                    pass  # already closed
