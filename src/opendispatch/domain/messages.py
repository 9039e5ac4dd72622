"""What the application says in chat, independent of any platform.

Every chat adapter renders these same values (plain text, Block Kit, embeds, Adaptive Cards),
so a feature added here shows up everywhere and nothing platform-specific leaks inward.
"""

from __future__ import annotations

import attrs

from .agent_progress import ProgressView
from .approvals import ApprovalRequest
from .job import Artifact, Conversation, Job, User


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
    #: It holds a credential (a signed web link): adapters show it to the asker only (Slack
    #: and Discord ephemeral answers, Teams' personal chat). Where they cannot, they must not
    #: post it, and say instead where to ask. Private implies ephemeral.
    private: bool = False
    #: The ids of the sessions this notice says have ended, for adapters that show a
    #: session's state natively (Slack closes the agent session of its last thread).
    ended_sessions: tuple[str, ...] = ()


@attrs.frozen
class JobAccepted:
    """The first reply to `/od-run`: what was resolved, and the job id to refer to it by."""

    job: Job
    #: The job's web page with a signed, expiring grant ("View live"), when the web view is on.
    web_url: str | None = None
    #: The job is a message of a persistent session, whose sprite and agent conversation wait
    #: for the next message after it (Slack shows its thread as suspended, not closed).
    persistent_session: bool = False


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
    #: The job's web page with a signed, expiring grant ("View live"), when the web view is on.
    web_url: str | None = None


@attrs.frozen
class JobTable:
    """`/od-jobs` and `/od-list`: a list of jobs with their age at `now`."""

    title: str
    jobs: tuple[Job, ...]
    now: float
    empty_text: str = "No jobs yet. Start one with /od-run."


@attrs.frozen
class KeptFile:
    """A job's artifact file as the dispatcher kept it, for adapters that can attach files."""

    artifact: Artifact
    content: bytes = attrs.field(repr=lambda content: f"<{len(content)} bytes>")

    @property
    def filename(self) -> str:
        """A safe file name: the file's own base name, else the artifact's name."""
        base = self.artifact.url.replace("\\", "/").rsplit("/", 1)[-1] or self.artifact.name
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).strip("._")
        return safe[:100] or "artifact"

    @property
    def text(self) -> str | None:
        """The content as text when it is UTF-8 without NUL bytes (a report, a log), else None."""
        if b"\0" in self.content:
            return None
        try:
            return self.content.decode("utf-8")
        except UnicodeDecodeError:
            return None


@attrs.frozen
class LogExcerpt:
    """`/od-logs`: stored output of one job, or (`raw`) its agent's raw transcript, or (`file`)
    one of its kept artifact files, whose text `lines` preview where chat takes no file."""

    job: Job
    lines: tuple[str, ...]
    total_lines: int
    raw: bool = False
    file: KeptFile | None = None


@attrs.frozen
class ApprovalPrompt:
    """A tool call waiting for a person, posted in the job's thread with Approve / Deny /
    Approve for this job (each a command: `/od-approve ID`, `/od-deny ID`,
    `/od-approve ID --job`); edited to say the decision once made."""

    job: Job
    request: ApprovalRequest


ChatMessage = Notice | JobAccepted | LiveOutput | JobCard | JobTable | LogExcerpt | ApprovalPrompt


@attrs.frozen
class MessageRef:
    """A message we posted, so that it can be edited or replied to; `id` is the adapter's."""

    conversation: Conversation
    id: str


@attrs.frozen
class JobMessages:
    """Where a job's chat messages are: its first reply (cards thread under it) and its live
    output pages by number. Kept so that a dispatcher taking a job over from another (or from
    its own earlier process) goes on editing the same messages instead of posting new ones."""

    started: MessageRef | None = None
    pages: dict[int, MessageRef] = attrs.field(factory=dict)
