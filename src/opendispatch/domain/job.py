"""The Job and its state machine.

A `Job` is an immutable value; every transition returns a new one and refuses moves that the
table below does not allow, so a late or duplicated sidecar report cannot resurrect a job.
"""

from __future__ import annotations

import enum
from typing import Self

import attrs

from .agent_progress import AgentSummary
from .errors import InvalidTransition
from .job_spec import JobSpec


class JobState(enum.Enum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST}
)
#: The states of a job that is not over, in the order a job goes through them.
ACTIVE_STATES = (JobState.QUEUED, JobState.STARTING, JobState.RUNNING)

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.STARTING, JobState.CANCELLED, JobState.FAILED, JobState.LOST}),
    JobState.STARTING: frozenset(
        {JobState.RUNNING, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST}
    ),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST}
    ),
    **{state: frozenset() for state in FINAL_STATES},
}


class FailureStage(enum.Enum):
    """Where a failed job broke, so the card can say which step to look at."""

    SPAWN = "spawn"
    SIDECAR = "sidecar"
    CLONE = "clone"
    AGENT_START = "agent start"
    AGENT = "agent exit"
    RELAY = "relay"
    TIMEOUT = "timeout"
    #: The model API refused the agent (authentication, rate limit, overload), by its account.
    MODEL_API = "model API"
    #: The dispatcher stopped the job at its `--max-cost` cap.
    COST_CAP = "cost cap"
    #: No short-lived token could be had for the job's repository (a GitHub App's), so no
    #: sprite was started.
    CREDENTIALS = "credentials"

    @classmethod
    def from_wire(cls, text: str | None) -> FailureStage:
        """Map the sidecar's optional `stage` field; unknown or absent means the agent."""
        aliases = {"agent_start": cls.AGENT_START, "agent": cls.AGENT, "agent_exit": cls.AGENT}
        if text is None:
            return cls.AGENT
        key = text.strip().lower()
        if key in aliases:
            return aliases[key]
        for stage in cls:
            if stage.value == key:
                return stage
        return cls.AGENT


@attrs.frozen
class Conversation:
    """Where a command came from and where its replies go; opaque to everything but its adapter."""

    platform: str
    channel: str
    thread: str | None = None


@attrs.frozen
class User:
    id: str
    name: str


#: A file artifact is copied out of the sprite when it is at most this big: a report or a
#: patch, not a build output. Bounded so one job cannot fill the dispatcher's disk.
MAX_KEPT_ARTIFACT_BYTES = 512 * 1024
#: At most this many files of one job are kept (so at most 5 MiB a job).
MAX_KEPT_ARTIFACT_FILES = 10


@attrs.frozen
class Artifact:
    """Something a job produced: a link (a pull request), or a file in the sprite.

    The sprite and its workspace are deleted when the job ends, so a file's path alone is
    useless afterwards: a file that was small enough has a copy kept by the dispatcher
    (`kept`, reachable with `/od-logs JOB --artifact NAME`); `size` is the file's size in
    bytes when the sidecar reported it (also for a file too big to keep).
    """

    name: str
    url: str
    type: str = "link"
    kept: bool = False
    size: int | None = None

    @property
    def is_file(self) -> bool:
        return self.type == "file"


@attrs.frozen
class Failure:
    stage: FailureStage
    reason: str


@attrs.frozen
class Job:
    id: str
    spec: JobSpec
    conversation: Conversation
    requested_by: User
    created_at: float
    state: JobState = JobState.QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    sprite_id: str | None = None
    exit_code: int | None = None
    failure: Failure | None = None
    cancelled_by: str | None = None
    artifacts: tuple[Artifact, ...] = ()
    #: The session this job is a message of (its id), or None for a one-shot job.
    session: str | None = None
    #: What the agent reported about its run (answer, cost, tokens, files changed), if it did.
    agent: AgentSummary | None = None
    #: Its output reached the job's quota (output_quota.py): later lines were not stored.
    output_truncated: bool = False

    @classmethod
    def queued(cls, job_id: str, spec: JobSpec, conversation: Conversation, user: User, at: float) -> Job:
        return cls(id=job_id, spec=spec, conversation=conversation, requested_by=user, created_at=at)

    @property
    def is_finished(self) -> bool:
        return self.state.is_final

    def can_become(self, state: JobState) -> bool:
        return state in ALLOWED_TRANSITIONS[self.state]

    def duration_s(self, now: float) -> float:
        """From the moment a sprite was requested (or queued) to the end (or now)."""
        start = self.started_at if self.started_at is not None else self.created_at
        end = self.finished_at if self.finished_at is not None else now
        return max(0.0, end - start)

    def _move(self, to: JobState, **changes: object) -> Self:
        if not self.can_become(to):
            raise InvalidTransition(self.id, self.state.value, to.value)
        return attrs.evolve(self, state=to, **changes)  # type: ignore[arg-type]

    def starting(self, at: float) -> Job:
        return self._move(JobState.STARTING, started_at=at)

    def with_sprite(self, sprite_id: str) -> Job:
        return attrs.evolve(self, sprite_id=sprite_id)

    def running(self) -> Job:
        return self._move(JobState.RUNNING)

    def succeeded(self, at: float, exit_code: int = 0) -> Job:
        return self._move(JobState.SUCCEEDED, finished_at=at, exit_code=exit_code)

    def failed(self, stage: FailureStage, reason: str, at: float, exit_code: int | None = None) -> Job:
        return self._move(
            JobState.FAILED, finished_at=at, exit_code=exit_code, failure=Failure(stage, reason)
        )

    def cancelled(self, by: str, at: float, exit_code: int | None = None) -> Job:
        return self._move(JobState.CANCELLED, finished_at=at, cancelled_by=by, exit_code=exit_code)

    def timed_out(self, at: float) -> Job:
        reason = "the job ran past its timeout"
        return self._move(
            JobState.TIMED_OUT, finished_at=at, failure=Failure(FailureStage.TIMEOUT, reason)
        )

    def lost(self, reason: str, at: float) -> Job:
        return self._move(JobState.LOST, finished_at=at, failure=Failure(FailureStage.RELAY, reason))

    def with_output_truncated(self) -> Job:
        """Its output reached the quota; allowed in any state (the last batch may come late)."""
        return attrs.evolve(self, output_truncated=True)

    def with_agent(self, summary: AgentSummary) -> Job:
        """Keep what the agent reported; allowed in any state, since the report may come last."""
        return attrs.evolve(self, agent=summary)

    def with_artifacts(self, new: tuple[Artifact, ...]) -> Job:
        """Add artifacts we have not seen yet, keeping their order.

        An artifact is the same one when its name and target are: a repeat is ignored, except
        that what is known about it grows (a kept copy stays kept, a size once known stays).
        """
        merged = list(self.artifacts)
        for artifact in new:
            same = next((i for i, old in enumerate(merged) if (old.name, old.url) == (artifact.name, artifact.url)), None)
            if same is None:
                merged.append(artifact)
                continue
            old = merged[same]
            merged[same] = attrs.evolve(
                old,
                kept=old.kept or artifact.kept,
                size=artifact.size if old.size is None else old.size,
                type=old.type if old.type != "link" else artifact.type,
            )
        return attrs.evolve(self, artifacts=tuple(merged))

    def artifact_named(self, name: str) -> Artifact | None:
        """The artifact a user names in `/od-logs JOB --artifact NAME` (exact, then ignoring case)."""
        exact = next((a for a in self.artifacts if a.name == name), None)
        if exact is not None:
            return exact
        return next((a for a in self.artifacts if a.name.casefold() == name.casefold()), None)
