"""Sessions: named conversations with an agent, one message at a time, kept between messages.

Each message becomes a job of its session (own id, output, card; listed by `/od-jobs`) and
runs through the ordinary `JobRunner`. The `SessionManager` decides *when* each one runs
(one at a time, the rest queued) and *where*:

- persistent: one sprite for the whole session. Its sidecar long-polls `next_message` with
  the session's token; the runner hands it each job (`deliver`) instead of spawning, and
  gives it back (`release`) instead of destroying. After `idle_suspend_s` without a message
  the sprite is suspended (when the backend can), and woken by the next message; after
  `max_idle_s` it is destroyed and the channel told.
- not persistent: every message runs in a fresh sprite; the sidecar hands the agent's
  conversation back (`save_agent_state`) and the next sprite restores it (`agent_state`).

Timers are cancel-scope deadlines in each session's supervisor task; sessions are stored, so
a restarted dispatcher resumes them (the persistent sprite reconnects with its token).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs
import trio

from ..domain.access import AccessPolicy
from ..domain.ownership import Ownership
from ..domain.commands import StartSession
from ..domain.errors import DispatchError, InvalidToken, SpawnFailed, UnknownJob
from ..domain.ids import job_id_from_hex
from ..domain.job import Conversation, Job, JobState, User
from ..domain.job_spec import format_duration
from ..domain.messages import ChatMessage, Inbound, JobAccepted, MessageRef, Notice
from ..domain.session import (
    Session,
    SessionConflict,
    SessionGone,
    SessionState,
    UnknownSession,
    looks_like_session_id,
    session_id_from_hex,
    validate_session_agent,
)
from ..domain.sidecar import session_job_environment, session_sprite_environment
from ..domain.repo_credentials import CredentialsUnavailable
from ..domain.tokens import TokenIssuer, bearer_token
from ..ports.chat import ChatPort
from ..ports.job_store import JobStore
from ..ports.session_store import SessionStore
from ..ports.sprites import Sprite, SpritePort, SpriteRequest, SuspendableSprites
from .job_runner import JobRunner
from .ledger import JobLedger
from .repo_credentials import JobCredentials

log = logging.getLogger(__name__)

DESTROY_TIMEOUT_S = 30.0
MAX_AGENT_STATE_CHARS = 2 * 1024 * 1024


@attrs.frozen
class SessionSettings:
    """Timers and switches of sessions; config.py fills them from the environment."""

    idle_suspend_s: float = 15 * 60.0
    max_idle_s: float = 24 * 3600.0
    allow_shell: bool = False
    poll_wait_s: float = 25.0
    token_lifetime_s: float = 30 * 24 * 3600.0


@attrs.define(eq=False)
class _Live:
    """What this process keeps for a session besides the stored value."""

    session: Session
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    changed: trio.Event = attrs.Factory(trio.Event)
    save_lock: trio.Lock = attrs.Factory(trio.Lock)
    assignment: tuple[str, str] | None = None  # (job id, job token) offered to the persistent sprite
    refs: dict[str, MessageRef | None] = attrs.Factory(dict)  # each message's accepted reply
    stopping: bool = False
    cannot_suspend: bool = False


class SessionManager:
    def __init__(
        self,
        *,
        store: SessionStore,
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
        access: AccessPolicy = AccessPolicy(),
        ownership: Ownership = Ownership(),
        credentials: JobCredentials | None = None,
    ) -> None:
        #: A persistent session's sprite fetches its repository token as the session.
        self.credentials = credentials
        self.store = store
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
        self.access = access
        self.ownership = ownership
        self._live: dict[str, _Live] = {}
        self._persistent: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._any_change = trio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[SessionManager] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the stored sessions and own their tasks; call `resume_all` once jobs are adopted."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for session in await self.store.live_sessions():
                self._live[session.id] = _Live(session)
                if session.persistent:
                    self._persistent.add(session.id)
                    if self.credentials is not None:
                        self.credentials.expect(session.id, session.spec.repo)
            task_status.started(self)
            await trio.sleep_forever()

    async def resume_all(self) -> None:
        """Start the supervisor of every loaded session (after a restart)."""
        alive: set[str] | None = None
        if any(live.session.sprite_id for live in self._live.values()):
            try:
                alive = {sprite.id for sprite in await self.sprites.list_sprites()}
            except DispatchError as exc:
                log.warning("sessions: cannot list sprites (%s); trusting the stored ones", exc)
        for live in list(self._live.values()):
            sprite_id = live.session.sprite_id
            if alive is not None and sprite_id is not None and sprite_id not in alive:
                live.session = live.session.with_sprite(None)
                await self._save(live)
                await self._say(
                    live.session.conversation,
                    Notice(f"The sprite of session {live.session.name} was gone after a restart; "
                           "the next message starts a new one (its workspace starts fresh)."),
                )
            self._spawn_supervisor(live)

    def _spawn_supervisor(self, live: _Live) -> None:
        if self._nursery is None:
            raise RuntimeError("SessionManager.run must be started first")
        self._nursery.start_soon(self._supervise, live)

    # --- commands -------------------------------------------------------------------------

    def live_sessions(self) -> list[Session]:
        return [live.session for live in self._live.values() if live.session.is_live]

    def waiting_jobs(self) -> set[str]:
        """Queued messages: not running yet, so no reaper may time them out."""
        return {job_id for live in self._live.values() for job_id in live.session.queue}

    def find(self, name: str) -> Session:
        return self._find(name).session

    def _find(self, name: str) -> _Live:
        for live in self._live.values():
            if live.session.name == name and live.session.is_live:
                return live
        raise UnknownSession(name)

    def _for_conversation(self, conversation: Conversation) -> _Live | None:
        for live in self._live.values():
            if live.session.is_live and live.session.routes(conversation):
                return live
        return None

    async def start(self, command: StartSession, conversation: Conversation, user: User) -> Session:
        validate_session_agent(command.spec, allow_shell=self.settings.allow_shell)
        for live in self._live.values():
            other = live.session
            if other.is_live and other.name == command.name:
                raise SessionConflict(
                    f"A session named {command.name} is already running (see /od-list). "
                    f"Pick another name, or /od-stop {command.name} first."
                )
            if other.is_live and other.routes(conversation):
                raise SessionConflict(
                    f"Session {other.name} already listens here. /od-stop {other.name} first, "
                    "or start this one in another thread or channel."
                )
        now = self.wall_clock()
        session = Session.begin(
            session_id=session_id_from_hex(secrets.token_hex(4)),
            name=command.name,
            spec=command.spec,
            persistent=command.persistent,
            conversation=conversation,
            owner=user,
            agent_session_id=str(uuid.uuid4()),
            at=now,
        )
        live = _Live(session)
        self._live[session.id] = live
        if session.persistent:
            self._persistent.add(session.id)
        await self.store.add_session(session)
        ref = await self._say(conversation, Notice(self._started_text(session)))
        live.session = live.session.with_thread(ref.id if ref is not None else None)
        await self._save(live)
        self._spawn_supervisor(live)
        return live.session

    def _started_text(self, session: Session) -> str:
        name = session.name
        head = f"▶ Session {name} started: {session.spec.summary()} · owner {session.owner.name}"
        if session.persistent:
            body = (
                "Persistent: one sprite keeps the workspace (clone, edits, installed tools) and the agent's "
                f"conversation between messages. It is suspended after {format_duration(self.settings.idle_suspend_s)} "
                f"without a message and ended after {format_duration(self.settings.max_idle_s)}."
            )
        else:
            body = (
                "Each message runs in a fresh sprite with a fresh clone: the agent's conversation carries over, "
                "but uncommitted workspace changes do NOT. Commit and push what you want to keep "
                "(or use --persistent to keep one sprite)."
            )
        how = f"Send plain messages here, or /od-send {name} MESSAGE from anywhere; /od-stop {name} ends it."
        return "\n".join([head, body, how])

    async def route(self, inbound: Inbound) -> bool:
        """A plain (non-command) message: True when a session here took it."""
        live = self._for_conversation(inbound.conversation)
        if live is None:
            return False
        self.access.check_user(inbound.user, inbound.conversation)
        owner = live.session.owner
        if inbound.user.id != owner.id and not self.ownership.is_admin(inbound.user):
            # Someone else talking in the session's thread: not theirs to drive (it runs in
            # the owner's conversation, with the owner's agent). Said only when addressed.
            if inbound.addressed:
                self.ownership.check_may_act(
                    inbound.user, owner, f"session {live.session.name}", verb="send it messages"
                )
            return True
        await self._submit(live, inbound.text, inbound.user)
        return True

    async def send(self, name: str, message: str, conversation: Conversation, user: User) -> Job:
        live = self._find(name)
        self.ownership.check_may_act(user, live.session.owner, f"session {name}", verb="send it messages")
        job = await self._submit(live, message, user)
        if not live.session.routes(conversation):
            await self._say(
                conversation,
                Notice(f"Sent to session {name} as {job.id}; its output appears where the session was started."),
            )
        return job

    async def _submit(self, live: _Live, text: str, user: User) -> Job:
        session = live.session
        spec = attrs.evolve(session.spec, task=text)
        job_id = job_id_from_hex(secrets.token_hex(4))
        job = attrs.evolve(Job.queued(job_id, spec, session.conversation, user, at=self.wall_clock()), session=session.id)
        await self.jobs.add(job)
        accepted = JobAccepted(job, web_url=self.runner.job_link(job), persistent_session=session.persistent)
        live.refs[job.id] = await self._say(session.conversation, accepted)
        if not live.session.is_live:
            await self.ledger.change_if_possible(job.id, lambda j: None if j.is_finished else j.cancelled(
                by=f"session {session.name} ending", at=self.wall_clock()))
            raise UnknownSession(session.name)
        live.session, ahead = live.session.submit(job.id, at=self.wall_clock())
        await self._save(live)
        if ahead:
            noun = "message" if ahead == 1 else "messages"
            await self._say(
                session.conversation,
                Notice(f"Session {session.name} is busy: {job.id} is queued ({ahead} {noun} ahead of it)."),
            )
        self._notify(live)
        return job

    async def stop(self, name: str | None, user: User, conversation: Conversation) -> None:
        if name is None:
            targets = [live for live in self._live.values() if live.session.is_live and live.session.owner.id == user.id]
            if not targets:
                await self._say(conversation, Notice("You have no running sessions (/od-list shows them)."))
                return
        else:
            live = self._find(name)
            self.ownership.check_may_act(user, live.session.owner, f"session {name}")
            targets = [live]
        lines = [await self._end(live, f"stopped by {user.name}", by=user.name) for live in targets]
        ended = tuple(live.session.id for live in targets)
        await self._say(conversation, Notice("\n".join(lines), ended_sessions=ended))

    async def cancel_queued(self, job_id: str, by: str) -> bool:
        """`/od-cancel` of a message still waiting in its session's queue."""
        for live in self._live.values():
            if job_id in live.session.queue:
                live.session = attrs.evolve(live.session, queue=tuple(j for j in live.session.queue if j != job_id))
                await self._save(live)
                await self.ledger.change_if_possible(
                    job_id, lambda j: None if j.is_finished else j.cancelled(by=by, at=self.wall_clock())
                )
                self._notify(live)
                return True
        return False

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds; re-checked whenever any session changes (tests, demo)."""
        while not condition():
            await self._any_change.wait()

    def by_name(self, name: str) -> Session | None:
        """The live session called `name`, if any."""
        return next((s for s in self.live_sessions() if s.name == name), None)

    async def wait_idle(self) -> None:
        """Return once no session has a message running or waiting (the demo waits on this)."""
        while any(live.session.waiting for live in self._live.values() if live.session.is_live):
            await self._any_change.wait()

    # --- the supervisor: one task per session ---------------------------------------------

    async def _supervise(self, live: _Live) -> None:
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
                            await self._save(live)
                            continue
                        await self._idle(live)
                    nursery.cancel_scope.cancel()
        except Exception:
            log.exception("session %s: supervisor failed", live.session.name)

    async def _bring_up(self, live: _Live, nursery: trio.Nursery) -> bool:
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
                await self._end(live, f"no credentials for its repository: {exc}", by="the dispatcher", announce=True)
                return False
            env.update(self.credentials.sprite_environment(session.spec.repo))
        try:
            sprite = await self.sprites.spawn(SpriteRequest(job_id=session.id, image=session.spec.image, env=env))
        except DispatchError as exc:
            await self._end(live, f"its sprite could not start: {exc}", by="the dispatcher", announce=True)
            return False
        if live.session.state is SessionState.STARTING:
            live.session = live.session.ready(sprite.id, at=self.wall_clock())
        else:
            live.session = live.session.with_sprite(sprite.id)
        await self._save(live)
        nursery.start_soon(self._watch_sprite, live, sprite.id)
        self._notify(live)
        return True

    async def _watch_sprite(self, live: _Live, sprite_id: str) -> None:
        """A persistent sprite that stops on its own is replaced at the next message."""
        code = await self.sprites.wait_exited(sprite_id)
        if live.stopping or not live.session.is_live or live.session.sprite_id != sprite_id:
            return
        log.warning("session %s: sprite %s stopped (exit %s)", live.session.name, sprite_id, code)
        live.session = live.session.with_sprite(None)
        if live.session.state is SessionState.SUSPENDED:
            live.session = live.session.woken()
        await self._save(live)
        await self._say(
            live.session.conversation,
            Notice(f"The sprite of session {live.session.name} stopped (exit code {code}); "
                   "the next message starts a new one (its workspace starts fresh)."),
        )
        self._notify(live)

    async def _follow(self, live: _Live, job_id: str) -> None:
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
        await self._save(live)
        self._notify(live)

    async def _idle(self, live: _Live) -> None:
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
            await self._end(live, f"idle for {idle}", by="the idle timer", announce=True)

    async def _suspend(self, live: _Live) -> None:
        sprite_id = live.session.sprite_id
        assert sprite_id is not None and isinstance(self.sprites, SuspendableSprites)
        try:
            await self.sprites.suspend(sprite_id)
        except DispatchError as exc:
            log.warning("session %s: cannot suspend sprite %s: %s", live.session.name, sprite_id, exc)
            live.cannot_suspend = True
            return
        live.session = live.session.suspended()
        await self._save(live)
        log.info("session %s: sprite %s suspended", live.session.name, sprite_id)
        self._notify(live)

    async def _wake(self, live: _Live) -> None:
        sprite_id = live.session.sprite_id
        assert sprite_id is not None
        try:
            if isinstance(self.sprites, SuspendableSprites):
                await self.sprites.wake(sprite_id)
            live.session = live.session.woken()
        except DispatchError as exc:
            log.warning("session %s: cannot wake sprite %s: %s", live.session.name, sprite_id, exc)
            live.session = live.session.woken().with_sprite(None)
            await self._say(
                live.session.conversation,
                Notice(f"The sprite of session {live.session.name} could not be woken ({exc}); "
                       "starting a new one (its workspace starts fresh)."),
            )
        await self._save(live)
        self._notify(live)

    async def _end(self, live: _Live, reason: str, *, by: str, announce: bool = False) -> str:
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
        await self._save(live)
        self._notify(live)
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
                await self._say(live.session.conversation, Notice(f"{text}\n{restart}", ended_sessions=ended))
        self._live.pop(live.session.id, None)
        self._notify(live)
        live.scope.cancel()
        return text

    # --- the JobRunner hook (SessionSprites) ----------------------------------------------

    def environment(self, job: Job) -> Mapping[str, str]:
        if job.session is None or job.session in self._persistent:
            return {}
        live = self._live.get(job.session)
        if live is None:
            return {}
        return session_job_environment(live.session.id, live.session.agent_session_id)

    def provides_sprite(self, job: Job) -> bool:
        return job.session is not None and job.session in self._persistent

    async def deliver(self, job: Job, token: str) -> Sprite:
        live = self._live.get(job.session or "")
        if live is None or not live.session.is_live:
            raise SpawnFailed(f"The session of {job.id} has ended; start a new one with /od-start.")
        sprite_id = live.session.sprite_id
        if sprite_id is None:
            raise SpawnFailed(f"Session {live.session.name} has no sprite right now; send the message again.")
        live.assignment = (job.id, token)
        self._notify(live)
        return Sprite(id=sprite_id, job_id=live.session.id)

    async def release(self, job: Job, sprite: Sprite) -> None:
        live = self._live.get(job.session or "")
        if live is not None and live.assignment is not None and live.assignment[0] == job.id:
            live.assignment = None
        if live is not None:
            self._notify(live)

    # --- what sidecars ask (the webhook's SessionSink) ------------------------------------

    async def next_message(
        self, authorization: str | None, session_id: object, running: str | None, wait_s: float
    ) -> dict[str, Any] | None:
        """The next message for a persistent sprite, `{"cancel": true}` when the message it runs
        (`running`) has ended here, or None when nothing happened within `wait_s`."""
        token = bearer_token(authorization)
        if not isinstance(session_id, str) or not looks_like_session_id(session_id):
            raise InvalidToken()
        self.tokens.verify(token, session_id, now=self.wall_clock())
        live = self._live.get(session_id)
        if live is None or not live.session.is_live:
            raise SessionGone(session_id)
        with trio.move_on_after(max(0.0, min(wait_s, self.settings.poll_wait_s))):
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

    async def _offer(self, live: _Live) -> dict[str, Any] | None:
        """The assigned job until the sprite claims it (its first report moves it to running)."""
        if live.assignment is None:
            return None
        job_id, token = live.assignment
        job = await self.jobs.get(job_id)
        if job.state is not JobState.STARTING:
            return None
        return {"jobId": job.id, "jobToken": token, "task": job.spec.task, "timeoutS": job.spec.timeout_s}

    async def _session_job(self, authorization: str | None, job_id: object) -> tuple[Job, _Live | None]:
        token = bearer_token(authorization)
        if not isinstance(job_id, str):
            raise InvalidToken()
        self.tokens.verify(token, job_id, now=self.wall_clock())
        try:
            job = await self.jobs.get(job_id)
        except UnknownJob:
            raise InvalidToken() from None
        if job.session is None:
            raise InvalidToken()
        return job, self._live.get(job.session)

    async def agent_state(self, authorization: str | None, job_id: object) -> str | None:
        job, live = await self._session_job(authorization, job_id)
        if live is not None:
            return live.session.agent_state
        try:
            return (await self.store.get_session(job.session or "")).agent_state
        except UnknownSession:
            return None

    async def save_agent_state(self, authorization: str | None, job_id: object, state: str) -> None:
        """Keep the agent's conversation after a message; only the session's running message may."""
        job, live = await self._session_job(authorization, job_id)
        if live is None or live.session.current_job != job.id or len(state) > MAX_AGENT_STATE_CHARS:
            return
        live.session = live.session.with_agent_state(state)
        await self._save(live)

    # --- helpers --------------------------------------------------------------------------

    def _notify(self, live: _Live) -> None:
        live.changed.set()
        live.changed = trio.Event()
        self._any_change.set()
        self._any_change = trio.Event()

    async def _save(self, live: _Live) -> None:
        """Write the newest value; saves are serialised so a slower one never overwrites a newer one."""
        async with live.save_lock:
            try:
                await self.store.save_session(live.session)
            except UnknownSession:
                await self.store.add_session(live.session)

    async def _say(self, conversation: Conversation, message: ChatMessage) -> MessageRef | None:
        try:
            return await self.chat.send(conversation, message)
        except Exception:
            log.warning("could not reply in chat", exc_info=True)
            return None


def session_table_lines(sessions: Collection[Session], now: float) -> list[str]:
    """`/od-list`'s sessions part: name, state, age, messages, mode, what, owner."""
    if not sessions:
        return ["No sessions. Start one with /od-start NAME [--persistent]."]
    lines = ["Sessions:"]
    for session in sessions:
        age = format_duration(max(0.0, now - session.created_at))
        mode = "persistent" if session.persistent else "sprite per message"
        count = f"{session.message_count} message{'s' if session.message_count != 1 else ''}"
        extra = f", {len(session.queue)} queued" if session.queue else ""
        lines.append(
            f"{session.name}  {session.state.value:<9} {age:>7}  {count}{extra}  {mode}  "
            f"{session.spec.summary()}  ({session.owner.name})"
        )
    return lines
