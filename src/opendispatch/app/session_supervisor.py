"""The supervisor of sessions: one task per session, from its start to its end.

The task brings a persistent session's sprite up (and replaces it when it stops on its own),
runs the session's messages one at a time through the `JobRunner`, suspends the idle sprite
and wakes it for the next message, and ends the session after `max_idle_s` (or when asked:
`end`). Timers are cancel-scope deadlines in the task.

`SessionSpriteHooks` is the runner's side of a persistent session's sprite (the runner's
`SessionSprites` hooks): it needs only the registry, so the runner is built with it, and this
supervisor, which runs messages on the runner, is built after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import trio

from ..domain.errors import DispatchError, SpawnFailed, UnknownJob
from ..domain.job import Job, JobState
from ..domain.job_spec import format_duration
from ..domain.messages import Notice
from ..domain.repo_credentials import CredentialsUnavailable
from ..domain.session import SessionState
from ..domain.sidecar import session_job_environment, session_sprite_environment
from ..domain.tokens import TokenIssuer
from ..ports.chat import ChatPort
from ..ports.job_store import JobStore
from ..ports.sprites import Sprite, SpritePort, SpriteRequest, SuspendableSprites
from .job_runner import JobRunner
from .ledger import JobLedger
from .repo_credentials import JobCredentials
from .session_registry import LiveSession, LiveSessions
from .sessions import SessionSettings, log, say

DESTROY_TIMEOUT_S = 30.0


class SessionSpriteHooks:
    """What the runner asks about a session's job (it implements `job_runner.SessionSprites`).

    A message of a persistent session runs on the session's sprite: the runner hands the job
    over (`deliver`: offered to the sprite's long poll) instead of spawning, and gives it back
    (`release`) instead of destroying the sprite.
    """

    def __init__(self, sessions: LiveSessions) -> None:
        self.sessions = sessions

    def environment(self, job: Job) -> Mapping[str, str]:
        if job.session is None or self.sessions.is_persistent(job.session):
            return {}
        live = self.sessions.get(job.session)
        if live is None:
            return {}
        return session_job_environment(live.session.id, live.session.agent_session_id)

    def provides_sprite(self, job: Job) -> bool:
        return self.sessions.is_persistent(job.session)

    async def deliver(self, job: Job, token: str) -> Sprite:
        live = self.sessions.get(job.session or "")
        if live is None or not live.session.is_live:
            raise SpawnFailed(f"The session of {job.id} has ended; start a new one with /od-start.")
        sprite_id = live.session.sprite_id
        if sprite_id is None:
            raise SpawnFailed(f"Session {live.session.name} has no sprite right now; send the message again.")
        live.assignment = (job.id, token)
        self.sessions.notify(live)
        return Sprite(id=sprite_id, job_id=live.session.id)

    async def release(self, job: Job, sprite: Sprite) -> None:
        live = self.sessions.get(job.session or "")
        if live is not None and live.assignment is not None and live.assignment[0] == job.id:
            live.assignment = None
        if live is not None:
            self.sessions.notify(live)


class SessionSupervisor:
    def __init__(
        self,
        *,
        sessions: LiveSessions,
        jobs: JobStore,
        ledger: JobLedger,
        runner: JobRunner,
        sprites: SpritePort,
        chat: ChatPort,
        tokens: TokenIssuer,
        callback_url: str,
        passthrough: Mapping[str, str],
        wall_clock: Callable[[], float],
        settings: SessionSettings = SessionSettings(),
        credentials: JobCredentials | None = None,
    ) -> None:
        #: A persistent session's sprite fetches its repository token as the session.
        self.credentials = credentials
        self.sessions = sessions
        self.jobs = jobs
        self.ledger = ledger
        self.runner = runner
        self.sprites = sprites
        self.chat = chat
        self.tokens = tokens
        self.callback_url = callback_url
        self.passthrough = dict(passthrough)
        self.wall_clock = wall_clock
        self.settings = settings
        self._nursery: trio.Nursery | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[SessionSupervisor] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the sessions' tasks; call `resume_all` once jobs are adopted."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.credentials is not None:
                for live in self.sessions:  # the stored ones (the registry was loaded at start)
                    if live.session.persistent:
                        self.credentials.expect(live.session.id, live.session.spec.repo)
            task_status.started(self)
            await trio.sleep_forever()

    async def resume_all(self) -> None:
        """Start the supervisor of every loaded session (after a restart)."""
        alive: set[str] | None = None
        if any(live.session.sprite_id for live in self.sessions):
            try:
                alive = {sprite.id for sprite in await self.sprites.list_sprites()}
            except DispatchError as exc:
                log.warning("sessions: cannot list sprites (%s); trusting the stored ones", exc)
        for live in self.sessions:
            sprite_id = live.session.sprite_id
            if alive is not None and sprite_id is not None and sprite_id not in alive:
                live.session = live.session.with_sprite(None)
                await self.sessions.save(live)
                await say(
                    self.chat,
                    live.session.conversation,
                    Notice(f"The sprite of session {live.session.name} was gone after a restart; "
                           "the next message starts a new one (its workspace starts fresh)."),
                )
            self.supervise(live)

    def supervise(self, live: LiveSession) -> None:
        """Start the task of a session (a new one, or one loaded after a restart)."""
        if self._nursery is None:
            raise RuntimeError("SessionSupervisor.run must be started first")
        self._nursery.start_soon(self._supervise, live)

    # --- one task per session -------------------------------------------------------------

    async def _supervise(self, live: LiveSession) -> None:
        try:
            with live.scope:
                async with trio.open_nursery() as nursery:
                    if live.session.persistent and live.session.sprite_id is not None:
                        nursery.start_soon(self._watch_sprite, live, live.session.sprite_id)
                    while live.session.is_live:
                        if live.session.persistent and live.session.sprite_id is None:
                            if not await self._bring_up(live, nursery):
                                return
                            continue
                        if live.session.current_job is not None:
                            await self._follow(live, live.session.current_job)
                            continue
                        job_id = live.session.next_job()
                        if job_id is not None:
                            if live.session.state is SessionState.SUSPENDED:
                                await self._wake(live)
                                continue
                            live.session = live.session.begin_next(at=self.wall_clock())
                            await self.sessions.save(live)
                            continue
                        await self._idle(live)
                    nursery.cancel_scope.cancel()
        except Exception:
            log.exception("session %s: supervisor failed", live.session.name)

    async def _bring_up(self, live: LiveSession, nursery: trio.Nursery) -> bool:
        """Spawn the persistent sprite; False (and the session ended) when that fails."""
        session = live.session
        now = self.wall_clock()
        token = self.tokens.issue(session.id, int(now + self.settings.token_lifetime_s))
        env = session_sprite_environment(
            session_id=session.id,
            token=token,
            agent=session.spec.agent.value,
            agent_session_id=session.agent_session_id,
            repo=session.spec.repo,
            branch=session.spec.branch,
            callback_url=self.callback_url,
            passthrough=self.passthrough,
            max_cost_usd=session.spec.max_cost_usd,
            model=session.spec.model,
            approvals=session.spec.approvals,
            approval_timeout_s=session.spec.approval_timeout_s,
        )
        if self.credentials is not None:
            try:
                await self.credentials.prepare(session.id, session.spec.repo)
            except CredentialsUnavailable as exc:
                await self.end(live, f"no credentials for its repository: {exc}", by="the dispatcher", announce=True)
                return False
            env.update(self.credentials.sprite_environment(session.spec.repo))
        try:
            sprite = await self.sprites.spawn(SpriteRequest(job_id=session.id, image=session.spec.image, env=env))
        except DispatchError as exc:
            await self.end(live, f"its sprite could not start: {exc}", by="the dispatcher", announce=True)
            return False
        if live.session.state is SessionState.STARTING:
            live.session = live.session.ready(sprite.id, at=self.wall_clock())
        else:
            live.session = live.session.with_sprite(sprite.id)
        await self.sessions.save(live)
        nursery.start_soon(self._watch_sprite, live, sprite.id)
        self.sessions.notify(live)
        return True

    async def _watch_sprite(self, live: LiveSession, sprite_id: str) -> None:
        """A persistent sprite that stops on its own is replaced at the next message."""
        code = await self.sprites.wait_exited(sprite_id)
        if live.stopping or not live.session.is_live or live.session.sprite_id != sprite_id:
            return
        log.warning("session %s: sprite %s stopped (exit %s)", live.session.name, sprite_id, code)
        live.session = live.session.with_sprite(None)
        if live.session.state is SessionState.SUSPENDED:
            live.session = live.session.woken()
        await self.sessions.save(live)
        await say(
            self.chat,
            live.session.conversation,
            Notice(f"The sprite of session {live.session.name} stopped (exit code {code}); "
                   "the next message starts a new one (its workspace starts fresh)."),
        )
        self.sessions.notify(live)

    async def _follow(self, live: LiveSession, job_id: str) -> None:
        """Run the current message (or wait for the runner that already runs it) to its end."""
        try:
            job = await self.jobs.get(job_id)
        except UnknownJob:
            job = None
        running = self.runner.live(job_id)
        if running is None and job is not None and job.state is JobState.QUEUED:
            assert self._nursery is not None
            running = await self._nursery.start(self.runner.run, job, live.refs.pop(job_id, None))
        if running is not None:
            await running.done.wait()
            reported = running.job.agent
            if reported is not None and reported.session_id:
                live.session = live.session.resumes_from(reported.session_id)
        live.session = live.session.finished(job_id, at=self.wall_clock())
        await self.sessions.save(live)
        self.sessions.notify(live)

    async def _idle(self, live: LiveSession) -> None:
        session = live.session
        changed = live.changed
        suspend = (
            session.persistent
            and session.state is SessionState.IDLE
            and session.sprite_id is not None
            and isinstance(self.sprites, SuspendableSprites)
            and not live.cannot_suspend
            and self.settings.idle_suspend_s < self.settings.max_idle_s
        )
        limit = self.settings.idle_suspend_s if suspend else self.settings.max_idle_s
        remaining = session.last_active_at + limit - self.wall_clock()
        with trio.move_on_after(max(0.0, remaining)) as timer:
            await changed.wait()
        if not timer.cancelled_caught or live.session.waiting or not live.session.is_live:
            return
        if suspend:
            await self._suspend(live)
        else:
            idle = format_duration(self.settings.max_idle_s)
            await self.end(live, f"idle for {idle}", by="the idle timer", announce=True)

    async def _suspend(self, live: LiveSession) -> None:
        sprite_id = live.session.sprite_id
        assert sprite_id is not None and isinstance(self.sprites, SuspendableSprites)
        try:
            await self.sprites.suspend(sprite_id)
        except DispatchError as exc:
            log.warning("session %s: cannot suspend sprite %s: %s", live.session.name, sprite_id, exc)
            live.cannot_suspend = True
            return
        live.session = live.session.suspended()
        await self.sessions.save(live)
        log.info("session %s: sprite %s suspended", live.session.name, sprite_id)
        self.sessions.notify(live)

    async def _wake(self, live: LiveSession) -> None:
        sprite_id = live.session.sprite_id
        assert sprite_id is not None
        try:
            if isinstance(self.sprites, SuspendableSprites):
                await self.sprites.wake(sprite_id)
            live.session = live.session.woken()
        except DispatchError as exc:
            log.warning("session %s: cannot wake sprite %s: %s", live.session.name, sprite_id, exc)
            live.session = live.session.woken().with_sprite(None)
            await say(
                self.chat,
                live.session.conversation,
                Notice(f"The sprite of session {live.session.name} could not be woken ({exc}); "
                       "starting a new one (its workspace starts fresh)."),
            )
        await self.sessions.save(live)
        self.sessions.notify(live)

    # --- the end --------------------------------------------------------------------------

    async def end(self, live: LiveSession, reason: str, *, by: str, announce: bool = False) -> str:
        """Stop a session: cancel its messages, destroy its sprite, say what was stopped.

        With `announce`, the session's channel is told here (the supervisor ends its own
        session this way: its scope is cancelled last, after the notice).
        """
        name = live.session.name
        if live.stopping:
            return f"Session {name} is already stopping."
        live.stopping = True
        if self.credentials is not None:
            self.credentials.forget(live.session.id)
        now = self.wall_clock()
        live.session, unfinished = live.session.stopped(reason, at=now)
        live.assignment = None
        await self.sessions.save(live)
        self.sessions.notify(live)
        cancelled: list[str] = []
        for job_id in unfinished:
            if await self.runner.cancel(job_id, by=by):
                cancelled.append(job_id)
                continue
            try:
                job = await self.ledger.change_if_possible(
                    job_id, lambda j: None if j.is_finished else j.cancelled(by=by, at=now)
                )
            except UnknownJob:
                continue
            if job.state is JobState.CANCELLED and job.cancelled_by == by:
                cancelled.append(job_id)
        sprite_id = live.session.sprite_id
        destroyed = False
        if sprite_id is not None:
            with trio.move_on_after(DESTROY_TIMEOUT_S) as cleanup:
                cleanup.shield = True
                try:
                    await self.sprites.destroy(sprite_id)
                    destroyed = True
                except Exception:
                    log.exception("session %s: could not destroy sprite %s", name, sprite_id)
        parts = [f"⏹ Session {name} ended ({reason}) after {live.session.message_count} message(s)."]
        if cancelled:
            parts.append(f"Cancelled: {', '.join(cancelled)}.")
        if destroyed:
            parts.append(f"Its sprite {sprite_id} was destroyed.")
        text = " ".join(parts)
        if announce:
            restart = f"/od-start {name} begins a new one."
            with trio.CancelScope(shield=True):
                ended = (live.session.id,)
                await say(self.chat, live.session.conversation, Notice(f"{text}\n{restart}", ended_sessions=ended))
        self.sessions.end(live.session.id)
        self.sessions.notify(live)
        live.scope.cancel()
        return text
