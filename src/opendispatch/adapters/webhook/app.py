"""The webhook routes. Thin: parse at the door, let the Relay decide, map errors to codes."""

from __future__ import annotations

import datetime
import logging
from importlib import resources
from collections.abc import Callable, Sequence
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
import trio
from werkzeug.exceptions import RequestEntityTooLarge

from ...domain.approvals import UnknownRequest
from ...domain.errors import InvalidToken, JobClosed
from ...domain.session import SessionGone
from ...ports.http import HttpRequest, HttpRoute
from ...ports.sidecar_inbound import ApprovalSink, ReportSink, SessionSink, StreamSink
from . import wire
from .reports import (
    MAX_BODY_BYTES,
    SIDECAR_ENDPOINTS,
    TOO_LARGE,
    Answer,
    ReportHandler,
    SidecarEndpoints,
    error,
    report_endpoints,
)
from .stream import add_stream_routes

log = logging.getLogger(__name__)

OK: dict[str, Any] = {"ok": True}


def _response(answer: Answer) -> Response:
    response = Response(answer.encoded(), status=answer.status, mimetype="application/json")
    for name, value in answer.headers:
        response.headers[name] = value  # sets, not adds: Content-Type stays one header
    return response


def _error(status: int, message: str) -> Response:
    return _response(error(status, message))


async def _raw_body() -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    body = await request.get_data(as_text=False)
    return body if isinstance(body, bytes) else body.encode()


async def _json_body() -> Any:
    raw = await _raw_body()
    if len(raw) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    try:
        return wire.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise wire.BadRequest("the body must be valid JSON") from None


def _mount(app: QuartTrio, route: HttpRoute) -> None:
    """Serve an adapter's framework-free route; its body is capped like ours."""

    async def endpoint(**_: Any) -> Response:
        try:
            body = await _raw_body()
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
    approvals: ApprovalSink | None = None,
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

    def report_route(path: str, handle: ReportHandler) -> None:
        async def endpoint() -> Response:
            arrived_at = trio.current_time()  # what an ASGI app can know of it
            try:
                raw = await _raw_body()
            except RequestEntityTooLarge:
                answer = TOO_LARGE
            else:
                answer = await handle(request.headers.get("Authorization"), raw, arrived_at)
            if on_answer is not None:
                on_answer(path, answer.status)
            return _response(answer)

        endpoint.__name__ = "receive_" + path.rsplit("/", 1)[-1]
        app.add_url_rule(path, view_func=endpoint, methods=["POST"])

    reports = report_endpoints(sink)
    for path, handle in reports.items():
        report_route(path, handle)

    if sessions is not None:
        add_session_routes(app, sessions)
    if approvals is not None:
        add_approval_routes(app, approvals)
    if streams is not None:
        add_stream_routes(app, streams, max_record_bytes=MAX_BODY_BYTES, error=_error, on_answer=on_answer)
    app.extensions[SIDECAR_ENDPOINTS] = SidecarEndpoints(reports, streams, on_answer)

    @app.get("/openapi.json")
    async def openapi() -> Response:
        text = (resources.files(__package__) / "openapi.json").read_text()
        return Response(text, status=200, mimetype="application/json")

    @app.get("/health")
    async def health_check() -> dict[str, Any]:
        # `status` and `timestamp`: what the seed's server answered, for its monitors.
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"ok": True, "status": "healthy", "timestamp": now, **(health() if health else {})}

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
#: A sidecar's key for one ask (ours send 32 hex characters).
MAX_ASK_ID_CHARS = 64


def add_approval_routes(app: QuartTrio, approvals: ApprovalSink) -> None:
    """A sidecar asks whether a tool call may run, then long-polls for a person's decision.

    `POST /webhooks/approval {jobId, tool, input[, askId]}` (`askId`: the same when the sidecar
    sends the ask again, so it finds the request it made) and `GET /webhooks/approval?jobId=J&
    requestId=R[&waitS=25]` (Bearer job token): 200 `{ok, requestId, decision, message[, by]}`
    with `decision` pending, approve or deny; 404 for a request that is not the job's.
    """

    @app.post("/webhooks/approval")
    async def ask_approval() -> Response | tuple[dict[str, Any], int]:
        try:
            body = await _json_body()
            if not isinstance(body, dict) or not isinstance(body.get("tool"), str) or not body["tool"]:
                raise wire.BadRequest("the body must be {jobId, tool, input} with tool a name")
            arguments = body.get("input")
            if not isinstance(arguments, dict):
                arguments = {}
            ask_id = body.get("askId", "")
            if not isinstance(ask_id, str) or len(ask_id) > MAX_ASK_ID_CHARS:
                raise wire.BadRequest(f"askId must be a string of at most {MAX_ASK_ID_CHARS} characters")
            outcome = await approvals.ask(
                request.headers.get("Authorization"), body.get("jobId"), body["tool"], arguments, ask_id
            )
        except wire.BadRequest as exc:
            return _error(400, str(exc))
        except InvalidToken as exc:
            return _error(401, str(exc))
        except JobClosed as exc:
            return _error(409, str(exc))
        except RequestEntityTooLarge:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        return {**OK, **outcome.wire()}, 200

    @app.get("/webhooks/approval")
    async def approval_decision() -> Response | tuple[dict[str, Any], int]:
        wait_s = _wait_s()
        if isinstance(wait_s, Response):
            return wait_s
        request_id = request.args.get("requestId") or ""
        try:
            outcome = await approvals.wait(request.headers.get("Authorization"), request.args.get("jobId"), request_id, wait_s)
        except InvalidToken as exc:
            return _error(401, str(exc))
        except UnknownRequest as exc:
            return _error(404, str(exc))
        return {**OK, **outcome.wire()}, 200


def _wait_s() -> float | Response:
    """A long poll's `waitS` (default 25), or the 400 answer for a bad one."""
    try:
        wait_s = float(request.args.get("waitS", "25"))
    except ValueError:
        return _error(400, "waitS must be a number of seconds")
    if not 0 <= wait_s <= MAX_POLL_WAIT_S:
        return _error(400, f"waitS must be between 0 and {MAX_POLL_WAIT_S:g}")
    return wait_s


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
        wait_s = _wait_s()
        if isinstance(wait_s, Response):
            return wait_s
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
