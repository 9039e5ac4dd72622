"""What chat asks of sessions: start, stop, send, a plain message, list, cancel a queued one.

A message becomes a queued job of its session (own id, output, card) and joins the session's
queue; the session's supervisor task (session_supervisor.py) runs it when its turn comes.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable

import attrs

from ..domain.access import AccessPolicy
from ..domain.commands import StartSession
from ..domain.ids import job_id_from_hex
from ..domain.job import Conversation, Job, User
from ..domain.job_spec import format_duration
from ..domain.messages import Inbound, JobAccepted, Notice
from ..domain.ownership import Ownership
from ..domain.session import Session, SessionConflict, UnknownSession, session_id_from_hex, validate_session_agent
from ..ports.chat import ChatPort
from ..ports.job_store import JobStore
from .ledger import JobLedger
from .session_registry import LiveSession, LiveSessions
from .session_supervisor import SessionSupervisor
from .sessions import SessionSettings, say
from .web_view import JobLink, no_link


class SessionCommands:
    def __init__(
        self,
        *,
        sessions: LiveSessions,
        supervisor: SessionSupervisor,
        jobs: JobStore,
        ledger: JobLedger,
        chat: ChatPort,
        wall_clock: Callable[[], float],
        settings: SessionSettings = SessionSettings(),
        access: AccessPolicy = AccessPolicy(),
        ownership: Ownership = Ownership(),
        job_link: JobLink = no_link,
    ) -> None:
        self.sessions = sessions
        self.supervisor = supervisor
        self.jobs = jobs
        self.ledger = ledger
        self.chat = chat
        self.wall_clock = wall_clock
        self.settings = settings
        self.access = access
        self.ownership = ownership
        #: A message's web page ("View live" on its accepted reply), as the runner links jobs.
        self.job_link = job_link

    # --- what /od-list, the reaper, tests and the demo read -------------------------------

    def live_sessions(self) -> list[Session]:
        return self.sessions.live_sessions()

    def waiting_jobs(self) -> set[str]:
        """Queued messages: not running yet, so no reaper may time them out."""
        return self.sessions.waiting_jobs()

    def by_name(self, name: str) -> Session | None:
        """The live session called `name`, if any."""
        return self.sessions.by_name(name)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition()` holds; re-checked whenever any session changes (tests, demo)."""
        await self.sessions.wait_until(condition)

    async def wait_idle(self) -> None:
        """Return once no session has a message running or waiting (the demo waits on this)."""
        await self.sessions.wait_idle()

    # --- commands -------------------------------------------------------------------------

    async def start(self, command: StartSession, conversation: Conversation, user: User) -> Session:
        validate_session_agent(command.spec, allow_shell=self.settings.allow_shell)
        for live in self.sessions:
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
        live = self.sessions.add(session)
        await self.sessions.store.add_session(session)
        ref = await say(self.chat, conversation, Notice(self._started_text(session)))
        live.session = live.session.with_thread(ref.id if ref is not None else None)
        await self.sessions.save(live)
        self.supervisor.supervise(live)
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
        live = self.sessions.for_conversation(inbound.conversation)
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
        live = self.sessions.named(name)
        self.ownership.check_may_act(user, live.session.owner, f"session {name}", verb="send it messages")
        job = await self._submit(live, message, user)
        if not live.session.routes(conversation):
            await say(
                self.chat,
                conversation,
                Notice(f"Sent to session {name} as {job.id}; its output appears where the session was started."),
            )
        return job

    async def _submit(self, live: LiveSession, text: str, user: User) -> Job:
        session = live.session
        spec = attrs.evolve(session.spec, task=text)
        job_id = job_id_from_hex(secrets.token_hex(4))
        job = attrs.evolve(Job.queued(job_id, spec, session.conversation, user, at=self.wall_clock()), session=session.id)
        await self.jobs.add(job)
        accepted = JobAccepted(job, web_url=self.job_link(job), persistent_session=session.persistent)
        live.refs[job.id] = await say(self.chat, session.conversation, accepted)
        if not live.session.is_live:
            await self.ledger.change_if_possible(job.id, lambda j: None if j.is_finished else j.cancelled(
                by=f"session {session.name} ending", at=self.wall_clock()))
            raise UnknownSession(session.name)
        live.session, ahead = live.session.submit(job.id, at=self.wall_clock())
        await self.sessions.save(live)
        if ahead:
            noun = "message" if ahead == 1 else "messages"
            await say(
                self.chat,
                session.conversation,
                Notice(f"Session {session.name} is busy: {job.id} is queued ({ahead} {noun} ahead of it)."),
            )
        self.sessions.notify(live)
        return job

    async def stop(self, name: str | None, user: User, conversation: Conversation) -> None:
        if name is None:
            targets = [live for live in self.sessions if live.session.is_live and live.session.owner.id == user.id]
            if not targets:
                await say(self.chat, conversation, Notice("You have no running sessions (/od-list shows them)."))
                return
        else:
            live = self.sessions.named(name)
            self.ownership.check_may_act(user, live.session.owner, f"session {name}")
            targets = [live]
        lines = [await self.supervisor.end(live, f"stopped by {user.name}", by=user.name) for live in targets]
        ended = tuple(live.session.id for live in targets)
        await say(self.chat, conversation, Notice("\n".join(lines), ended_sessions=ended))

    async def cancel_queued(self, job_id: str, by: str) -> bool:
        """`/od-cancel` of a message still waiting in its session's queue."""
        for live in self.sessions:
            if job_id in live.session.queue:
                live.session = attrs.evolve(live.session, queue=tuple(j for j in live.session.queue if j != job_id))
                await self.sessions.save(live)
                await self.ledger.change_if_possible(
                    job_id, lambda j: None if j.is_finished else j.cancelled(by=by, at=self.wall_clock())
                )
                self.sessions.notify(live)
                return True
        return False
