"""What sessions' sidecars ask (the webhook's `SessionSink`): the long poll and the agent's state.

A persistent session's sprite long-polls `next_message` with its session token and gets each
message with its own job id and job token; a non-persistent session's sprites hand the agent's
conversation back after a message (`save_agent_state`) and the next one restores it
(`agent_state`), asked with their job token. Every request is checked by the one authority
for sidecar requests (the Relay: `authorize` for a job token, `authorize_session` for a
session token). It needs no callback URL, so it answers from the moment the listener is bound.
"""

from __future__ import annotations

from typing import Any, Protocol

import trio

from ..domain.errors import InvalidToken, UnknownJob
from ..domain.job import Job, JobState
from ..domain.session import SessionGone, UnknownSession
from ..ports.job_store import JobStore
from .session_registry import LiveSession, LiveSessions

MAX_AGENT_STATE_CHARS = 2 * 1024 * 1024


class SidecarAuth(Protocol):
    """Checks a sidecar's Bearer token (the Relay implements it)."""

    async def authorize(self, authorization: str | None, job_id: object) -> Job:
        """The job its token was issued for; `InvalidToken` otherwise (an unknown job too)."""
        ...

    def authorize_session(self, authorization: str | None, session_id: object) -> str:
        """The session id its token was issued for; `InvalidToken` otherwise."""
        ...


class SessionPolls:
    def __init__(self, *, sessions: LiveSessions, jobs: JobStore, auth: SidecarAuth, poll_wait_s: float) -> None:
        self.sessions = sessions
        self.jobs = jobs
        self.auth = auth
        self.poll_wait_s = poll_wait_s

    async def next_message(
        self, authorization: str | None, session_id: object, running: str | None, wait_s: float
    ) -> dict[str, Any] | None:
        """The next message for a persistent sprite, `{"cancel": true}` when the message it runs
        (`running`) has ended here, or None when nothing happened within `wait_s`."""
        session_id = self.auth.authorize_session(authorization, session_id)
        live = self.sessions.get(session_id)
        if live is None or not live.session.is_live:
            raise SessionGone(session_id)
        with trio.move_on_after(max(0.0, min(wait_s, self.poll_wait_s))):
            while True:
                changed = live.changed
                if not live.session.is_live:
                    raise SessionGone(session_id)
                if running is not None:
                    if await self._has_ended(running, session_id):
                        return {"cancel": True, "jobId": running}
                else:
                    offer = await self._offer(live)
                    if offer is not None:
                        return offer
                await changed.wait()
        return None

    async def _has_ended(self, job_id: str, session_id: str) -> bool:
        try:
            job = await self.jobs.get(job_id)
        except UnknownJob:
            return True
        return job.session != session_id or job.is_finished

    async def _offer(self, live: LiveSession) -> dict[str, Any] | None:
        """The assigned job until the sprite claims it (its first report moves it to running)."""
        if live.assignment is None:
            return None
        job_id, token = live.assignment
        job = await self.jobs.get(job_id)
        if job.state is not JobState.STARTING:
            return None
        return {"jobId": job.id, "jobToken": token, "task": job.spec.task, "timeoutS": job.spec.timeout_s}

    async def _session_job(self, authorization: str | None, job_id: object) -> tuple[Job, LiveSession | None]:
        job = await self.auth.authorize(authorization, job_id)
        if job.session is None:
            raise InvalidToken()
        return job, self.sessions.get(job.session)

    async def agent_state(self, authorization: str | None, job_id: object) -> str | None:
        job, live = await self._session_job(authorization, job_id)
        if live is not None:
            return live.session.agent_state
        try:
            return (await self.sessions.store.get_session(job.session or "")).agent_state
        except UnknownSession:
            return None

    async def save_agent_state(self, authorization: str | None, job_id: object, state: str) -> None:
        """Keep the agent's conversation after a message; only the session's running message may."""
        job, live = await self._session_job(authorization, job_id)
        if live is None or live.session.current_job != job.id or len(state) > MAX_AGENT_STATE_CHARS:
            return
        live.session = live.session.with_agent_state(state)
        await self.sessions.save(live)
