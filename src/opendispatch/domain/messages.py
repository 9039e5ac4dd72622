"""What the application says in chat, independent of any platform.

Every chat adapter renders these same values (plain text, Block Kit, embeds, Adaptive Cards),
so a feature added here shows up everywhere and nothing platform-specific leaks inward.
"""

from __future__ import annotations

import attrs

from .agent_progress import ProgressView
from .job import Conversation, Job, User


@attrs.frozen
class Inbound:
    """A line of text a user sent us, already stripped of platform mentions."""

    conversation: Conversation
    user: User
    text: str
    #: False for ambient chat the bot merely overheard (a plain reply in a channel thread):
    #: it may be a message for a session there, but never deserves a "not a command" answer.
    addressed: bool = True


@attrs.frozen
class Notice:
    """A short answer: usage, an error a user can act on, a confirmation."""

    text: str
    ephemeral: bool = False


@attrs.frozen
class JobAccepted:
    """The first reply to `/od-run`: what was resolved, and the job id to refer to it by."""

    job: Job


@attrs.frozen
class LiveOutput:
    """One live output message (a page). Edited in place until `sealed`."""

    job: Job
    page: int
    lines: tuple[str, ...]
    omitted: int
    elapsed_s: float
    sealed: bool
    #: The agent's work so far (current step, recent steps, tokens, cost), for agents that
    #: report events; shown under the page's lines.
    progress: ProgressView | None = None


@attrs.frozen
class JobCard:
    """The final card: status, exit code, duration, artifacts and the last lines."""

    job: Job
    tail: tuple[str, ...]
    total_lines: int
    duration_s: float


@attrs.frozen
class JobTable:
    """`/od-jobs` and `/od-list`: a list of jobs with their age at `now`."""

    title: str
    jobs: tuple[Job, ...]
    now: float
    empty_text: str = "No jobs yet. Start one with /od-run."


@attrs.frozen
class LogExcerpt:
    """`/od-logs`: stored output of one job, or (`raw`) its agent's raw transcript."""

    job: Job
    lines: tuple[str, ...]
    total_lines: int
    raw: bool = False


ChatMessage = Notice | JobAccepted | LiveOutput | JobCard | JobTable | LogExcerpt


@attrs.frozen
class MessageRef:
    """A message we posted, so that it can be edited or replied to; `id` is the adapter's."""

    conversation: Conversation
    id: str
