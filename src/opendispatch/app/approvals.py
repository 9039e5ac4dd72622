"""Tool calls that wait for a person: asked by the sprite, answered in chat, kept in the store.

The sidecar asks (`POST /webhooks/approval`, job token) when the agent is about to make a
call the channel's policy names; the request is stored and posted in the job's thread with
Approve / Deny / Approve for this job; the sidecar long-polls (`GET /webhooks/approval`) for
the decision, so the sprite needs no inbound port. A person answers with a button (a
command: `/od-approve ID [--job]`, `/od-deny ID`); only the job's owner or an admin may. No
answer within the job's approval timeout is a denial. Every request and decision is a line
of the job's output (so `/od-logs` shows them, and the live message shows "waiting for
approval since 12:03") and a row of the store, so a restart while one waits re-posts it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ..domain.approvals import (
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalState,
    Outcome,
    UnknownRequest,
    main_argument,
    parse_policy,
)
from ..domain.errors import JobClosed, UnknownJob
from ..domain.job import Conversation, Job, User
from ..domain.job_spec import format_duration
from ..domain.messages import ApprovalPrompt, MessageRef
from ..domain.ownership import Ownership
from ..ports.approval_store import ApprovalStore
from ..ports.chat import ChatPort
from ..ports.job_store import JobStore
from .relay import Relay

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 500


class ApprovalDesk:
    def __init__(
        self,
        *,
        store: ApprovalStore,
        jobs: JobStore,
        relay: Relay,
        chat: ChatPort,
        ownership: Ownership,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.relay = relay
        self.chat = chat
        self.ownership = ownership
        self.wall_clock = wall_clock
        self._decided: dict[str, trio.Event] = {}
        self._prompts: dict[str, MessageRef] = {}
        #: job id -> the rules a person approved "for this job".
        self._approved_for_job: dict[str, set[str]] = {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Re-post what waited when the dispatcher stopped (the sidecar asks again meanwhile)."""
        for request in await self.store.pending_approvals():
            try:
                job = await self.jobs.get(request.job_id)
            except UnknownJob:
                continue
            if job.is_finished:
                await self._settle(job, request, ApprovalState.TIMED_OUT, by=None, quiet=True)
                continue
            try:
                await self._post(job, request)
            except Exception:
                log.exception("approval %s: could not post it again", request.id)
        task_status.started()

    # --- the sidecar's side ------------------------------------------------------------------

    async def ask(
        self, authorization: str | None, job_id: object, tool: str, arguments: dict[str, Any], ask_id: str = ""
    ) -> Outcome:
        job = await self.relay.authorize(authorization, job_id)
        if ask_id:  # sent again after a lost answer: the request it made, as it stands
            for earlier in await self.store.approvals_of(job.id):
                if earlier.ask_id == ask_id:
                    return _outcome(earlier, job)
        if job.is_finished:
            raise JobClosed(job.id)
        policy = parse_policy(job.spec.approvals) if job.spec.approvals else ApprovalPolicy()
        rule = policy.needs_approval(tool, arguments)
        if rule is None:
            return Outcome(None, "approve", "the channel's policy does not ask about this call")
        if str(rule) in self._approved_for_job.get(job.id, set()):
            return Outcome(None, "approve", f"approved for the rest of the job ({rule})")
        redactor = self._redactor(job)
        detail = redactor(main_argument(arguments) or "")[:MAX_DETAIL_CHARS]
        reason = arguments.get("description")
        request = ApprovalRequest(
            id=f"a-{secrets.token_hex(4)}",
            job_id=job.id,
            tool=tool[:64],
            detail=detail,
            reason=redactor(reason)[:MAX_DETAIL_CHARS] if isinstance(reason, str) else "",
            rule=str(rule),
            asked_at=self.wall_clock(),
            ask_id=ask_id,
        )
        await self.store.save_approval(request)
        await self._post(job, request)
        await self.relay.note(job, f"{request.log_line()} since {_clock(request.asked_at)}")
        return Outcome(request.id, "pending")

    async def wait(self, authorization: str | None, job_id: object, request_id: str, wait_s: float) -> Outcome:
        job = await self.relay.authorize(authorization, job_id)
        request = await self.store.approval(request_id)
        if request is None or request.job_id != job.id:
            raise UnknownRequest(request_id)
        deadline = request.asked_at + job.spec.approval_timeout_s
        if not request.state.is_decided:
            remaining = deadline - self.wall_clock()
            if remaining > 0:
                event = self._decided.setdefault(request.id, trio.Event())
                with trio.move_on_after(min(wait_s, remaining)):
                    await event.wait()
                request = await self.store.approval(request_id) or request
            if not request.state.is_decided and self.wall_clock() >= deadline:
                request = await self._settle(job, request, ApprovalState.TIMED_OUT, by=None)
        return _outcome(request, job)

    # --- the chat's side ---------------------------------------------------------------------

    async def decide(self, request_id: str, approve: bool, for_job: bool, user: User, asked_in: Conversation) -> str:
        """A person's answer; returns what to tell them."""
        request = await self.store.approval(request_id)
        if request is None:
            raise UnknownRequest(request_id)
        job = await self.jobs.get(request.job_id)
        self.ownership.check_may_act(user, job.requested_by, f"job {job.id}", verb="answer its approval requests")
        if request.state.is_decided:
            who = f" by {request.decided_by}" if request.decided_by else ""
            return f"Request {request.id} was already {request.state.value}{who}."
        if job.is_finished:
            await self._settle(job, request, ApprovalState.TIMED_OUT, by=None)
            return f"Job {job.id} has ended; its request {request.id} no longer waits."
        state = ApprovalState.APPROVED if approve else ApprovalState.DENIED
        request = await self._settle(job, request, state, by=user.name, for_job=for_job and approve)
        return request.log_line().removeprefix("[approval] ")

    async def job_ended(self, job: Job) -> None:
        """Whatever the job still waited for no longer waits: its prompts say so."""
        self._approved_for_job.pop(job.id, None)
        for request in await self.store.approvals_of(job.id):
            if not request.state.is_decided:
                await self._settle(job, request, ApprovalState.TIMED_OUT, by=None)

    # --- inside ------------------------------------------------------------------------------

    async def _settle(
        self,
        job: Job,
        request: ApprovalRequest,
        state: ApprovalState,
        *,
        by: str | None,
        for_job: bool = False,
        quiet: bool = False,
    ) -> ApprovalRequest:
        decided = request.decided(state, by=by or "", at=self.wall_clock(), for_job=for_job)
        if by is None:
            decided = attrs.evolve(decided, decided_by=None)
        await self.store.save_approval(decided)
        if for_job:
            self._approved_for_job.setdefault(job.id, set()).add(decided.rule)
        event = self._decided.pop(request.id, None)
        if event is not None:
            event.set()
        if quiet:
            return decided
        ref = self._prompts.pop(request.id, None)
        if ref is not None:
            try:
                await self.chat.edit(ref, ApprovalPrompt(job, decided))
            except Exception:
                log.exception("approval %s: could not update its prompt", request.id)
        if not job.is_finished:
            await self.relay.note(job, decided.log_line())
        return decided

    async def _post(self, job: Job, request: ApprovalRequest) -> None:
        live = self.relay.live.get(job.id)
        reply_to = live.started_ref if live is not None else None
        self._prompts[request.id] = await self.chat.send(job.conversation, ApprovalPrompt(job, request), reply_to=reply_to)

    def _redactor(self, job: Job) -> Callable[[str], str]:
        live = self.relay.live.get(job.id)
        return (live.redactor if live is not None else self.relay.redactor).redact


def _outcome(request: ApprovalRequest, job: Job) -> Outcome:
    if request.state is ApprovalState.APPROVED:
        return Outcome(request.id, "approve", f"approved in chat by {request.decided_by}", request.decided_by)
    if request.state is ApprovalState.DENIED:
        return Outcome(request.id, "deny", f"denied in chat by {request.decided_by}", request.decided_by)
    if request.state is ApprovalState.TIMED_OUT:
        waited = format_duration(job.spec.approval_timeout_s)
        return Outcome(request.id, "deny", f"no one approved it in chat within {waited}, so it was denied")
    return Outcome(request.id, "pending")


def _clock(at: float) -> str:
    return time.strftime("%H:%M UTC", time.gmtime(at))
