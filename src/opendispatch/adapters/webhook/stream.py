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
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from ...domain.errors import InvalidToken, JobClosed
from ...domain.job import Job
from ...ports.sidecar_inbound import StreamSink
from . import wire

STREAM_PATH = "/webhooks/stream"


class Tally:
    def __init__(self) -> None:
        self.records = 0
        self.rejected = 0
        self.error: str | None = None

    def reject(self, message: str) -> None:
        self.rejected += 1
        if self.error is None:
            self.error = message


class RecordTooLarge(Exception):
    """A record (or an unfinished one) is over the size limit: the stream ends with 413."""


class RecordSplitter:
    """Cuts a stream body, arriving in chunks of any size, into newline-ended records."""

    def __init__(self, max_record_bytes: int) -> None:
        self.max_record_bytes = max_record_bytes
        self.too_large_message = f"a stream record is larger than {max_record_bytes} bytes"
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        pending = self._pending
        pending += chunk
        records: list[bytes] = []
        consumed = 0
        while (end := pending.find(b"\n", consumed)) >= 0:
            if end - consumed > self.max_record_bytes:
                raise RecordTooLarge()
            records.append(bytes(pending[consumed:end]))
            consumed = end + 1
        del pending[:consumed]
        if len(pending) > self.max_record_bytes:
            raise RecordTooLarge()
        return records

    def unfinished(self) -> bool:
        """Whether the body ended inside a record (bytes after the last newline)."""
        return bool(self._pending.strip())


async def answer_body(sink: StreamSink, job: Job, tally: Tally, message: str | None = None) -> dict[str, Any]:
    """What a stream's answer says, whichever server sends it."""
    body: dict[str, Any] = {
        "ok": message is None,
        "lastSeq": await sink.last_seq(job.id),
        "records": tally.records,
        "rejected": tally.rejected,
    }
    if message or tally.error:
        body["error"] = message or tally.error
    interval_ms = sink.stream_batch_interval_ms()
    if interval_ms is not None:
        body["batchIntervalMs"] = interval_ms  # how long to gather records on the next stream
    return body


def add_stream_routes(
    app: QuartTrio,
    sink: StreamSink,
    *,
    max_record_bytes: int,
    error: Callable[[int, str], Response],
    on_answer: Callable[[str, int], None] | None = None,
) -> None:
    async def answer(status: int, job: Job, tally: Tally, message: str | None = None) -> Response:
        body = await answer_body(sink, job, tally, message)
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
        return noted(await answer(200, job, Tally()))

    @app.post(STREAM_PATH)
    async def receive_stream() -> Response:
        job = await opened()
        if isinstance(job, Response):
            job.headers["Connection"] = "close"
            return noted(job)
        tally = Tally()
        records = RecordSplitter(max_record_bytes)
        try:
            async for chunk in request.body:
                await apply_records(sink, job, records.feed(chunk), tally)
        except (RecordTooLarge, RequestEntityTooLarge):
            return noted(await answer(413, job, tally, records.too_large_message))
        except JobClosed as exc:
            return noted(await answer(409, job, tally, str(exc)))
        if records.unfinished():
            tally.reject("the last record does not end with a newline")
        return noted(await answer(200, job, tally))


async def apply_records(sink: StreamSink, job: Job, records: list[bytes], tally: Tally) -> None:
    """Store the records that arrived together; a malformed one is counted and skipped."""
    batches = []
    for record in records:
        if not record.strip():
            continue  # an empty line keeps an idle stream alive
        try:
            batches.append(wire.stream_record(wire.loads(record), job.id))
        except (ValueError, RecursionError) as exc:  # wire.BadRequest and bad JSON/UTF-8
            tally.reject(str(exc) if isinstance(exc, wire.BadRequest) else "a record must be valid JSON")
    if not batches:
        return
    # The sink finishes what it begins even if this handler is cancelled (a client that
    # disconnects): a record stored but not handed to chat would be lost to chat.
    await sink.accept_stream_records(job, batches)
    tally.records += len(batches)
