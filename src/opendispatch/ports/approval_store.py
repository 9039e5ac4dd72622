"""Where approval requests are kept, so a restart while one waits loses nothing.

The job stores implement this too (one database, one file): `MemoryJobStore` and
`SqliteJobStore`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..domain.approvals import ApprovalRequest


@runtime_checkable
class ApprovalStore(Protocol):
    async def save_approval(self, request: ApprovalRequest) -> None:
        """Add the request, or replace it with this newer value."""
        ...

    async def approval(self, request_id: str) -> ApprovalRequest | None:
        ...

    async def pending_approvals(self) -> list[ApprovalRequest]:
        """Every request still waiting for a decision, oldest first."""
        ...

    async def approvals_of(self, job_id: str) -> list[ApprovalRequest]:
        """The job's requests, oldest first."""
        ...
