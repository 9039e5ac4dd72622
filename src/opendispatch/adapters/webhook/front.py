"""The webhook server's listener: the sidecar endpoints on trio + h11, the rest on hypercorn.

Why: a request through hypercorn and Quart costs ~1-3 ms of the server's one core (more
with a thousand connections open), and every chunk of a stream wakes several tasks
(hypercorn's reader, the ASGI queue, Quart's body, the handler). With a thousand sprites
that is the whole budget (docs/performance.md). What sidecars send is simple: a JSON POST
with a Bearer token, or one streaming POST whose body is NDJSON. So this listener reads the
first request line of each connection and serves the sidecar endpoints itself, with h11,
in the connection's own task; a stream's body is read by the stream hub (stream_hub.py),
one task for every open stream, and the connection's task answers when it ends. Any other
request (chat platforms' webhooks, /metrics, sessions' long polls), and everything after it
on that connection, goes to hypercorn, which is handed the bytes already read.

The Quart routes for the same endpoints stay (app.py): an embedder who serves
`build_webhook_app()` with their own ASGI server gets the same answers (reports.py and
stream.py hold the logic both use), at the Quart price.

This runs hypercorn's per-connection server (`hypercorn.trio.tcp_server.TCPServer`) the way
`hypercorn.trio.serve` does; pyproject.toml pins hypercorn's minor version for that reason.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app
from quart_trio import QuartTrio

from ...domain.errors import InvalidToken, JobClosed
from ...domain.job import Job
from .body_framing import BodyFraming, ChunkedBody, LengthBody
from .reports import MAX_BODY_BYTES, TOO_LARGE, Answer, ReportHandler, error
from ...ports.sidecar_inbound import StreamSink
from .stream import STREAM_PATH, RecordSplitter, RecordTooLarge, Tally, answer_body, apply_records
from .stream_hub import AVAILABLE as STREAM_HUB_AVAILABLE
from .stream_hub import StreamEnd, StreamHub, decode

log = logging.getLogger(__name__)

#: Where `build_webhook_app` leaves the app's SidecarFront for `serve_webhooks`.
SIDECAR_FRONT = "opendispatch.sidecar_front"

RECEIVE_BYTES = 65536
MAX_HEAD_BYTES = 16384
#: A stream may sit idle between records (the sidecar ends one after 5 s without output).
STREAM_READ_TIMEOUT_S = 60.0
#: A request's head and body must arrive within this (a stream's records are timed apart).
REQUEST_TIMEOUT_S = 30.0
#: From a request's first byte, its head (request line and headers) must arrive within this,
#: on every path: hypercorn gives a head no deadline of its own once its first line is in, so
#: a client trickling headers held a connection (and its file descriptor) for good.
REQUEST_HEAD_TIMEOUT_S = 10.0
#: hypercorn's `read_timeout`: a request body (a chat platform's webhook) must keep coming.
#: It also runs while a response is awaited, so it must outlast a session's long poll (25 s).
HYPERCORN_READ_TIMEOUT_S = 60  # whole seconds: hypercorn types it an int
#: After an early answer the client may still be sending; read and drop its body this long
#: so that closing does not reset the connection before the answer is read.
DRAIN_S = 2.0


class _Close(Exception):
    """The connection cannot carry another request (an early answer, a protocol error)."""


class SidecarFront:
    """Serves the sidecar endpoints on connections the front listener gives it.

    `serve` answers requests on one connection for as long as they are for sidecar
    endpoints and the client keeps the connection alive, and returns the bytes of a request
    for anything else (to be handed to hypercorn), or None when the connection is done.
    """

    def __init__(
        self,
        reports: Mapping[str, ReportHandler],
        streams: StreamSink | None,
        *,
        on_answer: Callable[[str, int], None] | None = None,
        read_timeout_s: float = STREAM_READ_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        head_timeout_s: float = REQUEST_HEAD_TIMEOUT_S,
    ) -> None:
        self.reports = dict(reports)
        self.streams = streams
        self.on_answer = on_answer
        self.read_timeout_s = read_timeout_s
        self.request_timeout_s = request_timeout_s
        self.head_timeout_s = head_timeout_s
        #: Reads every stream's body in one task while `serve_front` runs it (stream_hub.py).
        self.hub: StreamHub | None = None
        lines = [b"POST " + path.encode() for path in self.reports]
        if streams is not None:
            lines += [b"POST " + STREAM_PATH.encode(), b"GET " + STREAM_PATH.encode()]
        self._request_lines = tuple(line + end for line in lines for end in (b" ", b"?"))

    async def run_stream_hub(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read the streams' bodies together until cancelled (where epoll exists; else each
        connection reads its own)."""
        if self.streams is None or not STREAM_HUB_AVAILABLE:
            task_status.started()
            return
        hub = StreamHub(self.streams, read_timeout_s=self.read_timeout_s)
        try:
            self.hub = hub
            await hub.run(task_status=task_status)
        finally:
            self.hub = None

    def takes(self, first_line: bytes) -> bool:
        """Whether a request that starts with this line is for a sidecar endpoint."""
        return first_line.startswith(self._request_lines)

    async def serve(self, stream: trio.abc.Stream, already_read: bytes, *, idle_timeout_s: float) -> bytes | None:
        received = already_read
        while True:
            # The request's first bytes came with the last read (or an earlier one, when
            # the client sent requests back to back): that read's stamp is its arrival.
            arrived_at = stream.last_arrival if isinstance(stream, StampedStream) else None
            http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
            http.receive_data(received)
            try:
                await self._one_request(http, stream, arrived_at)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, _Close):
                return None
            except h11.RemoteProtocolError:
                await self._try_answer(http, stream, error(400, "malformed HTTP request"))
                return None
            if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                return None  # a stream, or a client that asked to close
            received, closed = http.trailing_data
            if closed:
                return None
            received = await read_first_line(stream, bytes(received), idle_timeout_s, self.head_timeout_s)
            if not received:
                return None
            if not self.takes(received):
                return received

    async def _one_request(self, http: h11.Connection, stream: trio.abc.Stream, arrived_at: float | None) -> None:
        with trio.fail_after(self.request_timeout_s):
            request = await self._next_event(http, stream)
        if not isinstance(request, h11.Request):
            raise _Close()
        target = urlsplit(request.target.decode("ascii", "replace"))
        authorization = _header(request, b"authorization")
        if target.path == STREAM_PATH and self.streams is not None:
            job_id: str | None = (parse_qs(target.query).get("jobId") or [None])[0]  # type: ignore[list-item]
            if request.method == b"GET":
                await self._resume_point(http, stream, self.streams, authorization, job_id)
            else:
                await self._stream(http, request, stream, self.streams, authorization, job_id)
            return
        path = target.path
        await _continue_if_asked(http, stream)
        with trio.fail_after(self.request_timeout_s):
            body = await self._body(http, stream)
        if body is None:
            await self._answer_early(http, stream, path, TOO_LARGE)
            return
        await self._answer(http, stream, path, await self.reports[path](authorization, body, arrived_at))

    async def _body(self, http: h11.Connection, stream: trio.abc.Stream) -> bytes | None:
        """The whole request body, or None as soon as it is over the size limit."""
        parts = bytearray()
        while True:
            event = await self._next_event(http, stream)
            if isinstance(event, h11.Data):
                parts += event.data
                if len(parts) > MAX_BODY_BYTES:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return bytes(parts)
            else:
                raise _Close()

    async def _resume_point(
        self, http: h11.Connection, stream: trio.abc.Stream, sink: StreamSink, authorization: str | None, job_id: str | None
    ) -> None:
        with trio.fail_after(self.request_timeout_s):
            await self._body(http, stream)  # a GET has none; read the end of the request
        job = await _opened(sink, authorization, job_id)
        if isinstance(job, Answer):
            await self._answer(http, stream, STREAM_PATH, job)
            return
        await self._answer(http, stream, STREAM_PATH, Answer(200, await answer_body(sink, job, Tally())))

    async def _stream(
        self,
        http: h11.Connection,
        request: h11.Request,
        stream: trio.abc.Stream,
        sink: StreamSink,
        authorization: str | None,
        job_id: str | None,
    ) -> None:
        """One stream: records applied as they arrive; answered at the end, then closed."""
        job = await _opened(sink, authorization, job_id)
        if isinstance(job, Answer):
            await self._answer_early(http, stream, STREAM_PATH, job)
            return
        await _continue_if_asked(http, stream)
        tally = Tally()
        records = RecordSplitter(MAX_BODY_BYTES)
        framing = request_framing(request)
        try:
            hub = self.hub
            socket_stream = stream.inner if isinstance(stream, StampedStream) else stream
            if hub is not None and hub.running and isinstance(socket_stream, trio.SocketStream):
                unread, closed = http.trailing_data
                end = await hub.follow(socket_stream, job, framing, records, tally, bytes(unread), closed)
            else:
                end = await self._read_stream(_StreamBody(http, framing, stream), sink, job, records, tally)
            if end is not StreamEnd.COMPLETE:
                return  # broken or stalled: the sidecar asks where to resume when it is back
        except RecordTooLarge:
            body = await answer_body(sink, job, tally, records.too_large_message)
            await self._answer_early(http, stream, STREAM_PATH, Answer(413, body))
            return
        except JobClosed as exc:
            await self._answer_early(http, stream, STREAM_PATH, Answer(409, await answer_body(sink, job, tally, str(exc))))
            return
        if records.unfinished():
            tally.reject("the last record does not end with a newline")
        await self._answer(http, stream, STREAM_PATH, Answer(200, await answer_body(sink, job, tally)), close=True)

    async def _read_stream(
        self, body: _StreamBody, sink: StreamSink, job: Job, records: RecordSplitter, tally: Tally
    ) -> StreamEnd:
        """The stream's body read in this connection's task (no hub): how it ended."""
        # The idle deadline moves in steps of a tenth of the timeout (at most a second):
        # moving it costs a timer-heap entry, and a stream carries several records a second.
        step = min(1.0, self.read_timeout_s / 10.0)
        with trio.CancelScope(deadline=trio.current_time() + self.read_timeout_s) as idle:
            while True:
                quiet_until = trio.current_time() + self.read_timeout_s
                if quiet_until - idle.deadline >= step:
                    idle.deadline = quiet_until
                data, end = await body.so_far()
                await apply_records(sink, job, records.feed(data), tally)
                if end is not None:
                    return end
        return StreamEnd.IDLE

    @staticmethod
    async def _next_event(http: h11.Connection, stream: trio.abc.Stream) -> Any:
        while True:
            event = http.next_event()
            if event is not h11.NEED_DATA:
                return event
            http.receive_data(bytes(await stream.receive_some(RECEIVE_BYTES)))

    async def _answer(
        self, http: h11.Connection, stream: trio.abc.Stream, path: str, answer: Answer, *, close: bool = False
    ) -> None:
        data = answer.encoded()
        headers = [*answer.headers, ("Content-Length", str(len(data)))]
        if close and answer.status != 413:
            headers.append(("Connection", "close"))
        if self.on_answer is not None:
            self.on_answer(path, answer.status)
        out = http.send(h11.Response(status_code=answer.status, headers=headers))
        out += http.send(h11.Data(data=data))
        out += http.send(h11.EndOfMessage())
        await stream.send_all(out)

    async def _answer_early(self, http: h11.Connection, stream: trio.abc.Stream, path: str, answer: Answer) -> None:
        """Answer before the body ended, then close: the sidecar reads it when it next writes."""
        await self._answer(http, stream, path, answer, close=True)
        with trio.move_on_after(DRAIN_S):
            while await stream.receive_some(RECEIVE_BYTES):
                pass
        raise _Close()

    async def _try_answer(self, http: h11.Connection, stream: trio.abc.Stream, answer: Answer) -> None:
        if http.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            await self._answer(http, stream, "malformed", answer, close=True)
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _opened(sink: StreamSink, authorization: str | None, job_id: str | None) -> Job | Answer:
    """The job a stream request is for, or the refusal to answer with (401, 409)."""
    try:
        return await sink.open_stream(authorization, job_id)
    except InvalidToken as exc:
        return error(401, str(exc))
    except JobClosed as exc:
        return error(409, str(exc))


async def _continue_if_asked(http: h11.Connection, stream: trio.abc.Stream) -> None:
    if http.client_is_waiting_for_100_continue:
        await stream.send_all(http.send(h11.InformationalResponse(status_code=100, headers=[])))


def request_framing(request: h11.Request) -> BodyFraming:
    """How the request's body is framed; h11 accepted the head, so its framing is valid
    (a Transfer-Encoding can only be chunked, a Content-Length is one number)."""
    if _header(request, b"transfer-encoding") is not None:
        return ChunkedBody()
    return LengthBody(int(_header(request, b"content-length") or 0))


class _StreamBody:
    """A stream's body as it arrives: h11 parsed the head, the framing is decoded here.

    What h11 had received past the head is taken over from it (`trailing_data`); after the
    head h11 is only used to send the answer, which it allows before the body ended.
    """

    def __init__(self, http: h11.Connection, framing: BodyFraming, stream: trio.abc.Stream) -> None:
        self._framing = framing
        self._stream = stream
        self._unread, self._closed = http.trailing_data
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) and os.name == "posix" else None

    async def _receive(self) -> bytes:
        """What the client sent next; b"" once it closed.

        Why not `receive_some`: trio first tries a read, which here nearly always finds the
        socket drained (the last call took all it had) and fails by raising, then waits and
        reads again, inside two context managers. With a thousand streams that was ~6 % of
        the server's CPU (docs/performance.md, round 6); waiting first, then reading, is the
        same system calls without the failed one.
        """
        if self._fd is None:
            return bytes(await self._stream.receive_some(RECEIVE_BYTES))  # bytes already: no copy
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                return os.read(self._fd, RECEIVE_BYTES)
            except BlockingIOError:
                continue  # a spurious wake-up
            except OSError as exc:  # ECONNRESET and the like: the client went away
                raise trio.BrokenResourceError(str(exc)) from exc

    async def so_far(self) -> tuple[bytes, StreamEnd | None]:
        """All body bytes received so far (waiting for some if there are none yet), and how
        the body ended if it did (None: more to come).

        A stream's records each come in their own HTTP chunk; taking every chunk that
        arrived together lets the records be stored together. What arrived before the
        connection broke is returned too, so that it is stored.
        """
        while True:
            received, self._unread = self._unread, b""
            if not received and not self._closed:
                try:
                    received = await self._receive()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return b"", StreamEnd.BROKEN
                self._closed = not received
            data, end = decode(self._framing, received, self._closed)
            if data or end is not None:
                return data, end


def _header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return str(value.decode("latin-1"))
    return None


#: SO_TIMESTAMPNS, which Python's socket module does not name: the kernel stamps each
#: segment it receives and `recvmsg` hands the stamp over. Its number is the generic one on
#: these architectures (others number it differently: they get no stamps).
_SO_TIMESTAMPNS = 35
_STAMPS = sys.platform == "linux" and platform.machine() in {"x86_64", "aarch64", "arm64", "riscv64", "s390x"}
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def stamp_arrivals(sock: socket.socket) -> None:
    """Ask the kernel to stamp what this listening socket's connections receive (inherited
    by each accepted socket, so the first segment is stamped too)."""
    if _STAMPS:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            pass  # no stamps: arrivals are when the server read the bytes


class _Delegating(trio.abc.HalfCloseableStream):
    """Sends and closes through the connection it wraps; a subclass says how it receives."""

    def __init__(self, inner: trio.abc.HalfCloseableStream) -> None:
        self._inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


class StampedStream(_Delegating):
    """A connection that knows when the bytes of its last read arrived at this host.

    Why: seq-less output batches are stored in the order their requests arrived
    (domain/arrival_order.py); when two connections' requests are both waiting, the
    order the server's tasks read them in says nothing about which came first, and the
    kernel's receive stamp does. Without a stamp, the time of the read stands in.
    """

    def __init__(self, inner: trio.SocketStream) -> None:
        super().__init__(inner)
        self.inner = inner
        self.socket = inner.socket
        #: On trio's clock.
        self.last_arrival = trio.current_time()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not _ANCILLARY_BYTES:
            data = await self.inner.receive_some(max_bytes)
            self.last_arrival = trio.current_time()
            return data
        try:
            data, ancillary, _, _ = await self.socket.recvmsg(max_bytes or RECEIVE_BYTES, _ANCILLARY_BYTES)
        except OSError as exc:
            raise trio.BrokenResourceError(exc) from exc
        self.last_arrival = _arrival(ancillary)
        return data


#: trio's clock minus the wall clock, measured once per run: measured at each read, its
#: jitter (tens of microseconds) was larger than the gap between two requests sent back
#: to back, and reordered them.
_WALL_TO_TRIO: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("wall_to_trio")


def _arrival(ancillary: Sequence[tuple[int, int, bytes]]) -> float:
    """The kernel's receive stamp (wall clock) moved onto trio's clock; now if there is none."""
    now = trio.current_time()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            try:
                offset = _WALL_TO_TRIO.get()
            except LookupError:
                offset = now - time.time()
                _WALL_TO_TRIO.set(offset)
            stamped: float = seconds + nanoseconds / 1e9 + offset
            return min(stamped, now)  # (the wall clock may have been stepped since)
    return now


class ReplayedStream(_Delegating):
    """A connection whose first bytes were already read by the front: they are read again first.

    Hypercorn tells plain from TLS connections by the absence of `do_handshake`, and reads
    the peer's address from `.socket`; this class offers exactly what a SocketStream does.
    """

    def __init__(self, inner: StampedStream, already_read: bytes) -> None:
        super().__init__(inner)
        self._replay = already_read
        self.socket = inner.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._replay:
            data, self._replay = self._replay, b""
            return data
        return bytes(await self._inner.receive_some(max_bytes))


async def read_first_line(
    stream: trio.abc.Stream, received: bytes, idle_timeout_s: float, head_timeout_s: float = REQUEST_HEAD_TIMEOUT_S
) -> bytes:
    """`received` plus what the client sends until its request line is complete (or a limit).

    An idle connection may wait `idle_timeout_s` for its next request; once a request has
    begun, its line must arrive within `head_timeout_s`.
    """
    if not received:
        with trio.move_on_after(idle_timeout_s):
            received = bytes(await stream.receive_some(RECEIVE_BYTES))
    if not received:
        return b""
    with trio.move_on_after(head_timeout_s):
        while b"\r\n" not in received and len(received) < MAX_HEAD_BYTES:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                break
            received += data
    return received


async def read_whole_head(stream: trio.abc.Stream, received: bytes, timeout_s: float) -> bytes | None:
    """`received` plus the rest of the request's head; None when it did not come in time.

    A head over MAX_HEAD_BYTES is handed on as it is: hypercorn answers it (431).
    """
    with trio.move_on_after(timeout_s):
        while b"\r\n\r\n" not in received and len(received) <= MAX_HEAD_BYTES:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                return None
            received += data
        return received
    return None


_HEAD_TIMED_OUT_BODY = b'{"ok": false, "error": "the request head did not arrive in time"}'
_HEAD_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_HEAD_TIMED_OUT_BODY)}\r\n\r\n".encode()
    + _HEAD_TIMED_OUT_BODY
)


async def serve_front(
    app: QuartTrio,
    config: HypercornConfig,
    front: SidecarFront,
    sockets: Sequence[socket.socket],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` with hypercorn on the listening `sockets`, except the sidecar requests `front` takes."""
    asgi = wrap_app(app, config.wsgi_max_body_size, mode="asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(asgi, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        for sock in sockets:
            stamp_arrivals(sock)

        async def connection(socket_stream: trio.SocketStream) -> None:
            """One connection's requests; `serve_listening_sockets` closes it afterwards."""
            stream = StampedStream(socket_stream)
            try:
                received: bytes | None = await read_first_line(
                    stream, b"", config.keep_alive_timeout, front.head_timeout_s
                )
                if received and front.takes(received):
                    received = await front.serve(stream, received, idle_timeout_s=config.keep_alive_timeout)
                if not received:
                    return
                received = await read_whole_head(stream, received, front.head_timeout_s)
                if received is None:
                    with trio.move_on_after(DRAIN_S):
                        await stream.send_all(_HEAD_TIMED_OUT)
                    return
                state = ConnectionState(lifespan_state.copy())
                await TCPServer(asgi, config, context, state, ReplayedStream(stream, received))  # type: ignore[arg-type]
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass  # the client went away
            except Exception:
                # One connection's failure must not take the server (and every job) down.
                log.exception("webhook connection failed")

        async with trio.open_nursery() as handlers:
            await handlers.start(front.run_stream_hub)
            await handlers.start(serve_listening_sockets, sockets, connection)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                lifespan_nursery.cancel_scope.cancel()


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
