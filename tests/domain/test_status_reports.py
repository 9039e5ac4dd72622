"""What a sidecar's status report does to a job (domain/status_reports.py), directly."""

from __future__ import annotations

from opendispatch.domain.agent_events import AgentFinished, ErrorKind
from opendispatch.domain.job import Conversation, FailureStage, Job, JobState, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.redaction import Redactor
from opendispatch.domain.sidecar import ReportedStatus, StatusReport
from opendispatch.domain.status_reports import mark_running, transition_for

NO_SECRETS = Redactor.of([])


def starting() -> Job:
    job = Job.queued("j-1", JobSpec(task="t", agent=AgentKind.CLAUDE), Conversation("console", "c"), User("u", "u"), at=1.0)
    return job.starting(at=2.0)


def report(status: ReportedStatus, exit_code: int | None = None, error: str = "", stage: str | None = None) -> StatusReport:
    return StatusReport("j-1", status, exit_code=exit_code, error=error, stage=stage)


def test_running_and_success() -> None:
    assert mark_running(starting()) is not None and mark_running(starting().running()) is None
    assert transition_for(starting(), report(ReportedStatus.RUNNING), 3.0, NO_SECRETS).state is JobState.RUNNING  # type: ignore[union-attr]
    done = transition_for(starting(), report(ReportedStatus.COMPLETED, 0), 3.0, NO_SECRETS)
    assert done is not None and done.state is JobState.SUCCEEDED and done.exit_code == 0  # old sidecars skip `running`


def test_failures_name_their_stage_and_reason_redacted() -> None:
    failed = transition_for(starting().running(), report(ReportedStatus.FAILED, 2, "token sk-123 refused", "clone"), 3.0, Redactor.of(["sk-123"]))
    assert failed is not None and failed.failure is not None
    assert failed.failure.stage is FailureStage.CLONE and "sk-123" not in failed.failure.reason
    bare = transition_for(starting().running(), report(ReportedStatus.COMPLETED, 3), 3.0, NO_SECRETS)
    assert bare is not None and bare.failure is not None and bare.failure.reason == "the agent exited with code 3"


def test_the_agents_own_account_decides_even_when_the_cli_exited_0() -> None:
    refused = AgentFinished(ok=False, error_kind=ErrorKind.AUTH, error="invalid x-api-key")
    failed = transition_for(starting().running(), report(ReportedStatus.COMPLETED, 0, stage="agent"), 3.0, NO_SECRETS, refused)
    assert failed is not None and failed.failure is not None and failed.failure.stage is FailureStage.MODEL_API


def test_nothing_changes_for_a_finished_or_queued_job() -> None:
    done = starting().running().succeeded(at=3.0, exit_code=0)
    assert transition_for(done, report(ReportedStatus.FAILED, 1), 4.0, NO_SECRETS) is None
    queued = Job.queued("j-2", JobSpec(task="t", agent=AgentKind.CLAUDE), Conversation("console", "c"), User("u", "u"), at=1.0)
    assert transition_for(queued, report(ReportedStatus.COMPLETED, 0), 4.0, NO_SECRETS) is None
    cancelled = transition_for(starting().running(), report(ReportedStatus.CANCELLED, 143), 4.0, NO_SECRETS)
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
