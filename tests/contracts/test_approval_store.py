"""The `ApprovalStore` contract, run against the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

from opendispatch.domain.approvals import ApprovalRequest, ApprovalState
from opendispatch.ports.approval_store import ApprovalStore


def asked(request_id: str, job_id: str = "j-00000001", at: float = 10.0) -> ApprovalRequest:
    return ApprovalRequest(
        id=request_id, job_id=job_id, tool="Bash", detail="git push origin main ✓", reason="to publish", rule="Bash(git push*)", asked_at=at
    )


async def test_every_job_store_keeps_approvals(store: ApprovalStore) -> None:
    assert isinstance(store, ApprovalStore)


async def test_a_request_reads_back_and_a_save_replaces_it(store: ApprovalStore) -> None:
    assert await store.approval("a-00000001") is None
    request = asked("a-00000001")
    await store.save_approval(request)
    assert await store.approval("a-00000001") == request
    decided = request.decided(ApprovalState.APPROVED, by="u1", at=12.0, for_job=True)
    await store.save_approval(decided)
    assert await store.approval("a-00000001") == decided
    assert await store.approvals_of("j-00000001") == [decided]


async def test_pending_requests_are_the_undecided_ones_oldest_first(store: ApprovalStore) -> None:
    late, early, other_job = asked("a-00000001", at=30.0), asked("a-00000002", at=10.0), asked("a-00000003", "j-00000002", at=20.0)
    for request in (late, early, other_job):
        await store.save_approval(request)
    assert await store.pending_approvals() == [early, other_job, late]
    await store.save_approval(other_job.decided(ApprovalState.DENIED, by="u2", at=21.0))
    await store.save_approval(early.decided(ApprovalState.TIMED_OUT, by="", at=40.0))
    assert await store.pending_approvals() == [late]


async def test_a_jobs_requests_are_its_own_oldest_first(store: ApprovalStore) -> None:
    second, first, elsewhere = asked("a-00000009", at=20.0), asked("a-00000001", at=10.0), asked("a-00000005", "j-00000002", at=15.0)
    for request in (second, first, elsewhere):
        await store.save_approval(request)
    assert await store.approvals_of("j-00000001") == [first, second]
    assert await store.approvals_of("j-00000002") == [elsewhere]
    assert await store.approvals_of("j-00000003") == []
