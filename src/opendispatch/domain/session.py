"""A session: a named conversation with an agent that keeps its context between chat messages.

The `Session` is an immutable value with a small state machine; every change returns a new
value and refuses moves the table does not allow. Messages become jobs of the session; the
session only keeps their ids: `current_job` (the one running) and `queue` (waiting, in
order), so one message runs at a time and the rest wait their turn.

States: `starting` (a persistent sprite is being created) -> `idle` <-> `busy`;
`idle` -> `suspended` (the persistent sprite is paused after an idle period) -> `busy` (the
next message wakes it); any state -> `stopped` (final).
"""

from __future__ import annotations

import enum
import re

import attrs

from .errors import DispatchError, UsageError
from .job import Conversation, User
from .job_spec import JobSpec

SESSION_ID_PATTERN = re.compile(r"s-[0-9a-f]{8}")


class SessionState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    SUSPENDED = "suspended"
    STOPPED = "stopped"


ALLOWED_SESSION_MOVES: dict[SessionState, frozenset[SessionState]] = {
    SessionState.STARTING: frozenset({SessionState.IDLE, SessionState.STOPPED}),
    SessionState.IDLE: frozenset({SessionState.BUSY, SessionState.SUSPENDED, SessionState.STOPPED}),
    SessionState.BUSY: frozenset({SessionState.IDLE, SessionState.BUSY, SessionState.STOPPED}),
    SessionState.SUSPENDED: frozenset({SessionState.BUSY, SessionState.IDLE, SessionState.STOPPED}),
    SessionState.STOPPED: frozenset(),
}


class UnknownSession(DispatchError):
    def __init__(self, name: str) -> None:
        super().__init__(f"No running session {name}. `/od-list` shows the sessions; `/od-start NAME` starts one.")
        self.name = name


class SessionConflict(UsageError):
    """A name or a conversation is already taken by a live session."""


class SessionGone(DispatchError):
    """A sprite asked for work of a session that has ended (HTTP 410: the sidecar exits)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session {session_id} has ended.")
        self.session_id = session_id


class InvalidSessionMove(DispatchError):
    def __init__(self, session: str, current: SessionState, wanted: SessionState) -> None:
        super().__init__(f"Session {session} cannot go from {current.value} to {wanted.value}.")


def session_id_from_hex(hex8: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{8}", hex8):
        raise ValueError("a session id is made of 8 lowercase hex digits")
    return f"s-{hex8}"


def looks_like_session_id(text: str) -> bool:
    return SESSION_ID_PATTERN.fullmatch(text) is not None


@attrs.frozen
class Session:
    """`spec.task` is empty: each message brings its own task. Times are wall-clock seconds.

    `agent_session_id` is the id the agent's own conversation is kept under (a UUID given to
    Claude Code with `--session-id`, then `--resume`); `agent_state` is the agent's saved
    conversation handed from one sprite to the next when the session is not persistent.
    `thread_ref` is the id of the "session started" message: replies in its thread route here.
    """

    id: str
    name: str
    spec: JobSpec
    persistent: bool
    conversation: Conversation
    owner: User
    created_at: float
    last_active_at: float
    agent_session_id: str
    state: SessionState = SessionState.STARTING
    message_count: int = 0
    current_job: str | None = None
    queue: tuple[str, ...] = ()
    sprite_id: str | None = None
    thread_ref: str | None = None
    agent_state: str | None = attrs.field(default=None, repr=False)
    stopped_at: float | None = None
    stopped_reason: str | None = None

    @classmethod
    def begin(
        cls,
        *,
        session_id: str,
        name: str,
        spec: JobSpec,
        persistent: bool,
        conversation: Conversation,
        owner: User,
        agent_session_id: str,
        at: float,
    ) -> Session:
        """A persistent session starts `starting` (its sprite is on the way); others are idle at once."""
        return cls(
            id=session_id,
            name=name,
            spec=spec,
            persistent=persistent,
            conversation=conversation,
            owner=owner,
            created_at=at,
            last_active_at=at,
            agent_session_id=agent_session_id,
            state=SessionState.STARTING if persistent else SessionState.IDLE,
        )

    @property
    def is_live(self) -> bool:
        return self.state is not SessionState.STOPPED

    @property
    def waiting(self) -> int:
        """Messages not yet finished: the running one and the queued ones."""
        return len(self.queue) + (1 if self.current_job is not None else 0)

    def routes(self, conversation: Conversation) -> bool:
        """Plain messages from `conversation` belong to this session: its own place, or its thread."""
        if conversation == self.conversation:
            return True
        return (
            self.thread_ref is not None
            and conversation.platform == self.conversation.platform
            and conversation.channel == self.conversation.channel
            and conversation.thread == self.thread_ref
        )

    def idle_for(self, now: float) -> float:
        return max(0.0, now - self.last_active_at)

    def _move(self, to: SessionState, **changes: object) -> Session:
        if to not in ALLOWED_SESSION_MOVES[self.state]:
            raise InvalidSessionMove(self.name, self.state, to)
        return attrs.evolve(self, state=to, **changes)  # type: ignore[arg-type]

    def ready(self, sprite_id: str | None, at: float) -> Session:
        """The persistent sprite is up (or a non-persistent session has nothing to wait for)."""
        return self._move(SessionState.IDLE, sprite_id=sprite_id, last_active_at=at)

    def with_thread(self, thread_ref: str | None) -> Session:
        return attrs.evolve(self, thread_ref=thread_ref)

    def submit(self, job_id: str, at: float) -> tuple[Session, int]:
        """Queue a message's job; returns the session and how many messages are ahead of it."""
        if not self.is_live:
            raise UnknownSession(self.name)
        ahead = self.waiting
        changed = attrs.evolve(
            self, queue=(*self.queue, job_id), message_count=self.message_count + 1, last_active_at=at
        )
        return changed, ahead

    def next_job(self) -> str | None:
        """The job that may start now: none while one runs, while starting, or when stopped."""
        if self.current_job is not None or not self.queue:
            return None
        if self.state in (SessionState.STARTING, SessionState.STOPPED):
            return None
        return self.queue[0]

    def begin_next(self, at: float) -> Session:
        job_id = self.next_job()
        if job_id is None:
            raise InvalidSessionMove(self.name, self.state, SessionState.BUSY)
        return self._move(SessionState.BUSY, current_job=job_id, queue=self.queue[1:], last_active_at=at)

    def finished(self, job_id: str, at: float) -> Session:
        """The running message ended; an unrelated or repeated report changes nothing."""
        if self.current_job != job_id or not self.is_live:
            return self
        return self._move(SessionState.IDLE, current_job=None, last_active_at=at)

    def suspended(self) -> Session:
        return self._move(SessionState.SUSPENDED)

    def woken(self) -> Session:
        """The sprite runs again; the next message (if any) follows at once."""
        if self.state is not SessionState.SUSPENDED:
            return self
        return self._move(SessionState.IDLE)

    def with_sprite(self, sprite_id: str | None) -> Session:
        return attrs.evolve(self, sprite_id=sprite_id)

    def with_agent_state(self, state: str | None) -> Session:
        return attrs.evolve(self, agent_state=state)

    def resumes_from(self, agent_session_id: str) -> Session:
        """The agent reported the id of its conversation: the next message resumes that one.

        Not a guess: Claude Code keeps the id we pinned, but OpenCode makes its own, and
        an agent that started afresh (a lost conversation) reports a new one.
        """
        if not agent_session_id or agent_session_id == self.agent_session_id:
            return self
        return attrs.evolve(self, agent_session_id=agent_session_id)

    def stopped(self, reason: str, at: float) -> tuple[Session, tuple[str, ...]]:
        """End the session; returns it and the ids of its unfinished jobs (running first)."""
        unfinished = ((self.current_job,) if self.current_job else ()) + self.queue
        ended = self._move(
            SessionState.STOPPED, current_job=None, queue=(), stopped_at=at, stopped_reason=reason
        )
        return ended, unfinished


def validate_session_agent(spec: JobSpec, *, allow_shell: bool) -> None:
    """The shell agent runs each message as a command: only when the operator allows it."""
    if spec.agent.value == "shell" and not allow_shell:
        raise UsageError(
            "Shell sessions are turned off here: in a session every message would run as a shell "
            "command. Use --agent claude or --agent opencode, or ask the operator to set "
            "OPENDISPATCH_ALLOW_SHELL_SESSIONS=1."
        )
