"""An in-memory `JobStore` for tests, demos and embedding: the reference the SQLite store must match."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Collection, Sequence

import attrs

from ...domain.approvals import ApprovalRequest
from ...domain.channel_settings import ChannelSettings
from ...domain.errors import UnknownJob
from ...domain.job import Conversation, Job, JobState
from ...domain.session import Session, SessionState, UnknownSession


@attrs.frozen
class _Batch:
    """One stored batch; `order` sorts seq'd batches by seq, then seq-less ones by arrival."""

    order: tuple[int, int, int]
    lines: tuple[str, ...]


def _batch_order(seq: int | None, arrival: int) -> tuple[int, int, int]:
    """Seq'd batches first in seq order, seq-less (old sidecar) batches after them by arrival.

    A job's sidecar either sends seqs or it does not, so the mixed case only needs to be
    deterministic; both stores use this same order.
    """
    if seq is None:
        return (1, 0, arrival)
    return (0, seq, arrival)


@attrs.define
class _JobOutput:
    seqs: set[int] = attrs.Factory(set)
    batches: list[_Batch] = attrs.Factory(list)
    line_count: int = 0


@attrs.define
class MemoryJobStore:
    """Keeps `Job` values in a dict and each job's output as ordered batches.

    Output may be appended for any job id (the relay has already checked the token), so an
    unknown id simply has no output.
    """

    _jobs: dict[str, Job] = attrs.field(factory=dict, init=False)
    _output: dict[str, _JobOutput] = attrs.field(factory=dict, init=False)
    _secrets: dict[str, bytes] = attrs.field(factory=dict, init=False)
    _arrivals: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _sessions: dict[str, Session] = attrs.field(factory=dict, init=False)
    _channel_settings: dict[str, ChannelSettings] = attrs.field(factory=dict, init=False)
    _approvals: dict[str, ApprovalRequest] = attrs.field(factory=dict, init=False)
    _transcripts: dict[str, dict[int, tuple[str, ...]]] = attrs.field(factory=dict, init=False)
    _artifact_files: dict[tuple[str, str], bytes] = attrs.field(factory=dict, init=False)

    async def keep_artifact_file(self, job_id: str, name: str, content: bytes) -> bool:
        if (job_id, name) in self._artifact_files:
            return False
        self._artifact_files[job_id, name] = bytes(content)
        return True

    async def artifact_file(self, job_id: str, name: str) -> bytes | None:
        return self._artifact_files.get((job_id, name))

    async def append_transcript(self, job_id: str, part: int, lines: Sequence[str]) -> bool:
        parts = self._transcripts.setdefault(job_id, {})
        if part in parts:
            return False
        parts[part] = tuple(lines)
        return True

    async def transcript(self, job_id: str) -> list[str]:
        parts = self._transcripts.get(job_id, {})
        return [line for part in sorted(parts) for line in parts[part]]

    async def add(self, job: Job) -> None:
        if job.id in self._jobs:
            raise ValueError(f"job {job.id} is already stored")
        self._jobs[job.id] = job

    async def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise UnknownJob(job_id) from None

    async def save(self, job: Job) -> None:
        if job.id not in self._jobs:
            raise UnknownJob(job.id)
        self._jobs[job.id] = job

    async def recent(
        self,
        *,
        limit: int,
        states: Collection[JobState] | None = None,
        user_id: str | None = None,
        created_after: float | None = None,
        channel: Conversation | None = None,
        repo: str | None = None,
        agent: str | None = None,
        created_before: float | None = None,
        offset: int = 0,
    ) -> list[Job]:
        if offset < 0:
            raise ValueError(f"offset must be 0 or more, not {offset}")
        # Reversed insertion order first, so a stable sort breaks created_at ties newest-added first.
        newest_added_first = reversed(list(self._jobs.values()))
        ordered = sorted(newest_added_first, key=lambda job: job.created_at, reverse=True)
        wanted = [
            job
            for job in ordered
            if (states is None or job.state in states)
            and (user_id is None or job.requested_by.id == user_id)
            and (created_after is None or job.created_at >= created_after)
            and (created_before is None or job.created_at < created_before)
            and (
                channel is None
                or (job.conversation.platform, job.conversation.channel) == (channel.platform, channel.channel)
            )
            and (repo is None or job.spec.repo == repo)
            and (agent is None or job.spec.agent.value == agent)
        ]
        return wanted[offset : offset + max(limit, 0)]

    async def append_many(self, appends: Sequence[tuple[str, int | None, Sequence[str]]]) -> list[bool]:
        return [self._append(job_id, seq, lines) for job_id, seq, lines in appends]

    async def append_output(self, job_id: str, seq: int | None, lines: Sequence[str]) -> bool:
        """`append_many` of one batch: a convenience for tests and tools, not part of `JobStore`."""
        return (await self.append_many([(job_id, seq, lines)]))[0]

    def _append(self, job_id: str, seq: int | None, lines: Sequence[str]) -> bool:
        output = self._output.setdefault(job_id, _JobOutput())
        if seq is not None:
            if seq in output.seqs:
                return False
            output.seqs.add(seq)
        batch = _Batch(order=_batch_order(seq, next(self._arrivals)), lines=tuple(lines))
        bisect.insort(output.batches, batch, key=lambda b: b.order)
        output.line_count += len(batch.lines)
        return True

    async def output(self, job_id: str, *, tail: int | None = None) -> list[str]:
        output = self._output.get(job_id)
        if output is None:
            return []
        if tail is None:
            return [line for batch in output.batches for line in batch.lines]
        if tail <= 0:
            return []
        wanted: list[str] = []
        for batch in reversed(output.batches):
            wanted[:0] = batch.lines
            if len(wanted) >= tail:
                break
        return wanted[-tail:]

    async def output_range(self, job_id: str, start: int, limit: int | None = None) -> list[str]:
        if start < 0:
            raise ValueError(f"start must be 0 or more, not {start}")
        output = self._output.get(job_id)
        if output is None or (limit is not None and limit <= 0):
            return []
        end = None if limit is None else start + limit
        wanted: list[str] = []
        first = 0  # the index of the batch's first line
        for batch in output.batches:
            after = first + len(batch.lines)
            if after > start:
                wanted.extend(batch.lines[max(start - first, 0) :])
                if end is not None and after >= end:
                    break
            first = after
        return wanted if limit is None else wanted[:limit]

    async def output_line_count(self, job_id: str) -> int:
        output = self._output.get(job_id)
        return 0 if output is None else output.line_count

    async def last_seq(self, job_id: str) -> int | None:
        output = self._output.get(job_id)
        return max(output.seqs) if output is not None and output.seqs else None

    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        if name not in self._secrets:
            self._secrets[name] = create()
        return self._secrets[name]

    # --- SessionStore ------------------------------------------------------------------------

    async def add_session(self, session: Session) -> None:
        if session.id in self._sessions:
            raise ValueError(f"session {session.id} is already stored")
        self._sessions[session.id] = session

    async def save_session(self, session: Session) -> None:
        if session.id not in self._sessions:
            raise UnknownSession(session.id)
        self._sessions[session.id] = session

    async def get_session(self, session_id: str) -> Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise UnknownSession(session_id) from None

    async def live_sessions(self) -> list[Session]:
        live = [s for s in self._sessions.values() if s.state is not SessionState.STOPPED]
        return sorted(live, key=lambda s: s.created_at)

    # ChannelSettingsStore

    async def channel_settings(self, channel: str) -> ChannelSettings:
        return self._channel_settings.get(channel, ChannelSettings())

    async def save_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        self._channel_settings[channel] = settings

    # ApprovalStore

    async def save_approval(self, request: ApprovalRequest) -> None:
        self._approvals[request.id] = request

    async def approval(self, request_id: str) -> ApprovalRequest | None:
        return self._approvals.get(request_id)

    async def pending_approvals(self) -> list[ApprovalRequest]:
        return sorted((r for r in self._approvals.values() if not r.state.is_decided), key=lambda r: r.asked_at)

    async def approvals_of(self, job_id: str) -> list[ApprovalRequest]:
        return sorted((r for r in self._approvals.values() if r.job_id == job_id), key=lambda r: r.asked_at)
