"""Durable jobs and their output. SQLite by default, in memory for tests and embedding."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from ..domain.job import Conversation, Job, JobState


class JobStore(Protocol):
    async def add(self, job: Job) -> None:
        """Store a new job; adding an id twice is a programming error (ValueError)."""
        ...

    async def get(self, job_id: str) -> Job:
        """The job, or `UnknownJob`."""
        ...

    async def save(self, job: Job) -> None:
        """Replace the stored job with this newer value (`UnknownJob` if it was never added)."""
        ...

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
        """Newest first, optionally only in `states`, only requested by `user_id`, only
        created at or after `created_after` and strictly before `created_before` (wall-clock
        seconds), only run in the platform and channel of `channel` (any thread of it), only
        of the spec's `repo` (exact match), and only of the spec's `agent` kind (its value:
        "claude", "opencode", "shell").

        `offset` skips that many of the newest-first matches before `limit` applies, so a
        list can be paged (a negative one is a ValueError). Jobs created at the same time are
        ordered newest added first, so consecutive pages neither repeat nor skip a job while
        no job is added.
        """
        ...

    async def append_many(self, appends: Sequence[tuple[str, int | None, Sequence[str]]]) -> list[bool]:
        """Store batches of lines, each once, in one write: `(job_id, seq, lines)` each, of one
        job or of several. The one way output is appended.

        Returns, for each batch in order, whether it was stored: False when a batch with its
        `seq` is already stored for its job (by an earlier call, or earlier in this one).
        Batches with a `seq` read back in `seq` order whatever order they arrived in; batches
        without one (old sidecars) read back in arrival order.

        Why one write for many: the relay's ingest stores what a thousand streams sent in one
        round together, and a stream delivers records faster than one commit each can follow.
        """
        ...

    async def output(self, job_id: str, *, tail: int | None = None) -> list[str]:
        """Stored lines of a job in order; only the last `tail` when given."""
        ...

    async def output_range(self, job_id: str, start: int, limit: int | None = None) -> list[str]:
        """Stored lines of a job in `output()`'s order from index `start` (0-based), at most
        `limit` of them (None: all). An unknown job, a `start` at or past the end, or a
        `limit` of 0 or less gives []; a negative `start` is a ValueError.

        Why: a web page shows a job's lines live from the index it has shown so far; reading
        the whole output (100,000 lines for a long job) on every refresh would not scale.
        """
        ...

    async def output_line_count(self, job_id: str) -> int: ...

    async def last_seq(self, job_id: str) -> int | None:
        """The highest stored batch `seq` of a job (None: none yet), to resume after a restart."""
        ...

    async def append_transcript(self, job_id: str, part: int, lines: Sequence[str]) -> bool:
        """Store one part of a job's raw agent transcript once; False when that part is stored."""
        ...

    async def transcript(self, job_id: str) -> list[str]:
        """The job's raw agent transcript (the CLI's JSON lines, redacted), parts in order."""
        ...

    async def keep_artifact_file(self, job_id: str, name: str, content: bytes) -> bool:
        """Keep a copy of a job's artifact file once; False when one of that name is kept."""
        ...

    async def artifact_file(self, job_id: str, name: str) -> bytes | None:
        """The kept copy of a job's artifact file, or None."""
        ...

