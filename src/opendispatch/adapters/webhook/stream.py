"""`/webhooks/stream`: one long-lived request per sidecar instead of one POST per batch.

Why: a POST costs ~1.1 ms of server CPU in quart/hypercorn whatever it carries, while a
record read from an open request body costs ~250 µs (docs/performance.md). The sidecar
sends a chunked NDJSON body, one `{"seq": n, "lines": [...]}` per line; the token is checked
once at the start; each record goes through the same Relay path as a POSTed batch (seq
dedupe, store, chat), several per wake-up when they arrive together. There is no answer per
record: the answer at the end of the body (or on an error) says the last stored seq, and
`GET /webhooks/stream?jobId=J` says it too, so a sidecar whose connection dropped resumes
from there. A 404 on the GET tells a sidecar the server predates streaming.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from ...domain.errors import InvalidToken, JobClosed
from ...domain.job import Job
from ...domain.sidecar import LogBatch
from . import wire

STREAM_PATH = "/webhooks/stream"


class StreamSink(Protocol):
    """What the stream route needs from the application (the Relay satisfies it)."""

    async def open_stream(self, authorization: str | None, job_id: object) -> Job: ...
    async def accept_stream_record(self, job: Job, batch: LogBatch) -> None: ...
    async def last_seq(self, job_id: str) -> int | None: ...


class _Tally:
    def __init__(self) -> None:
        self.records = 0
        self.rejected = 0
        self.error: str | None = None

    def reject(self, message: str) -> None:
        self.rejected += 1
        if self.error is None:
            self.error = message


def add_stream_routes(
    app: QuartTrio,
    sink: StreamSink,
    *,
    max_record_bytes: int,
    error: Callable[[int, str], Response],
    on_answer: Callable[[str, int], None] | None = None,
) -> None:
    async def answer(status: int, job: Job, tally: _Tally, message: str | None = None) -> Response:
        body: dict[str, Any] = {
            "ok": status == 200,
            "lastSeq": await sink.last_seq(job.id),
            "records": tally.records,
            "rejected": tally.rejected,
        }
        if message or tally.error:
            body["error"] = message or tally.error
        response = Response(json.dumps(body), status=status, mimetype="application/json")
        if status != 200:
            response.headers["Connection"] = "close"  # the rest of the body is unread
        return response

    async def opened() -> Job | Response:
        try:
            return await sink.open_stream(request.headers.get("Authorization"), request.args.get("jobId"))
        except InvalidToken as exc:
            return error(401, str(exc))
        except JobClosed as exc:
            return error(409, str(exc))

    def noted(response: Response) -> Response:
        if on_answer is not None:
            on_answer(STREAM_PATH, response.status_code)
        return response

    @app.get(STREAM_PATH)
    async def stream_resume_point() -> Response:
        job = await opened()
        if isinstance(job, Response):
            return noted(job)
        return noted(await answer(200, job, _Tally()))

    @app.post(STREAM_PATH)
    async def receive_stream() -> Response:
        job = await opened()
        if isinstance(job, Response):
            job.headers["Connection"] = "close"
            return noted(job)
        tally = _Tally()
        pending = bytearray()
        try:
            async for chunk in request.body:
                pending += chunk
                consumed = 0
                while (end := pending.find(b"\n", consumed)) >= 0:
                    record, consumed = bytes(pending[consumed:end]), end + 1
                    if len(record) > max_record_bytes:
                        raise RequestEntityTooLarge()
                    await _apply(sink, job, record, tally)
                del pending[:consumed]
                if len(pending) > max_record_bytes:
                    raise RequestEntityTooLarge()
        except RequestEntityTooLarge:
            return noted(await answer(413, job, tally, f"a stream record is larger than {max_record_bytes} bytes"))
        except JobClosed as exc:
            return noted(await answer(409, job, tally, str(exc)))
        if pending.strip():
            tally.reject("the last record does not end with a newline")
        return noted(await answer(200, job, tally))


async def _apply(sink: StreamSink, job: Job, record: bytes, tally: _Tally) -> None:
    """Store one record; a malformed one is counted and skipped, the stream goes on."""
    if not record.strip():
        return  # an empty line keeps an idle stream alive
    try:
        batch = wire.stream_record(json.loads(record), job.id)
    except (ValueError, RecursionError) as exc:  # wire.BadRequest and bad JSON/UTF-8
        message = str(exc) if isinstance(exc, wire.BadRequest) else "a record must be valid JSON"
        tally.reject(message)
        return
    # A client that disconnects cancels this handler; a record half applied (stored but not
    # yet handed to chat) would be lost to chat, so each record finishes once begun.
    with trio.CancelScope(shield=True):
        await sink.accept_stream_record(job, batch)
    tally.records += 1
