"""What a sidecar's status report does to a job: the one mapping from a reported status (and
the agent's own account of its run) to a transition of the job's state machine. Pure: the
Relay applies it through the ledger."""

from __future__ import annotations

from .agent_events import AgentFinished
from .agent_progress import MODEL_API_ERRORS, explain_agent_failure
from .job import FailureStage, Job, JobState
from .redaction import Redactor
from .sidecar import ReportedStatus, StatusReport


def mark_running(job: Job) -> Job | None:
    """A starting job runs (its first output or a `running` report); None when nothing changes."""
    return job.running() if job.state is JobState.STARTING else None


def transition_for(
    job: Job, report: StatusReport, now: float, redactor: Redactor, result: AgentFinished | None = None
) -> Job | None:
    """Map a reported status to a transition; None when it changes nothing.

    Old sidecars may skip `running`, so a final report on a starting job passes through it.
    The agent's own account of a failed run (`result`, from its events) names the cause a
    user can act on: a model API that refused the key, a rate limit, the agent's error.
    """
    if job.is_finished:
        return None
    if report.status is ReportedStatus.RUNNING:
        return mark_running(job)
    if job.state is JobState.STARTING:
        job = job.running()
    elif job.state is JobState.QUEUED:
        return None
    exit_code = report.exit_code
    agent_failed = result is not None and not result.ok
    if report.status is ReportedStatus.COMPLETED and (exit_code or 0) == 0 and not agent_failed:
        return job.succeeded(at=now, exit_code=0)
    if report.status is ReportedStatus.CANCELLED:
        return job.cancelled(by="the sprite (stopped by a signal)", at=now, exit_code=exit_code)
    if agent_failed and result is not None and FailureStage.from_wire(report.stage) is FailureStage.AGENT:
        explained = explain_agent_failure(result.error_kind, redactor.redact(result.error), job.spec.agent.value)
        if explained is not None:
            stage = FailureStage.MODEL_API if result.error_kind in MODEL_API_ERRORS else FailureStage.AGENT
            return job.failed(stage, explained, at=now, exit_code=exit_code)
    stage = FailureStage.from_wire(report.stage)
    reason = redactor.redact(report.error.strip()) if report.error.strip() else ""
    if not reason:
        reason = f"the agent exited with code {exit_code}" if exit_code is not None else "the sprite reported a failure"
    return job.failed(stage, reason, at=now, exit_code=exit_code)
