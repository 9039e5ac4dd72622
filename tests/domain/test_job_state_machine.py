"""Every allowed transition, and every forbidden one, of the Job state machine."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
import pytest

from opendispatch.domain.errors import InvalidTransition
from opendispatch.domain.job import (
    ALLOWED_TRANSITIONS,
    FINAL_STATES,
    Artifact,
    Conversation,
    FailureStage,
    Job,
    JobState,
    User,
)
from opendispatch.domain.job_spec import AgentKind, JobSpec

SPEC = JobSpec(task="run the tests", agent=AgentKind.SHELL, repo="owner/project")
QUEUED = Job.queued("j-0000abcd", SPEC, Conversation("memory", "c1"), User("u1", "alice"), at=100.0)

MOVES: dict[JobState, Callable[[Job], Job]] = {
    JobState.STARTING: lambda j: j.starting(at=101.0),
    JobState.RUNNING: lambda j: j.running(),
    JobState.SUCCEEDED: lambda j: j.succeeded(at=110.0),
    JobState.FAILED: lambda j: j.failed(FailureStage.AGENT, "exit 1", at=110.0, exit_code=1),
    JobState.CANCELLED: lambda j: j.cancelled(by="bob", at=110.0),
    JobState.TIMED_OUT: lambda j: j.timed_out(at=110.0),
    JobState.LOST: lambda j: j.lost("machine vanished", at=110.0),
}

EXPECTED_ALLOWED = {
    (JobState.QUEUED, JobState.STARTING),
    (JobState.QUEUED, JobState.CANCELLED),
    (JobState.QUEUED, JobState.FAILED),
    (JobState.QUEUED, JobState.LOST),
    *((JobState.STARTING, s) for s in (JobState.RUNNING, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.LOST)),
    *((JobState.RUNNING, s) for s in FINAL_STATES),
}


def in_state(state: JobState) -> Job:
    return attrs.evolve(QUEUED, state=state)


def test_the_table_is_exactly_the_documented_machine() -> None:
    table = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert table == EXPECTED_ALLOWED
    assert all(not ALLOWED_TRANSITIONS[s] for s in FINAL_STATES)


@pytest.mark.parametrize("source,target", sorted(EXPECTED_ALLOWED, key=lambda p: (p[0].value, p[1].value)))
def test_every_allowed_transition_works(source: JobState, target: JobState) -> None:
    moved = MOVES[target](in_state(source))
    assert moved.state is target
    assert moved.is_finished is (target in FINAL_STATES)


FORBIDDEN = sorted(
    set(itertools.product(JobState, MOVES)) - EXPECTED_ALLOWED, key=lambda p: (p[0].value, p[1].value)
)


@pytest.mark.parametrize("source,target", FORBIDDEN)
def test_every_forbidden_transition_raises(source: JobState, target: JobState) -> None:
    with pytest.raises(InvalidTransition) as caught:
        MOVES[target](in_state(source))
    assert source.value in str(caught.value) and target.value in str(caught.value)


def test_a_full_successful_life_records_its_facts() -> None:
    job = QUEUED.starting(at=101.0).with_sprite("sprite-1").running().succeeded(at=131.5)
    assert job.sprite_id == "sprite-1" and job.exit_code == 0
    assert job.duration_s(now=999.0) == 30.5


def test_failure_cancel_and_timeout_record_why() -> None:
    running = QUEUED.starting(at=101.0).running()
    failed = running.failed(FailureStage.CLONE, "no such branch", at=105.0, exit_code=128)
    assert failed.failure is not None and failed.failure.stage is FailureStage.CLONE and failed.exit_code == 128
    assert running.cancelled(by="bob", at=105.0).cancelled_by == "bob"
    timed_out = running.timed_out(at=701.0)
    assert timed_out.failure is not None and timed_out.failure.stage is FailureStage.TIMEOUT


def test_artifacts_are_merged_without_repeats() -> None:
    pr = Artifact("PR #7", "https://github.com/o/r/pull/7", "pull_request")
    report = Artifact("report", "/w/report.txt", "file")
    job = QUEUED.with_artifacts((pr,)).with_artifacts((pr, report))
    assert job.artifacts == (pr, report)


def test_a_kept_copy_and_a_size_stick_to_the_artifact_whichever_report_comes_first() -> None:
    listed = Artifact("report", "/w/report.txt", "file")
    copied = Artifact("report", "/w/report.txt", "file", kept=True, size=42)
    assert QUEUED.with_artifacts((copied,)).with_artifacts((listed,)).artifacts == (copied,)
    assert QUEUED.with_artifacts((listed,)).with_artifacts((copied,)).artifacts == (copied,)
    other = Artifact("report", "/w/other.txt", "file")
    assert QUEUED.with_artifacts((copied, other)).artifacts == (copied, other)


def test_an_artifact_is_found_by_its_name_exactly_then_ignoring_case() -> None:
    upper = Artifact("Report", "/w/a", "file")
    lower = Artifact("report", "/w/b", "file")
    job = QUEUED.with_artifacts((upper, lower))
    assert job.artifact_named("report") is lower
    assert job.artifact_named("REPORT") is upper
    assert job.artifact_named("nothing") is None


@pytest.mark.parametrize("wire,stage", [(None, FailureStage.AGENT), ("clone", FailureStage.CLONE),
                                        ("agent_start", FailureStage.AGENT_START), ("sidecar", FailureStage.SIDECAR),
                                        ("weird", FailureStage.AGENT)])
def test_failure_stage_from_the_wire(wire: str | None, stage: FailureStage) -> None:
    assert FailureStage.from_wire(wire) is stage


def test_a_changes_events_say_what_it_means_for_the_rest_of_the_system() -> None:
    from opendispatch.domain.job_events import JobChanged, JobEnded, JobRunning, events_between
    from opendispatch.domain.job import Artifact, Conversation, Job, User
    from opendispatch.domain.job_spec import AgentKind, JobSpec

    queued = Job.queued("j-1", JobSpec(task="t", agent=AgentKind.SHELL), Conversation("c", "1"), User("u", "u"), at=1.0)
    starting = queued.starting(at=2.0)
    running = starting.running()
    done = running.succeeded(at=3.0)
    assert events_between(queued, queued) == ()
    assert events_between(queued, starting) == (JobChanged(starting),)
    assert events_between(starting, running) == (JobChanged(running), JobRunning(running))
    assert events_between(running, done) == (JobChanged(done), JobEnded(done))
    # An old sidecar's final report on a starting job passes through running in one change.
    direct = starting.running().failed(FailureStage.AGENT, "x", at=3.0)
    assert events_between(starting, direct) == (JobChanged(direct), JobEnded(direct))
    later = done.with_artifacts((Artifact("PR", "https://example.test/pr/1"),))
    assert events_between(done, later) == (JobChanged(later),)
