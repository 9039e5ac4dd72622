"""Chat commands in, jobs and replies out: the application's front door.

`handle` is the one chat boundary: a `DispatchError` becomes its message, anything else is
logged with a reference and the user sees only that reference, never a traceback.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from functools import partial

import trio

from ..domain.channel_settings import channel_key
from ..domain.commands import (
    CancelJob,
    Command,
    DecideApproval,
    SetChannelSetting,
    ShowChannelSettings,
    UnsetChannelSetting,
    with_channel_defaults,
    ListJobs,
    ShowUsage,
    OpenWeb,
    ListSessions,
    ParseSettings,
    RunJob,
    SendToSession,
    ShowHelp,
    ShowLogs,
    StartSession,
    StopSession,
    help_text,
    is_command,
    parse_command,
)
from ..domain.access import AccessPolicy
from ..domain.ownership import Ownership
from ..domain.errors import DispatchError, JobAlreadyFinished, NotAllowed, NotAvailableYet
from ..domain.ids import job_id_from_hex
from ..domain.job import ACTIVE_STATES, Conversation, Job, User
from ..domain.job_spec import JobSpec, format_duration
from ..domain.messages import ChatMessage, Inbound, JobAccepted, JobTable, KeptFile, LogExcerpt, MessageRef, Notice
from ..domain.render import ARTIFACT_TEXT_LINES, why_not_kept
from ..domain.usage import render_usage, summarize_usage
from ..ports.channel_settings_store import ChannelSettingsStore
from ..ports.chat import ChatPort
from ..ports.job_store import JobStore
from ..ports.sprites import Sprite
from .approvals import ApprovalDesk
from .web_view import WebLinks
from .job_runner import JobRunner
from .session_commands import SessionCommands
from .sessions import session_table_lines

log = logging.getLogger(__name__)

#: `/od-usage` sums at most this many of the newest jobs in its period.
MAX_USAGE_JOBS = 100_000
SESSIONS_NOT_YET = (
    "Persistent sessions are not available yet in this build. "
    "Use /od-run for one-shot jobs; /od-help lists what works."
)


class Dispatcher:
    def __init__(
        self,
        *,
        store: JobStore,
        chat: ChatPort,
        runner: JobRunner,
        parse_settings: ParseSettings,
        wall_clock: Callable[[], float],
        access: AccessPolicy = AccessPolicy(),
        ownership: Ownership = Ownership(),
        sessions: SessionCommands | None = None,
        channel_settings: ChannelSettingsStore | None = None,
        approvals: ApprovalDesk | None = None,
        web_links: WebLinks | None = None,
    ) -> None:
        #: Signed links to the web view (`/od-web`); None when it is off.
        self.web_links = web_links
        self.approvals = approvals
        self.sessions = sessions
        #: Channels' defaults (`/od-config`); None: the store keeps none, the command says so.
        self.channel_settings = channel_settings
        self.access = access
        self.ownership = ownership
        self.store = store
        self.chat = chat
        self.runner = runner
        self.parse_settings = parse_settings
        self.wall_clock = wall_clock
        self._nursery: trio.Nursery | None = None
        self._admission = trio.Lock()

    async def run(self, *, task_status: trio.TaskStatus[Dispatcher] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the job tasks. Cancelling this cancels every job, and each destroys its sprite."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            await trio.sleep_forever()

    async def handle(self, inbound: Inbound) -> None:
        """Answer one line of chat. Never raises for anything the user typed."""
        try:
            await self._handle(inbound)
        except DispatchError as exc:
            await self._reply(inbound.conversation, Notice(str(exc), ephemeral=True))
        except Exception:
            ref = secrets.token_hex(3)
            log.exception("command failed (ref %s)", ref)
            await self._reply(
                inbound.conversation, Notice(f"Something went wrong on our side (ref {ref}).", ephemeral=True)
            )

    async def _handle(self, inbound: Inbound) -> None:
        if not inbound.addressed and is_command(inbound.text):
            return  # overheard, not addressed to us: neither a command nor a session message
        if not is_command(inbound.text):
            # Plain chat in a session's conversation is a message for it. Adapters never hand
            # us the bot's own messages, and anything that parses as a command stays a command.
            if self.sessions is not None and await self.sessions.route(inbound):
                return
            if inbound.addressed:
                await self._reply(inbound.conversation, Notice("Not a command. Type /od-help for the list."))
            return
        command = parse_command(inbound.text, self.parse_settings)
        if not isinstance(command, ShowHelp):
            self.access.check_user(inbound.user, inbound.conversation)
        if isinstance(command, (RunJob, StartSession)) and self.channel_settings is not None:
            channel = await self.channel_settings.channel_settings(channel_key(inbound.conversation))
            if channel.values:
                command = with_channel_defaults(inbound.text, command, self.parse_settings, channel)
        await self.execute(command, inbound.conversation, inbound.user)

    async def execute(self, command: Command, conversation: Conversation, user: User) -> Job | None:
        """Carry out a parsed command; returns the job it started, if any."""
        match command:
            case RunJob(spec=spec):
                return await self.submit(spec, conversation, user)
            case ListJobs():
                await self._list_jobs(command, conversation, user)
            case ShowUsage():
                await self._show_usage(command, conversation, user)
            case OpenWeb():
                await self._open_web(conversation, user)
            case CancelJob(job_id=job_id):
                await self.cancel(job_id, user, conversation)
            case ShowLogs(job_id=job_id, artifact=str(name)):
                await self._show_artifact(job_id, name, conversation, user)
            case ShowLogs(job_id=job_id, tail=tail, raw=True):
                job = await self.store.get(job_id)
                self.ownership.check_may_read(user, job, conversation)
                lines = await self.store.transcript(job_id)
                # All of it: adapters that can attach a file send it whole, and text shows a tail.
                shown = lines[-tail:] if tail is not None else lines
                await self._reply(conversation, LogExcerpt(job=job, lines=tuple(shown), total_lines=len(lines), raw=True))
            case ShowLogs(job_id=job_id, tail=tail):
                job = await self.store.get(job_id)
                self.ownership.check_may_read(user, job, conversation)
                lines = await self.store.output(job_id, tail=tail)
                total = await self.store.output_line_count(job_id)
                await self._reply(conversation, LogExcerpt(job=job, lines=tuple(lines), total_lines=total))
            case ShowHelp(topic=topic):
                await self._reply(conversation, Notice(help_text(topic), ephemeral=True))
            case ShowChannelSettings() | SetChannelSetting() | UnsetChannelSetting():
                await self._channel_config(command, conversation, user)
            case DecideApproval(request_id=request_id, approve=approve, for_job=for_job):
                if self.approvals is None:
                    raise NotAvailableYet("This dispatcher's store keeps no approval requests.")
                said = await self.approvals.decide(request_id, approve, for_job, user, conversation)
                await self._reply(conversation, Notice(said, ephemeral=True))
            case ListSessions() if self.sessions is not None:
                now = self.wall_clock()
                live_sessions = [
                    s for s in self.sessions.live_sessions()
                    if self.ownership.may_read(user, s.owner, s.conversation, conversation)
                ]
                if live_sessions:  # one message when there are none, as before sessions existed
                    await self._reply(conversation, Notice("\n".join(session_table_lines(live_sessions, now))))
                jobs = await self._visible_running(user, conversation)
                await self._reply(
                    conversation,
                    JobTable(
                        title="Running jobs",
                        jobs=tuple(jobs),
                        now=now,
                        empty_text=(
                            "No job is running."
                            if live_sessions
                            else "No sessions or jobs are running. Start one with /od-start NAME or /od-run."
                        ),
                    ),
                )
            case StartSession() if self.sessions is not None:
                self.access.check_spec(command.spec, default_image=self.parse_settings.default_image)
                await self.sessions.start(command, conversation, user)
            case StopSession(name=name) if self.sessions is not None:
                await self.sessions.stop(name, user, conversation)
            case SendToSession(name=name, message=message) if self.sessions is not None:
                return await self.sessions.send(name, message, conversation, user)
            case ListSessions():
                jobs = await self._visible_running(user, conversation)
                await self._reply(
                    conversation,
                    JobTable(
                        title="Running jobs (persistent sessions are not available yet)",
                        jobs=tuple(jobs),
                        now=self.wall_clock(),
                        empty_text="Nothing is running. Start a job with /od-run.",
                    ),
                )
            case StartSession() | StopSession() | SendToSession():
                raise NotAvailableYet(SESSIONS_NOT_YET)
        return None

    async def _channel_config(
        self, command: ShowChannelSettings | SetChannelSetting | UnsetChannelSetting, conversation: Conversation, user: User
    ) -> None:
        """Anyone reads a channel's defaults; only admins change them."""
        store = self.channel_settings
        if store is None:
            raise NotAvailableYet("This dispatcher's store keeps no channel settings.")
        key = channel_key(conversation)
        current = await store.channel_settings(key)
        if not isinstance(command, ShowChannelSettings):
            if not self.ownership.is_admin(user):
                raise NotAllowed(
                    "Only an Open-Dispatch admin (OPENDISPATCH_ADMIN_USERS) can change this channel's settings; "
                    "/od-config shows them."
                )
            now = self.wall_clock()
            if isinstance(command, SetChannelSetting):
                current = current.with_value(command.key, command.value, by=user.name, at=now)
                said = f"This channel's {command.key} is now {command.value}."
            else:
                current = current.without(command.key, by=user.name, at=now)
                said = f"This channel's {command.key} is no longer set."
            await store.save_channel_settings(key, current)
            await self._reply(conversation, Notice(said + " Flags on a command still win."))
            return
        lines = ["This channel's defaults for /od-run and /od-start (flags on a command win):", *current.lines()]
        if current.changed_by is not None:
            lines.append(f"Last changed by {current.changed_by}.")
        await self._reply(conversation, Notice("\n".join(lines), ephemeral=True))

    async def submit(self, spec: JobSpec, conversation: Conversation, user: User) -> Job:
        """Queue a one-shot job, say what was resolved, and start its task."""
        if self._nursery is None:
            raise RuntimeError("Dispatcher.run must be started before jobs are submitted")
        self.access.check_spec(spec, default_image=self.parse_settings.default_image)
        async with self._admission:  # the limit check and the add must not interleave
            active = await self.store.recent(limit=1000, states=ACTIVE_STATES, user_id=user.id)
            self.access.check_active_jobs(user, len(active))
            job = Job.queued(job_id_from_hex(secrets.token_hex(4)), spec, conversation, user, at=self.wall_clock())
            await self.store.add(job)
        accepted = await self._reply(conversation, JobAccepted(job, web_url=self.runner.job_link(job)))
        await self._nursery.start(self.runner.run, job, accepted)
        return job

    async def adopt(self, job: Job, sprite: Sprite) -> None:
        """Supervise a job whose sprite outlived a dispatcher restart, to its end."""
        if self._nursery is None:
            raise RuntimeError("Dispatcher.run must be started before jobs are adopted")
        await self._nursery.start(partial(self.runner.run, job, None, adopt=sprite))

    async def cancel(self, job_id: str, user: User, conversation: Conversation) -> None:
        job = await self.store.get(job_id)
        if job.is_finished:
            ago = format_duration(self.wall_clock() - (job.finished_at or job.created_at))
            raise JobAlreadyFinished(f"Job {job_id} already ended ({job.state.value}) {ago} ago.")
        self.ownership.check_may_act(user, job.requested_by, job_id)
        if not await self.runner.cancel(job_id, by=user.name):
            if self.sessions is not None and await self.sessions.cancel_queued(job_id, by=user.name):
                await self._reply(conversation, Notice(f"Cancelled {job_id} (it was waiting in its session's queue)."))
                return
            raise JobAlreadyFinished(f"Job {job_id} is not running in this dispatcher.")
        await self._reply(conversation, Notice(f"Cancelling {job_id}…"))

    async def wait_finished(self, job_id: str) -> Job:
        """Return the job once it has ended and its final card was posted."""
        live = self.runner.live(job_id)
        if live is not None:
            await live.done.wait()
        return await self.store.get(job_id)

    async def wait_idle(self) -> None:
        """Return once no job is running in this process (the demo waits on this)."""
        while self.runner.live_jobs:
            live = next(iter(self.runner.live_jobs.values()))
            await live.done.wait()

    async def _visible_running(self, user: User, conversation: Conversation) -> list[Job]:
        """`/od-list`'s running jobs: all of them for an admin, else those the user may read."""
        jobs = await self.store.recent(limit=50, states=ACTIVE_STATES)
        return [job for job in jobs if self.ownership.may_read(user, job.requested_by, job.conversation, conversation)]

    async def _show_artifact(self, job_id: str, name: str, conversation: Conversation, user: User) -> None:
        """`/od-logs JOB --artifact NAME`: the dispatcher's copy of a file the job produced."""
        job = await self.store.get(job_id)
        self.ownership.check_may_read(user, job, conversation)
        artifact = job.artifact_named(name)
        content = await self.store.artifact_file(job.id, artifact.name) if artifact is not None else None
        if artifact is None or content is None:
            kept = [a.name for a in job.artifacts if a.kept]
            why = (
                f"{job.id} has no artifact named {name!r}" if artifact is None
                else f"{artifact.name!r} of {job.id} was not kept ({why_not_kept(job, artifact)})"
            )
            choice = f"; its kept files: {', '.join(repr(k) for k in kept)}" if kept else "; it kept no files"
            await self._reply(conversation, Notice(why + choice + ".", ephemeral=True))
            return
        file = KeptFile(artifact, content)
        lines = tuple(file.text.splitlines()) if file.text is not None else ()
        preview = lines[:ARTIFACT_TEXT_LINES]
        await self._reply(conversation, LogExcerpt(job=job, lines=preview, total_lines=len(lines), file=file))

    async def _list_jobs(self, command: ListJobs, conversation: Conversation, user: User) -> None:
        states = (command.status,) if command.status is not None else None
        channel = self.ownership.everyone_scope(user, conversation) if command.all else None
        jobs = await self.store.recent(
            limit=command.limit, states=states, user_id=None if command.all else user.id, channel=channel
        )
        title = ("Recent jobs in this channel" if channel else "Recent jobs") if command.all else f"Recent jobs of {user.name}"
        await self._reply(conversation, JobTable(title=title, jobs=tuple(jobs), now=self.wall_clock()))

    async def _show_usage(self, command: ShowUsage, conversation: Conversation, user: User) -> None:
        since = self.wall_clock() - command.since_s
        channel = self.ownership.everyone_scope(user, conversation) if command.all else None
        jobs = await self.store.recent(
            limit=MAX_USAGE_JOBS, user_id=None if command.all else user.id, created_after=since, channel=channel
        )
        rows = summarize_usage(jobs)
        text = render_usage(rows, since_s=command.since_s, everyone=command.all, user_name=user.name)
        await self._reply(conversation, Notice(text))

    async def _open_web(self, conversation: Conversation, user: User) -> None:
        """`/od-web`: a link to the web view, to the asker only (it is a credential)."""
        if self.web_links is None:
            raise NotAvailableYet("The web view is turned off here (OPENDISPATCH_WEB=0); ask an operator.")
        url, expires_at = self.web_links.for_list(user, conversation)
        valid = format_duration(max(0.0, expires_at - self.wall_clock()))
        text = (
            f"Your link to the web view (jobs you may read, live output, usage), valid for {valid}:\n{url}\n"
            "It opens the view as you: do not share it."
        )
        await self._reply(conversation, Notice(text, ephemeral=True, private=True))

    async def _reply(self, conversation: Conversation, message: ChatMessage) -> MessageRef | None:
        try:
            return await self.chat.send(conversation, message)
        except Exception:
            log.warning("could not reply in chat", exc_info=True)
            return None
