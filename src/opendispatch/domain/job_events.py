"""What a change of a job means for the rest of the system, as values.

The application acts on these in one place (app/job_events.py) rather than at each place
that moves a job: the live cache follows every change, a job that starts running shows its
live message, a job that ended wakes its task (which posts the card and destroys the sprite).

Derived from the value before and after a change, not returned by each transition: every
change goes through the ledger, which has both, and a transition method stays a plain
`Job -> Job` that tests and rules compose.
"""

from __future__ import annotations

import attrs

from .job import Job, JobState


@attrs.frozen
class JobChanged:
    """Any saved change: state, sprite, artifacts, the agent's summary."""

    job: Job


@attrs.frozen
class JobRunning:
    """The job's sprite runs (reported, or inferred from its first output)."""

    job: Job


@attrs.frozen
class JobEnded:
    """The job reached a final state: its card is due, its sprite goes."""

    job: Job


JobEvent = JobChanged | JobRunning | JobEnded


def events_between(before: Job, after: Job) -> tuple[JobEvent, ...]:
    """The events of the change from `before` to `after` (none when nothing changed)."""
    if after == before:
        return ()
    events: list[JobEvent] = [JobChanged(after)]
    if after.state is JobState.RUNNING and before.state is not JobState.RUNNING:
        events.append(JobRunning(after))
    if after.is_finished and not before.is_finished:
        events.append(JobEnded(after))
    return tuple(events)
