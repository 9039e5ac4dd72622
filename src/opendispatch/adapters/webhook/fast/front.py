"""The sidecar endpoints served on trio + h11, in the connection's own task.

Why: a request through hypercorn and Quart costs ~1-3 ms of the server's one core (more
with a thousand connections open), and every chunk of a stream wakes several tasks
(hypercorn's reader, the ASGI queue, Quart's body, the handler). With a thousand sprites
that is the whole budget (docs/performance.md). What sidecars send is simple: a JSON POST
with a Bearer token, or one streaming POST whose body is NDJSON. So `SidecarFront` answers
those itself, with h11; a stream's body is read by the stream hub (stream_hub.py), one task
for every open stream, and the connection's task answers when it ends. The answers are the
Quart routes' (app.py): reports.py and stream.py hold the logic both use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from ....domain.errors import InvalidToken, JobClosed
from ....domain.job import Job
from ....ports.sidecar_inbound import StreamSink
from ..reports import MAX_BODY_BYTES, TOO_LARGE, Answer, ReportHandler, error
from ..stream import STREAM_PATH, RecordSplitter, RecordTooLarge, Tally, answer_body
from .arrivals import StampedStream
from .body_framing import BodyFraming, ChunkedBody, LengthBody
from .stream_hub import StreamEnd, StreamHub

log = logging.getLogger(__name__)

#: Where `serve_webhooks` leaves the SidecarFront it serves an app's sidecar endpoints with.
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
#: After an early answer the client may still be sending; read and drop its body this long
#: so that closing does not reset the connection before the answer is read.
DRAIN_S = 2.0


class _Close(Exception):
    """The connection cannot carry another request (an early answer, a protocol error)."""


class SidecarFront:
    """Serves the sidecar endpoints on connections the fast path's listener gives it.

    `serve` answers requests on one connection for as long as they are for sidecar
    endpoints and the client keeps the connection alive, and returns the bytes of a request
    for anything else (to be passed on to hypercorn), or None when the connection is done.
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
        #: Reads every stream's body in one task while `serve_fast` runs it (stream_hub.py).
        self.hub: StreamHub | None = None
        lines = [b"POST " + path.encode() for path in self.reports]
        if streams is not None:
            lines += [b"POST " + STREAM_PATH.encode(), b"GET " + STREAM_PATH.encode()]
        self._request_lines = tuple(line + end for line in lines for end in (b" ", b"?"))

    async def run_stream_hub(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read the streams' bodies together until cancelled."""
        if self.streams is None:
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

    async def serve(self, stream: StampedStream, already_read: bytes, *, idle_timeout_s: float) -> bytes | None:
        received = already_read
        while True:
            # The request's first bytes came with the last read (or an earlier one, when
            # the client sent requests back to back): that read's stamp is its arrival.
            arrived_at = stream.last_arrival
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

    async def _one_request(self, http: h11.Connection, stream: StampedStream, arrived_at: float | None) -> None:
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
        stream: StampedStream,
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
            if hub is None or not hub.running:
                return  # shutting down: the sidecar asks where to resume when it is back
            unread, closed = http.trailing_data
            end = await hub.follow(stream.inner, job, framing, records, tally, bytes(unread), closed)
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


def _header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return str(value.decode("latin-1"))
    return None


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

    A head over MAX_HEAD_BYTES is passed on as it is: hypercorn answers it (431).
    """
    with trio.move_on_after(timeout_s):
        while b"\r\n\r\n" not in received and len(received) <= MAX_HEAD_BYTES:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                return None
            received += data
        return received
    return None
