"""What the sidecar's report endpoints answer, whichever HTTP server carried the request.

The same answers are given by the Quart routes (app.py: the default path) and by the fast
path's front (fast/front.py, with OPENDISPATCH_FAST_INGEST=1), so the wire contract lives
here once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from ...domain.errors import InvalidToken, JobClosed
from ...domain.repo_credentials import TOKEN_USERNAME, CredentialsUnavailable, NoRepoCredentials
from ...ports.sidecar_inbound import ReportSink, StreamSink
from . import wire

MAX_BODY_BYTES = 1024 * 1024
CREDENTIALS_PATH = "/webhooks/credentials"


@attrs.frozen
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def headers(self) -> list[tuple[str, str]]:
        headers = [("Content-Type", "application/json")]
        if self.status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="open-dispatch"'))
        if self.status == 413:
            # Answered without reading the whole body, whose rest is still on the wire: the
            # connection cannot carry another request (a client's next one would hang).
            headers.append(("Connection", "close"))
        return headers

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


def error(status: int, message: str) -> Answer:
    return Answer(status, {"ok": False, "error": message})


TOO_LARGE = error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")


#: handler(authorization, raw body, when the request arrived on trio's clock if known)
ReportHandler = Callable[[str | None, bytes, float | None], Awaitable[Answer]]

#: Where `build_webhook_app` leaves its SidecarEndpoints (for the fast path, fast/).
SIDECAR_ENDPOINTS = "opendispatch.sidecar_endpoints"


@attrs.frozen
class SidecarEndpoints:
    """What an app's sidecar endpoints call, for a server that serves them without Quart."""

    reports: Mapping[str, ReportHandler]
    streams: StreamSink | None = None
    on_answer: Callable[[str, int], None] | None = None


def report_endpoints(sink: ReportSink) -> dict[str, ReportHandler]:
    """`POST` path -> handler for the report endpoints."""

    def endpoint(
        parse: Callable[[Any], Any],
        accept: Callable[[str | None, Any, float | None], Awaitable[int | None]],
        extra: Callable[[Any], dict[str, Any]] = lambda _: {},
    ) -> ReportHandler:
        async def handle(authorization: str | None, raw: bytes, arrived_at: float | None = None) -> Answer:
            async def answer() -> Answer:
                report = parse(_json(raw))
                interval_ms = await accept(authorization, report, arrived_at)
                if interval_ms is not None:
                    return Answer(200, {"ok": True, "batchIntervalMs": interval_ms, **extra(report)})
                return Answer(200, {"ok": True, **extra(report)})

            return TOO_LARGE if len(raw) > MAX_BODY_BYTES else await _refusing(answer)

        return handle

    async def credentials(authorization: str | None, raw: bytes, arrived_at: float | None = None) -> Answer:
        # Answered with the token in the body: never logged (`on_answer` sees the status only).
        async def answer() -> Answer:
            token, server = await sink.repo_credentials(authorization, wire.job_id_of(_json(raw)))
            body = {"ok": True, "username": TOKEN_USERNAME, "password": token.token, "expiresAt": token.expires_at}
            return Answer(200, {**body, "server": server})

        return TOO_LARGE if len(raw) > MAX_BODY_BYTES else await _refusing(answer, _CREDENTIAL_REFUSALS)

    return {
        CREDENTIALS_PATH: credentials,
        "/webhooks/logs": endpoint(
            wire.log_batch, lambda auth, batch, arrived_at: sink.accept_logs(auth, batch, arrived_at=arrived_at)
        ),
        "/webhooks/status": endpoint(wire.status_report, lambda auth, report, _: sink.accept_status(auth, report)),
        # `count`: what the seed's server answered, kept for its sidecars.
        "/webhooks/artifacts": endpoint(
            wire.artifact_report,
            lambda auth, report, _: sink.accept_artifacts(auth, report),
            lambda report: {"count": len(report.artifacts)},
        ),
        "/webhooks/artifact-file": endpoint(wire.artifact_file, lambda auth, file, _: sink.accept_artifact_file(auth, file)),
        "/webhooks/transcript": endpoint(wire.transcript_part, lambda auth, part, _: sink.accept_transcript(auth, part)),
    }


#: How each refusal of a sidecar's request is answered (its message is the exception's).
_REFUSALS: tuple[tuple[type[Exception], int], ...] = ((wire.BadRequest, 400), (InvalidToken, 401), (JobClosed, 409))
_CREDENTIAL_REFUSALS: tuple[tuple[type[Exception], int], ...] = (*_REFUSALS, (NoRepoCredentials, 404), (CredentialsUnavailable, 502))


async def _refusing(
    answer: Callable[[], Awaitable[Answer]], refusals: tuple[tuple[type[Exception], int], ...] = _REFUSALS
) -> Answer:
    try:
        return await answer()
    except tuple(kind for kind, _ in refusals) as exc:
        return error(next(status for kind, status in refusals if isinstance(exc, kind)), str(exc))


def _json(raw: bytes) -> Any:
    try:
        return wire.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise wire.BadRequest("the body must be valid JSON") from None
