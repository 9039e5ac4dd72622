"""One task per job: spawn its sprite, relay its output, end it, and always clean up.

The job's timeout is a cancel-scope deadline and `/od-cancel` cancels the job's own scope;
whatever way the task ends, its `finally` destroys the sprite and posts the final card
inside a shielded scope with a bounded timeout, so shutdown never leaves machines behind.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Protocol

import attrs
import trio

from ..domain.errors import DispatchError
from ..domain.agent_progress import stopped_at_cost_cap
from ..domain.job import FailureStage, Job
from ..domain.messages import JobMessages, LiveOutput, MessageRef
from ..domain.output_buffer import OutputBuffer, PageUpdate
from ..domain.output_quota import DEFAULT_MAX_OUTPUT_CHARS, DEFAULT_MAX_OUTPUT_LINES, OutputQuota
from ..domain.redaction import Redactor
from ..domain.repo_credentials import CredentialsUnavailable
from ..domain.sidecar import sprite_environment
from ..domain.tokens import TokenIssuer
from ..ports.chat import ChatPort
from ..ports.cluster import JobMessageStore
from ..ports.job_store import JobStore
from ..ports.metrics import Metrics, NoMetrics
from ..ports.sprites import Sprite, SpritePort, SpriteRequest
from .web_view import JobLink, no_link
from .ledger import JobLedger
from .log_context import current_job_id
from .live_jobs import LiveJobs
from .final_cards import CARD_TAIL_LINES, FinalCards
from .live_job import LiveJob
from .shared_timer import SharedTimer
from .approvals import ApprovalDesk
from .relay import Relay
from .repo_credentials import JobCredentials

log = logging.getLogger(__name__)


class SessionSprites(Protocol):
    """The hook sessions plug into the runner (`SessionSpriteHooks` in app/session_supervisor.py).

    A message of a persistent session runs on the session's sprite: the runner hands the job
    over instead of spawning, and gives it back instead of destroying the sprite.
    """

    def environment(self, job: Job) -> Mapping[str, str]:
        """Extra sprite environment for a session's job ({} for a one-shot job)."""
        ...

    def provides_sprite(self, job: Job) -> bool: ...

    async def deliver(self, job: Job, token: str) -> Sprite:
        """Hand the job to its session's sprite; raise `DispatchError` when that cannot be done."""
        ...

    async def release(self, job: Job, sprite: Sprite) -> None:
        """The job ended; the sprite stays with its session."""
        ...


@attrs.frozen
class RunnerSettings:
    """Bounds that keep a job task finite on every path; the defaults suit production."""

    cleanup_timeout_s: float = 30.0
    chat_call_timeout_s: float = 20.0
    exit_settle_s: float = 3.0
    unsequenced_settle_s: float = 0.5
    token_slack_s: float = 3600.0
    tail_lines: int = CARD_TAIL_LINES
    page_chars: int = 3000
    edit_interval_s: float = 1.0
    heartbeat_s: float = 10.0
    max_pages: int = 5
    max_output_lines: int = DEFAULT_MAX_OUTPUT_LINES
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS

    def new_quota(self) -> OutputQuota:
        return OutputQuota(max_lines=self.max_output_lines, max_chars=self.max_output_chars)

    def new_buffer(self) -> OutputBuffer:
        return OutputBuffer(
            max_chars=self.page_chars,
            min_interval_s=self.edit_interval_s,
            heartbeat_s=self.heartbeat_s,
            max_pages=self.max_pages,
        )


class JobRunner:
    def __init__(
        self,
        *,
        store: JobStore,
        ledger: JobLedger,
        relay: Relay,
        sprites: SpritePort,
        chat: ChatPort,
        tokens: TokenIssuer,
        redactor: Redactor,
        callback_url: str,
        passthrough: Mapping[str, str],
        wall_clock: Callable[[], float],
        settings: RunnerSettings = RunnerSettings(),
        metrics: Metrics | None = None,
        timer: SharedTimer | None = None,
        credentials: JobCredentials | None = None,
        approvals: ApprovalDesk | None = None,
        job_link: JobLink = no_link,
        session_sprites: SessionSprites | None = None,
        messages: JobMessageStore | None = None,
    ) -> None:
        #: Where each job's chat messages are, kept while it runs so that a dispatcher taking
        #: it over edits them (dispatchers sharing a database; None: not kept).
        self.messages = messages
        #: Where a persistent session's message runs: on its session's sprite (None: no sessions).
        self.session_sprites = session_sprites
        #: The job's web page with a grant for its owner ("View live" on the first reply and
        #: the card); `no_link` when the web view is off.
        self.job_link = job_link
        self.cards = FinalCards(store, chat, wall_clock, job_link, settings.tail_lines)
        self.metrics = metrics or NoMetrics()
        #: Tool calls waiting for a person: what a finished job still waited for is settled.
        self.approvals = approvals
        #: Each job's short-lived repository token (a GitHub App's), when one is configured.
        self.credentials = credentials
        self.timer = timer if timer is not None else SharedTimer()  # trio's sleeps until run
        self.store = store
        self.ledger = ledger
        self.relay = relay
        self.sprites = sprites
        self.chat = chat
        self.tokens = tokens
        self.redactor = redactor
        self.callback_url = callback_url
        self.passthrough = dict(passthrough)
        self.wall_clock = wall_clock
        self.settings = settings
        self.sprites_by_job: dict[str, Sprite] = {}

    def live(self, job_id: str) -> LiveJob | None:
        return self.live_jobs.get(job_id)

    @property
    def live_jobs(self) -> LiveJobs:
        """The jobs this runner supervises (it starts and ends them; the ledger keeps them current)."""
        return self.ledger.live

    async def run(
        self,
        job: Job,
        accepted_ref: MessageRef | None,
        *,
        adopt: Sprite | None = None,
        task_status: trio.TaskStatus[LiveJob] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run a job to its end; with `adopt`, take over one whose sprite outlived a restart."""
        live = LiveJob(
            job=job,
            buffer=self.settings.new_buffer(),
            redactor=self.redactor,
            started_ref=accepted_ref,
            quota=self.settings.new_quota(),
        )
        current_job_id.set(job.id)
        if adopt is not None:
            last = await self.store.last_seq(job.id)
            live.order.next_seq = 0 if last is None else last + 1
            live.quota.lines = await self.store.output_line_count(job.id)  # what it stored before
            live.quota.truncated = job.output_truncated
            self.sprites_by_job[job.id] = adopt
            await self._resume_messages(live)
        else:
            await self._remember_messages(live)
        self.live_jobs.start(live)
        self.metrics.job_started()
        task_status.started(live)
        try:
            with live.cancel_scope:
                await self._supervise(live, adopt)
        except Exception:
            ref = secrets.token_hex(3)
            log.exception("job %s: internal error (ref %s)", job.id, ref)
            with trio.CancelScope(shield=True):
                await self._finish(
                    live,
                    lambda j: j.failed(
                        FailureStage.RELAY, f"something went wrong on our side (ref {ref})", at=self.wall_clock()
                    ),
                )
        finally:
            with trio.move_on_after(self.settings.cleanup_timeout_s) as cleanup:
                cleanup.shield = True
                await self._clean_up(live)
            if cleanup.cancelled_caught:
                log.error("job %s: clean-up did not finish in %ss", job.id, self.settings.cleanup_timeout_s)
            self.live_jobs.end(job.id)
            self.ledger.forget(job.id)
            self.metrics.job_finished(live.job.state.value)
            live.done.set()

    async def cancel(self, job_id: str, by: str) -> bool:
        """End a job running in this process; False when it is not ours to cancel."""
        live = self.live(job_id)
        if live is None:
            return False
        now = self.wall_clock()
        await self._finish(live, lambda j: j.cancelled(by=by, at=now))
        live.cancel_scope.cancel()
        return True

    async def _supervise(self, live: LiveJob, adopt: Sprite | None) -> None:
        timeout = live.job.spec.timeout_s
        if adopt is not None and live.job.started_at is not None:
            timeout = max(0.0, live.job.started_at + timeout - self.wall_clock())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump_output, live)
            nursery.start_soon(self._enforce_cost_cap, live)
            try:
                with trio.move_on_after(timeout) as deadline:
                    sprite = adopt if adopt is not None else await self._spawn(live)
                    if sprite is not None:
                        nursery.start_soon(self._watch_exit, live, sprite)
                    await live.finished.wait()
                if deadline.cancelled_caught:
                    now = self.wall_clock()
                    await self._finish(live, lambda j: j.timed_out(at=now))
            finally:  # on every way out, shutdown included: the pump's scope is shielded
                live.stop_pump(trio.current_time(), self.settings.chat_call_timeout_s)
                nursery.cancel_scope.cancel()

    async def _spawn(self, live: LiveJob) -> Sprite | None:
        now = self.wall_clock()
        job = await self._change(live, lambda j: j.starting(at=now))
        expires_at = int(now + job.spec.timeout_s + self.settings.token_slack_s)
        token = self.tokens.issue(job.id, expires_at)
        live.redactor = live.redactor.with_secrets(token)
        env = sprite_environment(job, token=token, callback_url=self.callback_url, passthrough=self.passthrough)
        hook = self.session_sprites
        on_session_sprite = hook is not None and hook.provides_sprite(job)
        if self.credentials is not None and not on_session_sprite:  # (that sprite asks as its session)
            try:
                repo_token = await self.credentials.prepare(job.id, job.spec.repo)
            except CredentialsUnavailable as exc:
                reason = live.redactor.redact(str(exc))
                await self._finish(live, lambda j: j.failed(FailureStage.CREDENTIALS, reason, at=self.wall_clock()))
                return None
            if repo_token is not None:
                live.redactor = live.redactor.with_secrets(repo_token.token)
                env.update(self.credentials.sprite_environment(job.spec.repo))
        elif self.credentials is not None and job.session is not None:
            live.redactor = live.redactor.with_secrets(self.credentials.token_of(job.session))
        if hook is not None:
            env.update(hook.environment(job))
        try:
            if hook is not None and on_session_sprite:
                sprite = await hook.deliver(job, token)
            else:
                sprite = await self.sprites.spawn(SpriteRequest(job_id=job.id, image=job.spec.image, env=env))
        except DispatchError as exc:
            reason = live.redactor.redact(str(exc))
            await self._finish(live, lambda j: j.failed(FailureStage.SPAWN, reason, at=self.wall_clock()))
            return None
        self.sprites_by_job[job.id] = sprite
        self.metrics.live_sprites(len(self.sprites_by_job))
        await self._change(live, lambda j: j.with_sprite(sprite.id))
        return sprite

    async def _enforce_cost_cap(self, live: LiveJob) -> None:
        """Stop the job once the agent's running cost reached its `--max-cost` (every agent)."""
        await live.cap_reached.wait()
        cap, cost = live.job.spec.max_cost_usd, live.cost_at_cap
        if cap is None or cost is None:
            return
        reason = stopped_at_cost_cap(cap, cost)
        now = self.wall_clock()
        await self._finish(live, lambda j: j.failed(FailureStage.COST_CAP, reason, at=now))

    async def _watch_exit(self, live: LiveJob, sprite: Sprite) -> None:
        """A sprite that stops without a final report still ends its job, with the reason."""
        exit_code = await self.sprites.wait_exited(sprite.id)
        with trio.move_on_after(self.settings.exit_settle_s):
            await live.finished.wait()
        if live.finished.is_set():
            return
        if exit_code == 2:
            stage, reason = FailureStage.SIDECAR, (
                "the sidecar refused to start (exit 2): a required variable is missing or invalid; "
                "see the sprite's log"
            )
        else:
            stage, reason = FailureStage.RELAY, (
                f"the sprite stopped (exit code {exit_code}) without reporting a final status; "
                "check that OPEN_DISPATCH_URL is reachable from sprites and see the sprite's log"
            )
        now = self.wall_clock()
        await self._finish(live, lambda j: j.failed(stage, reason, at=now, exit_code=exit_code))

    async def _pump_output(self, live: LiveJob) -> None:
        """Turn buffered lines into live chat messages at the pace the buffer allows.

        Runs in `live.pump_scope`, which only `LiveJob.stop_pump` ends: an update that started
        finishes (bounded), so no page is posted twice.
        """
        with live.pump_scope:
            while not live.pump_stopping:
                flush_at = live.buffer.next_flush_at()
                if flush_at is not None and live.buffer.flush_scheduled:
                    # Batches arriving meanwhile join this flush: waking for each (a thousand
                    # streaming sprites) would cost a task switch per batch for nothing.
                    await self.timer.sleep_until(flush_at)
                    live.output_seen()
                else:
                    await self._wait_output_or(flush_at, live)
                updates = live.buffer.flush(trio.current_time())
                if not updates:
                    continue
                live.pump_in_chat_call = True
                try:
                    await self._show_pages(live, updates)
                finally:
                    live.pump_in_chat_call = False

    async def _wait_output_or(self, wake_at: float | None, live: LiveJob) -> None:
        """New output, or `wake_at` (the heartbeat) if that comes first.

        The timer's callback instead of a cancel scope with a deadline: this wait ends with
        new output nearly every time, once per batch of every job.
        """
        call = self.timer.call_at(wake_at, live.poke) if wake_at is not None else None
        if call is None and wake_at is not None:
            with trio.move_on_at(wake_at):  # no shared timer running
                await live.wait_output_changed()
            return
        try:
            await live.wait_output_changed()
        finally:
            if call is not None:
                self.timer.cancel(call)

    async def _show_pages(self, live: LiveJob, updates: list[PageUpdate]) -> None:
        if updates and live.pending_since is not None:
            self.metrics.relay_latency(trio.current_time() - live.pending_since)
            live.pending_since = None
        progress = live.progress.view() if live.progress.saw_events else None
        for index, update in enumerate(updates):
            message = LiveOutput(
                job=live.job,
                page=update.page,
                lines=update.lines,
                omitted=update.omitted,
                elapsed_s=live.job.duration_s(self.wall_clock()),
                sealed=update.sealed,
                # The newest page carries the progress; a page sealed before it lets it go.
                progress=progress if index == len(updates) - 1 else None,
            )
            try:
                ref = live.page_refs.get(update.page)
                if ref is None:
                    live.page_refs[update.page] = await self.chat.send(
                        live.job.conversation, message, reply_to=live.started_ref
                    )
                    await self._remember_messages(live)
                else:
                    await self.chat.edit(ref, message)
            except Exception:
                # Chat being down must not stop the job; the store keeps every line for /od-logs.
                log.warning("job %s: could not update live output in chat", live.job.id, exc_info=True)

    async def _clean_up(self, live: LiveJob) -> None:
        if not live.finished.is_set():
            now = self.wall_clock()
            await self._finish(live, lambda j: j.cancelled(by="the dispatcher shutting down", at=now))
        sprite = self.sprites_by_job.pop(live.job.id, None)
        self.metrics.live_sprites(len(self.sprites_by_job))
        if self.credentials is not None:
            self.credentials.forget(live.job.id)
        if self.approvals is not None:
            try:
                await self.approvals.job_ended(live.job)
            except Exception:
                log.exception("job %s: could not settle its approval requests", live.job.id)
        if sprite is not None:
            try:
                if self.session_sprites is not None and self.session_sprites.provides_sprite(live.job):
                    await self.session_sprites.release(live.job, sprite)
                else:
                    await self.sprites.destroy(sprite.id)
            except Exception:
                log.exception("job %s: could not destroy sprite %s", live.job.id, sprite.id)
        if live.saw_unsequenced:
            await trio.sleep(self.settings.unsequenced_settle_s)  # old sidecars post chunks concurrently
        live.release_held(trio.current_time())
        await self._keep_agent_summary(live)
        await self._show_pages(live, live.buffer.flush_final(trio.current_time()))
        await self._post_card(live)
        await self._forget_messages(live)

    async def _remember_messages(self, live: LiveJob) -> None:
        if self.messages is None or (live.started_ref is None and not live.page_refs):
            return
        try:
            await self.messages.remember(live.job.id, JobMessages(live.started_ref, dict(live.page_refs)))
        except Exception:
            # Only a later takeover needs them (it would post new messages): the job goes on.
            log.warning("job %s: could not keep where its chat messages are", live.job.id, exc_info=True)

    async def _resume_messages(self, live: LiveJob) -> None:
        """A job taken over: edit the messages the earlier process posted, rebuilt from the store."""
        if self.messages is None:
            return
        kept = await self.messages.recall(live.job.id)
        if kept is None:
            return
        live.started_ref = kept.started
        live.page_refs = dict(kept.pages)
        if kept.pages:
            live.saw_output = True
            live.buffer.resume(await self.store.output(live.job.id), trio.current_time(), shown_pages=kept.pages.keys())

    async def _forget_messages(self, live: LiveJob) -> None:
        if self.messages is None:
            return
        try:
            await self.messages.forget(live.job.id)
        except Exception:
            log.warning("job %s: could not forget where its chat messages were", live.job.id, exc_info=True)

    async def _keep_agent_summary(self, live: LiveJob) -> None:
        """What the agent reported (answer, cost, tokens, files) stays with the job and its card."""
        if not live.progress.saw_events:
            return
        summary = live.progress.summary()
        try:
            await self.ledger.change(live.job.id, lambda j: j.with_agent(summary))
        except Exception:
            log.warning("job %s: could not store the agent's summary", live.job.id, exc_info=True)

    async def _post_card(self, live: LiveJob) -> None:
        await self.cards.post(live.job, reply_to=live.started_ref)

    async def _change(self, live: LiveJob, update: Callable[[Job], Job]) -> Job:
        return await self.ledger.change(live.job.id, update)

    async def _finish(self, live: LiveJob, transition: Callable[[Job], Job]) -> None:
        """Move to a final state unless something else got there first; wake the job task."""
        await self.ledger.change_if_possible(live.job.id, lambda j: None if j.is_finished else transition(j))
        live.finished.set()
