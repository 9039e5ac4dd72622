"""The webhook routes. Thin: parse at the door, let the Relay decide, map errors to codes."""

from __future__ import annotations

import json
import logging
from importlib import resources
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from ...domain.errors import InvalidToken, JobClosed
from ...domain.session import SessionGone
from ...domain.sidecar import ArtifactReport, LogBatch, StatusReport
from ...ports.http import HttpRequest, HttpRoute
from . import wire
from .stream import StreamSink, add_stream_routes

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
OK: dict[str, Any] = {"ok": True}


class ReportSink(Protocol):
    """What the webhook needs from the application (the Relay satisfies it)."""

    async def accept_logs(self, authorization: str | None, batch: LogBatch) -> int | None:
        """May return the `batchIntervalMs` to ask the sidecar for (the server is busy)."""
        ...
    async def accept_status(self, authorization: str | None, report: StatusReport) -> None: ...
    async def accept_artifacts(self, authorization: str | None, report: ArtifactReport) -> None: ...


class SessionSink(Protocol):
    """What session sidecars ask (the SessionManager satisfies it)."""

    async def next_message(
        self, authorization: str | None, session_id: object, running: str | None, wait_s: float
    ) -> dict[str, Any] | None: ...
    async def agent_state(self, authorization: str | None, job_id: object) -> str | None: ...
    async def save_agent_state(self, authorization: str | None, job_id: object, state: str) -> None: ...


def _error(status: int, message: str) -> Response:
    response = Response(json.dumps({"ok": False, "error": message}), status=status, mimetype="application/json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="open-dispatch"'
    if status == 413:
        # We answered without reading the body; the rest of it is still on the wire, so this
        # connection cannot carry another request. Without this, the client's next request on
        # the same keep-alive connection hangs.
        response.headers["Connection"] = "close"
    return response


async def _json_body() -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    raw = await request.get_data(as_text=False)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise wire.BadRequest("the body must be valid JSON") from None


def _mount(app: QuartTrio, route: HttpRoute) -> None:
    """Serve an adapter's framework-free route; its body is capped like ours."""

    async def endpoint(**_: Any) -> Response:
        try:
            body = await request.get_data(as_text=False)
        except RequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        answer = await route.handler(
            HttpRequest(
                method=request.method,
                path=request.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                query=dict(request.args.items()),
            )
        )
        response = Response(answer.body, status=answer.status, mimetype=answer.content_type)
        response.headers.update(dict(answer.headers))
        return response

    endpoint.__name__ = "route_" + route.path.strip("/").replace("/", "_").replace("-", "_")
    app.add_url_rule(route.path, view_func=endpoint, methods=list(route.methods))


def build_webhook_app(
    sink: ReportSink,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    extra_routes: Sequence[HttpRoute] = (),
    on_answer: Callable[[str, int], None] | None = None,
    sessions: SessionSink | None = None,
    streams: StreamSink | None = None,
) -> QuartTrio:
    """`on_answer(endpoint, status)` sees every webhook answer (metrics).

    With `streams`, sidecars may send their output over one long-lived `/webhooks/stream`
    request instead of a POST per batch (see stream.py); the POST routes stay for old clients.
    """
    app = QuartTrio("opendispatch.webhook")
    for extra in extra_routes:
        _mount(app, extra)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["JSON_SORT_KEYS"] = False

    def route(path: str, parse: Callable[[Any], Any], accept: Callable[..., Awaitable[int | None]]) -> None:
        async def endpoint() -> Response | tuple[dict[str, Any], int]:
            answer = await answer_for()
            if on_answer is not None:
                status = answer.status_code if isinstance(answer, Response) else answer[1]
                on_answer(path, status)
            return answer

        async def answer_for() -> Response | tuple[dict[str, Any], int]:
            try:
                report = parse(await _json_body())
                interval_ms = await accept(request.headers.get("Authorization"), report)
            except wire.BadRequest as exc:
                return _error(400, str(exc))
            except InvalidToken as exc:
                return _error(401, str(exc))
            except RequestEntityTooLarge:
                return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            except JobClosed as exc:
                return _error(409, str(exc))
            if interval_ms is not None:
                return {**OK, "batchIntervalMs": interval_ms}, 200
            return OK, 200

        endpoint.__name__ = "receive_" + path.rsplit("/", 1)[-1]
        app.add_url_rule(path, view_func=endpoint, methods=["POST"])

    route("/webhooks/logs", wire.log_batch, sink.accept_logs)
    route("/webhooks/status", wire.status_report, sink.accept_status)
    route("/webhooks/artifacts", wire.artifact_report, sink.accept_artifacts)

    if sessions is not None:
        add_session_routes(app, sessions)
    if streams is not None:
        add_stream_routes(app, streams, max_record_bytes=MAX_BODY_BYTES, error=_error, on_answer=on_answer)

    @app.get("/openapi.json")
    async def openapi() -> Response:
        text = (resources.files(__package__) / "openapi.json").read_text()
        return Response(text, status=200, mimetype="application/json")

    @app.get("/health")
    async def health_check() -> dict[str, Any]:
        return {"ok": True, **(health() if health else {})}

    @app.errorhandler(413)
    async def too_large(_: Exception) -> Response:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")

    @app.errorhandler(404)
    async def not_found(_: Exception) -> Response:
        return _error(404, "no such endpoint")

    @app.errorhandler(405)
    async def wrong_method(_: Exception) -> Response:
        return _error(405, "method not allowed")

    return app


#: Longest long-poll a sidecar may ask for; it asks again after each answer.
MAX_POLL_WAIT_S = 60.0


def add_session_routes(app: QuartTrio, sessions: SessionSink) -> None:
    """Session sidecars: the persistent sprite's long-poll, and the agent-state handover.

    `GET /webhooks/session/next?sessionId=S[&running=J][&waitS=25]` (Bearer session token):
    200 `{jobId, jobToken, task, timeoutS}` (a message) or `{cancel: true, jobId}` (the running
    message ended here), 204 nothing yet (ask again), 410 the session has ended (exit).
    `GET /webhooks/session/state?jobId=J` and `POST /webhooks/session/state {jobId, state}`
    (Bearer job token) read and write the agent's saved conversation (non-persistent sessions).
    """

    @app.get("/webhooks/session/next")
    async def session_next() -> Response | tuple[dict[str, Any], int]:
        try:
            wait_s = float(request.args.get("waitS", "25"))
        except ValueError:
            return _error(400, "waitS must be a number of seconds")
        if not 0 <= wait_s <= MAX_POLL_WAIT_S:
            return _error(400, f"waitS must be between 0 and {MAX_POLL_WAIT_S:g}")
        try:
            answer = await sessions.next_message(
                request.headers.get("Authorization"),
                request.args.get("sessionId"),
                request.args.get("running") or None,
                wait_s,
            )
        except InvalidToken as exc:
            return _error(401, str(exc))
        except SessionGone as exc:
            return _error(410, str(exc))
        if answer is None:
            return Response("", status=204)
        return {**OK, **answer}, 200

    @app.get("/webhooks/session/state")
    async def session_state() -> Response | tuple[dict[str, Any], int]:
        try:
            state = await sessions.agent_state(request.headers.get("Authorization"), request.args.get("jobId"))
        except InvalidToken as exc:
            return _error(401, str(exc))
        return {**OK, "state": state}, 200

    @app.post("/webhooks/session/state")
    async def save_session_state() -> Response | tuple[dict[str, Any], int]:
        try:
            body = await _json_body()
            if not isinstance(body, dict) or not isinstance(body.get("state"), str):
                raise wire.BadRequest("the body must be {jobId, state} with state a string")
            await sessions.save_agent_state(request.headers.get("Authorization"), body.get("jobId"), body["state"])
        except wire.BadRequest as exc:
            return _error(400, str(exc))
        except InvalidToken as exc:
            return _error(401, str(exc))
        except RequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        return OK, 200
