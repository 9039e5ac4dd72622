"""What the webhook adapter calls in the application when a sprite's sidecar reports or asks.

Inbound ports: the webhook adapter (adapters/webhook) depends on these Protocols, the
application implements them (the Relay: reports and streams; SessionPolls: session
polls; the ApprovalDesk: approvals), and the composition root hands one to the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..domain.approvals import Outcome
from ..domain.job import Job
from ..domain.repo_credentials import RepoToken
from ..domain.sidecar import ArtifactFile, ArtifactReport, LogBatch, StatusReport, TranscriptPart


class ReportSink(Protocol):
    """What the webhook needs from the application (the Relay satisfies it)."""

    async def accept_logs(
        self, authorization: str | None, batch: LogBatch, *, arrived_at: float | None = None
    ) -> int | None:
        """May return the `batchIntervalMs` to ask the sidecar for (the server is busy).

        `arrived_at`: when the request arrived, on trio's clock, where the listener knows
        it better than "now" (seq-less batches are stored in that order).
        """
        ...
    async def accept_status(self, authorization: str | None, report: StatusReport) -> None: ...
    async def accept_artifacts(self, authorization: str | None, report: ArtifactReport) -> None: ...
    async def accept_artifact_file(self, authorization: str | None, file: ArtifactFile) -> None: ...
    async def accept_transcript(self, authorization: str | None, part: TranscriptPart) -> None: ...
    async def repo_credentials(self, authorization: str | None, job_id: object) -> tuple[RepoToken, str]:
        """The job's short-lived repository token and its server, for the sidecar's git
        credential helper (`NoRepoCredentials`, `CredentialsUnavailable`, `JobClosed`)."""
        ...


class StreamSink(Protocol):
    """What the stream route needs from the application (the Relay satisfies it)."""

    async def open_stream(self, authorization: str | None, job_id: object) -> Job: ...
    async def accept_stream_records(self, job: Job, batches: Sequence[LogBatch]) -> None: ...
    async def last_seq(self, job_id: str) -> int | None: ...
    def stream_batch_interval_ms(self) -> int | None: ...


class SessionSink(Protocol):
    """What session sidecars ask (app/session_polls.SessionPolls satisfies it)."""

    async def next_message(
        self, authorization: str | None, session_id: object, running: str | None, wait_s: float
    ) -> dict[str, Any] | None: ...
    async def agent_state(self, authorization: str | None, job_id: object) -> str | None: ...
    async def save_agent_state(self, authorization: str | None, job_id: object, state: str) -> None: ...


class ApprovalSink(Protocol):
    """What the approval endpoints need from the application (the ApprovalDesk)."""

    async def ask(
        self, authorization: str | None, job_id: object, tool: str, arguments: dict[str, Any], ask_id: str = ""
    ) -> Outcome: ...
    async def wait(self, authorization: str | None, job_id: object, request_id: str, wait_s: float) -> Outcome: ...
