"""The web view's routes on the dispatcher's own Quart app: pages, the live stream, downloads.

How a grant travels: chat hands out `/jobs/J?grant=...`. The first request trades the grant
for an HttpOnly cookie and redirects to the same URL without it, so the grant is never in a
page's HTML, in the address bar after that, in a Referer, or in the browser's history of
pages. A job's cookie is scoped to that job's path; the list's to the whole view.

Every answer carries a strict Content-Security-Policy (no inline script or style, nothing
from elsewhere), and every value from a job is escaped by Jinja's autoescaping; answers are
markdown rendered with raw HTML off (markdown.py).
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import trio
from quart import Blueprint, Response, render_template, request
from quart_trio import QuartTrio

from ...domain.errors import NotAllowed, UnknownJob, UsageError
from ...domain.job_spec import AgentKind
from ...domain.job import Job, JobState
from ...domain.messages import KeptFile
from ...domain.render import state_word
from ...domain.web_grants import InvalidGrant, WebGrant
from ...domain.web_view import JobFilters, channel_key, step_of_line
from ...ports.web_view import WebPages
from .charts import bar_chart
from .markdown import render_markdown

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
LIST_COOKIE = "od_web"
#: A live stream sends a comment this often when nothing happens, so proxies keep it open.
HEARTBEAT_S = 15.0
#: After its job finished, a stream stays this long for late news (the agent's summary and
#: artifacts are saved just after the final state), then says `end`.
SETTLE_AFTER_FINISH_S = 5.0
#: A stream ends after this long in any case; the browser reconnects where it was.
MAX_STREAM_S = 3600.0
_JOB_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _job_cookie(job_id: str) -> str:
    return "od_job_" + job_id.replace(".", "_")


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def _is_https() -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return request.scheme == "https" or forwarded.split(",")[0].strip().lower() == "https"


async def _page(template: str, status: int = 200, **context: Any) -> Response:
    return _headers(Response(await render_template(template, **context), status=status, mimetype="text/html"))


async def _refused(status: int, title: str, message: str) -> Response:
    if status == 401:  # the path only: a query string may hold the refused grant
        log.info("web view: refused a missing, invalid or expired link to %s", request.path)
    return await _page("web_error.html", status, title=title, message=message)


def add_web_routes(app: QuartTrio, view: WebPages) -> None:
    """Serve the web view on `app` (the webhook server's own: same port, same nursery)."""
    web = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/web/static")
    web.add_app_template_filter(_utc_text, "utc_text")
    web.add_app_template_filter(_utc_iso, "utc_iso")

    def grant_from_cookies(job_id: str | None) -> WebGrant:
        names = ([_job_cookie(job_id)] if job_id else []) + [LIST_COOKIE]
        for name in names:
            text = request.cookies.get(name)
            if not text:
                continue
            try:
                grant = view.open(text)
            except InvalidGrant:
                continue
            if grant.job_id is None or grant.job_id == job_id:
                return grant
        raise InvalidGrant()

    async def trade_grant(job_id: str | None) -> Response | None:
        """`?grant=...`: a cookie for it, and the same URL without it; None without one."""
        text = request.args.get("grant")
        if text is None:
            return None
        grant = view.open(text)  # InvalidGrant: the caller's 401 page
        if grant.job_id is not None and grant.job_id != job_id:
            raise InvalidGrant()
        rest = {name: value for name, value in request.args.items() if name != "grant"}
        target = request.path + (("?" + urlencode(rest)) if rest else "")
        response = Response("", status=303, headers={"Location": target})
        max_age = max(1, int(grant.expires_at - view.wall_clock()))
        name, path = (LIST_COOKIE, "/") if grant.job_id is None else (_job_cookie(grant.job_id), f"/jobs/{grant.job_id}")
        response.set_cookie(
            name, text, max_age=max_age, path=path, httponly=True, secure=_is_https(), samesite="Lax"
        )
        return _headers(response)

    @web.get("/jobs")
    async def jobs() -> Response:
        try:
            traded = await trade_grant(None)
            if traded is not None:
                return traded
            grant = grant_from_cookies(None)
            if grant.job_id is not None:
                raise InvalidGrant()
            filters = JobFilters.parse(dict(request.args.items()))
            page = await view.jobs_page(grant, filters)
        except InvalidGrant as exc:
            return await _refused(401, "Link expired or not valid", str(exc))
        except UsageError as exc:
            return await _refused(400, "Bad filter", str(exc))
        return await _page(
            "web_jobs.html",
            page=page,
            user=grant.user,
            state_word=state_word,
            channel_key=channel_key,
            query=lambda **changes: urlencode(page.filters.query(**changes)),
            state_names=[state.value for state in JobState],
            agent_names=[kind.value for kind in AgentKind],
        )

    @web.get("/jobs/<job_id>")
    async def job_page(job_id: str) -> Response:
        try:
            if not _JOB_ID.fullmatch(job_id):
                raise UnknownJob(job_id[:100])
            traded = await trade_grant(job_id)
            if traded is not None:
                return traded
            grant = grant_from_cookies(job_id)
            page = await view.job_page(grant, job_id)
        except InvalidGrant as exc:
            return await _refused(401, "Link expired or not valid", str(exc))
        except UnknownJob as exc:
            return await _refused(404, "No such job", str(exc))
        return await _page(
            "web_job.html",
            page=page,
            job=page.job,
            can_list=grant.job_id is None,
            answer_html=_answer_html(page.job),
            state_word=state_word,
            channel_key=channel_key,
        )

    @web.get("/jobs/<job_id>/final")
    async def job_final(job_id: str) -> Response:
        try:
            grant = grant_from_cookies(job_id)
            job = await view.job(grant, job_id)
        except InvalidGrant as exc:
            return await _refused(401, "Link expired or not valid", str(exc))
        except UnknownJob as exc:
            return await _refused(404, "No such job", str(exc))
        return await _page("web_final.html", job=job, answer_html=_answer_html(job), state_word=state_word)

    @web.get("/jobs/<job_id>/events")
    async def job_events(job_id: str) -> Response:
        try:
            grant = grant_from_cookies(job_id)
            await view.job(grant, job_id)
        except InvalidGrant as exc:
            return _headers(Response(str(exc), status=401, mimetype="text/plain"))
        except UnknownJob as exc:
            return _headers(Response(str(exc), status=404, mimetype="text/plain"))
        start = _resume_from(request.headers.get("Last-Event-ID") or request.args.get("from"))
        response = Response(_live(view, grant, job_id, start), mimetype="text/event-stream")
        response.timeout = None  # a stream lasts as long as the job (MAX_STREAM_S at most)
        response.headers["X-Accel-Buffering"] = "no"
        return _headers(response)

    @web.get("/jobs/<job_id>/output.txt")
    async def job_output(job_id: str) -> Response:
        return await _download(job_id, "output.txt", "text/plain; charset=utf-8", lambda g: view.output(g, job_id))

    @web.get("/jobs/<job_id>/transcript.jsonl")
    async def job_transcript(job_id: str) -> Response:
        return await _download(
            job_id, "transcript.jsonl", "application/x-ndjson; charset=utf-8", lambda g: view.transcript(g, job_id)
        )

    async def _download(job_id: str, name: str, mimetype: str, read: Any) -> Response:
        try:
            grant = grant_from_cookies(job_id)
            lines = await read(grant)
        except InvalidGrant as exc:
            return await _refused(401, "Link expired or not valid", str(exc))
        except UnknownJob as exc:
            return await _refused(404, "No such job", str(exc))
        body = "".join(line + "\n" for line in lines)
        response = Response(body, status=200, content_type=mimetype)
        response.headers["Content-Disposition"] = f'attachment; filename="{job_id}-{name}"'
        return _headers(response)

    @web.get("/jobs/<job_id>/artifacts/<path:name>")
    async def job_artifact(job_id: str, name: str) -> Response:
        try:
            grant = grant_from_cookies(job_id)
            artifact, content = await view.artifact_file(grant, job_id, name)
        except InvalidGrant as exc:
            return await _refused(401, "Link expired or not valid", str(exc))
        except (UnknownJob, NotAllowed) as exc:
            return await _refused(404, "No such file", str(exc))
        response = Response(content, status=200, content_type="application/octet-stream")
        response.headers["Content-Disposition"] = f'attachment; filename="{KeptFile(artifact, content).filename}"'
        return _headers(response)

    @web.get("/usage")
    async def usage() -> Response:
        try:
            grant = grant_from_cookies(None)
            if grant.job_id is not None:
                raise InvalidGrant()
            days_text = request.args.get("days", "30")
            if not days_text.isascii() or not days_text.isdigit() or not 1 <= int(days_text) <= 366:
                raise UsageError("days must be a whole number from 1 to 366")
            report = await view.usage(grant, int(days_text))
        except InvalidGrant as exc:
            return await _refused(401, "Link expired or not valid", str(exc))
        except UsageError as exc:
            return await _refused(400, "Bad period", str(exc))
        charts = {
            "day": bar_chart(report.by_day, title="Cost per day (USD)"),
            "channel": bar_chart(report.by_channel, title="Cost per channel (USD)"),
            "user": bar_chart(report.by_user, title="Cost per user (USD)"),
        }
        return await _page("web_usage.html", report=report, charts=charts, user=grant.user)

    app.register_blueprint(web)


def _utc_text(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _utc_iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


def _answer_html(job: Job) -> str:
    if job.agent is None or not job.agent.answer:
        return ""
    return render_markdown(job.agent.answer)


def _resume_from(text: str | None) -> int:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 12:
        return 0
    return int(text)


def _event(name: str, data: object, event_id: int | None = None) -> bytes:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _job_facts(job: Job) -> dict[str, Any]:
    return {"state": job.state.value, "word": state_word(job.state), "finished": job.is_finished}


async def _live(view: WebPages, grant: WebGrant, job_id: str, start: int) -> AsyncIterator[bytes]:
    """Lines from `start`, the job's state when it changes, `final` when the card is due.

    Each `lines` event's id is the index after its last line: a browser that reconnects
    sends it as Last-Event-ID and resumes exactly there.
    """
    shown: Job | None = None
    finished_at: float | None = None
    ends_at = trio.current_time() + MAX_STREAM_S
    yield b"retry: 2000\n\n"
    while trio.current_time() < ends_at:
        changed = view.next_change(job_id)  # before reading: a change meanwhile still wakes us
        try:
            job, lines = await view.lines_since(grant, job_id, start)
        except (UnknownJob, InvalidGrant):
            yield _event("end", {"reason": "gone"})
            return
        if lines:
            steps = [step for step in map(step_of_line, lines) if step is not None]
            yield _event(
                "lines",
                {"from": start, "lines": lines, "steps": [{"label": s.label, "state": s.state} for s in steps]},
                start + len(lines),
            )
            start += len(lines)
            continue  # more may be stored already: read until caught up
        if job != shown:
            yield _event("job", _job_facts(job))
            if job.is_finished:
                yield _event("final", _job_facts(job))
                finished_at = trio.current_time()
            shown = job
        if finished_at is not None and trio.current_time() - finished_at >= SETTLE_AFTER_FINISH_S:
            yield _event("end", {"reason": "finished"})
            return
        wait_s = HEARTBEAT_S if finished_at is None else SETTLE_AFTER_FINISH_S - (trio.current_time() - finished_at)
        try:
            with trio.move_on_after(wait_s):
                await changed.wait()
            if not changed.is_set():
                yield b": still here\n\n"
        finally:
            view.forget_change(job_id, changed)
