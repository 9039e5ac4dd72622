"""A loopback stand-in for the webhook server: the sidecar's side of the wire contract.

It answers exactly as the real server promises (DESIGN.md, "The wire contract"):
200 `{"ok": true}` on success and on a duplicate `seq`; 400 `{"error": ...}` for a malformed
body; 401 for a bad token or an unknown job; 409 for a write to a finished job; 413 for a
body over the size limit. It records what arrived so tests can assert on it, and it can be
told to fail the next N requests to exercise the sidecar's retries.

It also hands out repository tokens as the dispatcher does in GitHub App mode
(`POST /webhooks/credentials`): a new one on every call, valid `credential_ttl_s` from then,
or the refusal a test set with `refuse_credentials` (404, 409, 502 with a message...).

And it plays the dispatcher's approvals (`POST /webhooks/approval {jobId, tool, input}`, then
`GET /webhooks/approval?jobId&requestId&waitS` long polls): a request is answered as
`answer_approvals` said (approve or deny at once, by default approve, or pending until the
test calls `decide`), or refused as `refuse_approvals` said; `fail_next(..., only=APPROVAL_PATH)`
makes its next answers 5xx. Every request and poll is recorded.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import hypercorn.config
import hypercorn.trio
import trio
from quart import Response, request
from quart_trio import QuartTrio

from opendispatch.domain.errors import InvalidToken
from opendispatch.domain.tokens import TokenIssuer, bearer_token

MAX_BODY_BYTES = 1024 * 1024
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TOKEN_EXPIRES_AT = 4_000_000_000  # far future; the recorder verifies with now=0
APPROVAL_PATH = "/webhooks/approval"


@attrs.define
class RecordedJob:
    """Everything one job's sidecar sent, as the server stored it."""

    batches: dict[int, list[str]] = attrs.field(factory=dict)
    event_batches: dict[int, list[dict[str, Any]]] = attrs.field(factory=dict)  # seq -> the batch's agent events
    texts: list[str] = attrs.field(factory=list)  # the seed's `{jobId, text}` chunks
    statuses: list[dict[str, Any]] = attrs.field(factory=list)
    artifacts: list[dict[str, Any]] = attrs.field(factory=list)
    files: dict[str, bytes] = attrs.field(factory=dict)  # artifact name -> content sent
    timeline: list[tuple[str, Any]] = attrs.field(factory=list)  # ("logs", seq) / ("status", name) / ...
    arrived_at: dict[int, float] = attrs.field(factory=dict)  # seq -> trio.current_time() when stored
    final: trio.Event = attrs.field(factory=trio.Event)

    @property
    def finished(self) -> bool:
        return self.final.is_set()


Store = Callable[[str, RecordedJob, dict[str, Any]], Response]


@attrs.define
class RecordedApproval:
    """One approval request as the dispatcher stored it, and its decision once made."""

    id: str
    job_id: str
    tool: str
    input: dict[str, Any]
    decision: str = "pending"
    message: str = ""
    by: str | None = None
    decided: trio.Event = attrs.field(factory=trio.Event)

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": True, "requestId": self.id, "decision": self.decision, "message": self.message}
        if self.by is not None:
            body["by"] = self.by
        return body


@attrs.define
class Recorder:
    """The receiving end for sidecar tests; `url` is set once it is served."""

    issuer: TokenIssuer = attrs.field(factory=lambda: TokenIssuer(secret=b"recorder-secret-0123456789"))
    url: str = ""
    max_body_bytes: int = MAX_BODY_BYTES
    batch_interval_ms: int | None = None
    jobs: dict[str, RecordedJob] = attrs.field(factory=dict)
    raw_bodies: list[bytes] = attrs.field(factory=list)
    injected: int = 0
    answered: list[int] = attrs.field(factory=list)  # every status code sent, in order
    _fail_next: int = 0
    _fail_status: int = 503
    _fail_retry_after: str | None = None
    _fail_after_storing: bool = False
    _fail_only: str | None = None
    _changed: trio.Event = attrs.field(factory=trio.Event)
    # repository credentials (GitHub App mode)
    credential_server: str = "https://github.com"
    credential_ttl_s: float = 3600.0
    issued_tokens: list[tuple[str, str, float]] = attrs.field(factory=list)  # (job id, token, expires at)
    credential_calls: list[str] = attrs.field(factory=list)  # the job id of every call, answered or not
    _credential_refusals: dict[str, tuple[int, dict[str, Any]]] = attrs.field(factory=dict)
    # approvals
    approval_requests: list[RecordedApproval] = attrs.field(factory=list)  # every POST answered 200, in order
    approval_polls: list[tuple[str, float]] = attrs.field(factory=list)  # (request id, waitS) of every GET
    approval_calls: int = 0  # every request to the approval endpoints, refused and failed ones too
    approval_ask_ids: list[object] = attrs.field(factory=list)  # every POST's askId, failed ones too
    approval_polls_wait: bool = True  # False: a poll answers "pending" at once, whatever its waitS
    _approval_answer: tuple[str, str, str] = ("approve", "", "alice")  # decision, message, by
    _approval_refusal: tuple[int, dict[str, Any]] | None = None

    # ---- set-up ----

    def new_job(self, job_id: str | None = None) -> tuple[str, str]:
        """Register a job and return its id and webhook token."""
        job_id = job_id or f"job-{len(self.jobs) + 1}"
        self.jobs[job_id] = RecordedJob()
        return job_id, self.issuer.issue(job_id, TOKEN_EXPIRES_AT)

    def fail_next(
        self,
        count: int,
        status: int = 503,
        retry_after: str | None = None,
        *,
        after_storing: bool = False,
        only: str | None = None,
    ) -> None:
        """Answer `status` to the next `count` webhook requests (only to path `only`, if given).

        With `after_storing`, the request is stored first: the answer is "lost", as when a
        connection drops after the server did its work, so the sidecar must retry the same seq.
        """
        self._fail_next, self._fail_status, self._fail_retry_after = count, status, retry_after
        self._fail_after_storing, self._fail_only = after_storing, only

    def refuse_credentials(self, job_id: str, status: int, error: str | None = None) -> None:
        """Answer `status` (with `{"ok": false, "error": error}`) to this job's credential requests."""
        self._credential_refusals[job_id] = (status, {"ok": False, "error": error or f"refused ({status})"})

    def answer_approvals(self, decision: str, message: str = "", by: str = "alice") -> None:
        """How approval requests are answered from now on: `approve` or `deny` at once, or
        `pending` (until `decide`)."""
        self._approval_answer = (decision, message, by)

    def decide(self, request_id: str, decision: str, message: str = "", by: str = "alice") -> None:
        """A person's decision on a pending request: the waiting poll answers it."""
        request = self._approval(request_id)
        request.decision, request.message, request.by = decision, message or _said(decision, by), by
        request.decided.set()
        self._note_change()

    def refuse_approvals(self, status: int, error: str | None = None) -> None:
        """Answer `status` (with `{"ok": false, "error": error}`) to every approval request and poll."""
        self._approval_refusal = (status, {"ok": False, "error": error or f"refused ({status})"})

    def _approval(self, request_id: str) -> RecordedApproval:
        return next(request for request in self.approval_requests if request.id == request_id)

    def issued(self, job_id: str) -> list[str]:
        """The tokens handed to this job, in order."""
        return [token for job, token, _ in self.issued_tokens if job == job_id]

    def token_valid(self, token: str) -> bool:
        """Whether `token` was issued and has not expired (what GitHub would check)."""
        now = time.time()
        return any(token == issued and now < expires for _, issued, expires in self.issued_tokens)

    # ---- what arrived ----

    def lines(self, job_id: str) -> list[str]:
        batches = self.jobs[job_id].batches
        return [line for seq in sorted(batches) for line in batches[seq]]

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The agent's events (Claude Code's and OpenCode's, translated by the sidecar), in order."""
        batches = self.jobs[job_id].event_batches
        return [event for seq in sorted(batches) for event in batches[seq]]

    def seqs(self, job_id: str) -> list[int]:
        return sorted(self.jobs[job_id].batches)

    def arrivals(self, job_id: str) -> list[float]:
        """When each batch was stored (trio time), in seq order."""
        arrived = self.jobs[job_id].arrived_at
        return [arrived[seq] for seq in sorted(arrived)]

    def statuses(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.jobs[job_id].statuses)

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.jobs[job_id].artifacts)

    def timeline(self, job_id: str) -> list[tuple[str, Any]]:
        return list(self.jobs[job_id].timeline)

    async def wait_for_final_status(self, job_id: str) -> dict[str, Any]:
        await self.jobs[job_id].final.wait()
        return self.jobs[job_id].statuses[-1]

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wake on every recorded request until `condition()` holds."""
        while not condition():
            await self._changed.wait()

    def _note_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # ---- the HTTP side ----

    def build_app(self) -> QuartTrio:
        app = QuartTrio(__name__)
        app.config["MAX_CONTENT_LENGTH"] = 64 * MAX_BODY_BYTES  # our own check below decides

        @app.post("/webhooks/logs")
        async def logs() -> Response:
            return await self._handle(self._store_logs)

        @app.post("/webhooks/status")
        async def status() -> Response:
            return await self._handle(self._store_status)

        @app.post("/webhooks/artifacts")
        async def artifacts() -> Response:
            return await self._handle(self._store_artifacts)

        @app.post("/webhooks/artifact-file")
        async def artifact_file() -> Response:
            return await self._handle(self._store_artifact_file)

        @app.post("/webhooks/credentials")
        async def credentials() -> Response:
            return self._credentials(await request.get_data(as_text=False))

        @app.post(APPROVAL_PATH)
        async def ask_approval() -> Response:
            return self._ask_approval(await request.get_data(as_text=False))

        @app.get(APPROVAL_PATH)
        async def approval_decision() -> Response:
            return await self._approval_decision()

        @app.get("/health")
        async def health() -> Response:
            return _answer(200, {"ok": True})

        return app

    async def _handle(self, store: Store) -> Response:
        raw = await request.get_data(as_text=False)
        body = raw.encode() if isinstance(raw, str) else raw
        self.raw_bodies.append(body)
        inject = self._fail_next > 0 and self._fail_only in (None, request.path)
        if inject:
            self._fail_next -= 1
            self.injected += 1
        if not inject or self._fail_after_storing:
            answer = self._answer_for(body, store)
        if inject:
            headers = {"Retry-After": self._fail_retry_after} if self._fail_retry_after else {}
            answer = _answer(self._fail_status, {"error": "injected failure"}, headers)
        self.answered.append(answer.status_code)
        self._note_change()
        return answer

    def _answer_for(self, body: bytes, store: Store) -> Response:
        """What the real server would answer (and store) for this body."""
        if len(body) > self.max_body_bytes:
            return _answer(413, {"error": f"body over {self.max_body_bytes} bytes"})
        try:
            data = json.loads(body)
        except ValueError:
            return _answer(400, {"error": "body is not JSON"})
        if not isinstance(data, dict) or not isinstance(data.get("jobId"), str):
            return _answer(400, {"error": "jobId (string) is required"})
        job_id = data["jobId"]
        job = self.jobs.get(job_id)
        if job is None or not self._token_ok(job_id):
            return _answer(401, {"error": "invalid or expired job token"})
        return store(job_id, job, data)

    def _credentials(self, raw: bytes | str) -> Response:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("jobId"), str):
            return _answer(400, {"ok": False, "error": "jobId (string) is required"})
        job_id = data["jobId"]
        self.credential_calls.append(job_id)
        self._note_change()
        job = self.jobs.get(job_id)
        if job is None or not self._token_ok(job_id):
            return _answer(401, {"ok": False, "error": "invalid or expired job token"})
        if job_id in self._credential_refusals:
            status, payload = self._credential_refusals[job_id]
            return _answer(status, payload)
        if job.finished:
            return _answer(409, {"ok": False, "error": "job already finished"})
        token = "ghs_" + secrets.token_hex(18)
        expires_at = time.time() + self.credential_ttl_s
        self.issued_tokens.append((job_id, token, expires_at))
        return _answer(200, {
            "ok": True, "username": "x-access-token", "password": token,
            "expiresAt": expires_at, "server": self.credential_server,
        })

    def _approval_refused(self) -> Response | None:
        """An injected failure or a refusal set by the test, for any approval call."""
        self.approval_calls += 1
        self._note_change()
        if self._fail_next > 0 and self._fail_only == APPROVAL_PATH:  # only when asked for by path
            self._fail_next -= 1
            self.injected += 1
            return _answer(self._fail_status, {"error": "injected failure"})
        if self._approval_refusal is not None:
            status, payload = self._approval_refusal
            return _answer(status, payload)
        return None

    def _ask_approval(self, raw: bytes | str) -> Response:
        try:
            self.approval_ask_ids.append(json.loads(raw).get("askId"))
        except (ValueError, AttributeError):
            self.approval_ask_ids.append(None)
        refused = self._approval_refused()
        if refused is not None:
            return refused
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("jobId"), str) or not isinstance(data.get("tool"), str):
            return _answer(400, {"ok": False, "error": "the body must be {jobId, tool, input} with tool a name"})
        job_id = data["jobId"]
        job = self.jobs.get(job_id)
        if job is None or not self._token_ok(job_id):
            return _answer(401, {"ok": False, "error": "invalid or expired job token"})
        if job.finished:
            return _answer(409, {"ok": False, "error": "job already finished"})
        arguments: dict[str, Any] = data["input"] if isinstance(data.get("input"), dict) else {}
        approval = RecordedApproval(f"a-{secrets.token_hex(4)}", job_id, data["tool"], arguments)
        decision, message, by = self._approval_answer
        if decision != "pending":
            approval.decision, approval.message, approval.by = decision, message or _said(decision, by), by
            approval.decided.set()
        self.approval_requests.append(approval)
        self._note_change()
        return _answer(200, approval.wire())

    async def _approval_decision(self) -> Response:
        refused = self._approval_refused()
        if refused is not None:
            return refused
        job_id, request_id = request.args.get("jobId", ""), request.args.get("requestId", "")
        wait_s = float(request.args.get("waitS", "25"))
        self.approval_polls.append((request_id, wait_s))
        if job_id not in self.jobs or not self._token_ok(job_id):
            return _answer(401, {"ok": False, "error": "invalid or expired job token"})
        approval = next((a for a in self.approval_requests if a.id == request_id and a.job_id == job_id), None)
        if approval is None:
            return _answer(404, {"ok": False, "error": f"There is no approval request {request_id}."})
        with trio.move_on_after(wait_s if self.approval_polls_wait else 0):
            await approval.decided.wait()
        return _answer(200, approval.wire())

    def _token_ok(self, job_id: str) -> bool:
        try:
            self.issuer.verify(bearer_token(request.headers.get("Authorization")), job_id, now=0.0)
        except InvalidToken:
            return False
        return True

    def _ok(self) -> Response:
        payload: dict[str, Any] = {"ok": True}
        if self.batch_interval_ms is not None:
            payload["batchIntervalMs"] = self.batch_interval_ms
        return _answer(200, payload)

    def _store_logs(self, job_id: str, job: RecordedJob, data: dict[str, Any]) -> Response:
        if job.finished:
            return _answer(409, {"error": "job already finished"})
        lines = data.get("lines")
        seq = data.get("seq")
        if lines is None and isinstance(data.get("text"), str):
            job.texts.append(data["text"])
            return self._ok()
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            return _answer(400, {"error": "lines must be a list of strings"})
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return _answer(400, {"error": "seq must be an integer >= 0"})
        if seq not in job.batches:  # a duplicate seq is acknowledged and not stored again
            job.batches[seq] = lines
            events = data.get("events")
            if isinstance(events, list):
                job.event_batches[seq] = [event for event in events if isinstance(event, dict)]
            job.arrived_at[seq] = trio.current_time()
            job.timeline.append(("logs", seq))
        return self._ok()

    def _store_status(self, job_id: str, job: RecordedJob, data: dict[str, Any]) -> Response:
        status = data.get("status")
        if status not in FINAL_STATUSES | {"running"}:
            return _answer(400, {"error": f"unknown status {status!r}"})
        same = bool(job.statuses) and job.statuses[-1].get("status") == status
        if same:
            return self._ok()  # a retried status is acknowledged, not stored twice
        if job.finished:
            return _answer(409, {"error": "job already finished"})
        job.statuses.append(data)
        job.timeline.append(("status", status))
        if status in FINAL_STATUSES:
            job.final.set()
        return self._ok()

    def _store_artifacts(self, job_id: str, job: RecordedJob, data: dict[str, Any]) -> Response:
        artifacts = data.get("artifacts")
        if not isinstance(artifacts, list) or not all(isinstance(a, dict) for a in artifacts):
            return _answer(400, {"error": "artifacts must be a list of objects"})
        job.artifacts.extend(artifacts)
        job.timeline.append(("artifacts", len(artifacts)))
        return self._ok()

    def _store_artifact_file(self, job_id: str, job: RecordedJob, data: dict[str, Any]) -> Response:
        name, content = data.get("name"), data.get("content")
        if not isinstance(name, str) or not isinstance(content, str):
            return _answer(400, {"error": "an artifact file needs name and content (strings)"})
        job.files[name] = base64.b64decode(content, validate=True)
        job.timeline.append(("artifact-file", name))
        return self._ok()


def _said(decision: str, by: str) -> str:
    """The dispatcher's message for a person's decision."""
    return f"approved in chat by {by}" if decision == "approve" else f"denied in chat by {by}"


def _answer(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json", headers=headers)


async def serve_recorder(
    recorder: Recorder,
    bind: str = "127.0.0.1:0",
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `recorder` on loopback; `nursery.start` returns its base URL."""
    config = hypercorn.config.Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.5

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, recorder.build_app(), config))
        recorder.url = binds[0].rstrip("/")
        task_status.started(recorder.url)
