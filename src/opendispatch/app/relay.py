"""Applies what sidecars report (output, status, artifacts) to jobs, the store and chat.

The webhook adapter calls these methods after structuring a request; every method first
checks the job token, so the adapter needs no knowledge of tokens or jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attrs
import trio

from ..domain.agent_events import map_strings
from ..domain.arrival_order import DEFAULT_ARRIVAL_WINDOW_S
from ..domain.errors import InvalidToken, JobClosed, UnknownJob
from ..domain.job import MAX_KEPT_ARTIFACT_FILES, Artifact, Job, JobState
from ..domain.redaction import Redactor
from ..domain.repo_credentials import NoRepoCredentials, RepoToken
from ..domain.terminal import clean_lines, clean_text
from ..domain.session import looks_like_session_id
from ..domain.sidecar import ArtifactFile, ArtifactReport, LogBatch, StatusReport, TranscriptPart
from ..domain.status_reports import mark_running, transition_for
from ..domain.tokens import TokenIssuer, bearer_token
from ..ports.job_store import JobStore
from ..ports.metrics import Metrics, NoMetrics
from .arrival_turns import ArrivalTurns
from .repo_credentials import JobCredentials
from .ledger import JobLedger
from .log_context import current_job_id
from ..domain.pacing import DEFAULT_STREAM_RECORD_BUDGET_PER_S, SenderPacer, stream_interval_ms

log = logging.getLogger(__name__)

FINISHED_GRACE_S = 60.0
#: Stream records (a record's batches) waiting for the ingest task; past this, connections
#: wait to hand theirs over, so the sidecars' TCP windows fill and they slow down.
INGEST_QUEUE_RECORDS = 4096


@attrs.frozen
class _Records:
    job: Job
    batches: Sequence[LogBatch]
    #: The lines are already redacted (a stream's records are, before they are shown).
    redacted: bool = False


@attrs.frozen
class _Settled:
    """Set once everything queued before it was stored (or failed to be)."""

    done: trio.Event


class Relay:
    def __init__(
        self,
        *,
        store: JobStore,
        ledger: JobLedger,
        tokens: TokenIssuer,
        redactor: Redactor,
        wall_clock: Callable[[], float],
        finished_grace_s: float = FINISHED_GRACE_S,
        metrics: Metrics | None = None,
        pacer: SenderPacer | None = None,
        stream_record_budget_per_s: float = DEFAULT_STREAM_RECORD_BUDGET_PER_S,
        arrival_window_s: float = DEFAULT_ARRIVAL_WINDOW_S,
        credentials: JobCredentials | None = None,
    ) -> None:
        self.stream_record_budget_per_s = stream_record_budget_per_s
        self.credentials = credentials
        self.arrival_turns = ArrivalTurns(arrival_window_s)
        self.metrics = metrics or NoMetrics()
        self.pacer = pacer or SenderPacer()
        self.store = store
        self.ledger = ledger
        self.tokens = tokens
        self.redactor = redactor
        self.wall_clock = wall_clock
        self.finished_grace_s = finished_grace_s
        #: The jobs this process supervises (the ledger's registry; the runner starts them).
        self.live = ledger.live
        self.lines_relayed = 0
        self._ingest: trio.MemorySendChannel[_Records | _Settled] | None = None

    # --- the one check of every sidecar request (reports, streams, approvals, sessions) ----

    def _verified(self, authorization: str | None, subject: object) -> str:
        """`subject` (a job or session id), if the Bearer token was issued for it and has not
        expired (the HMAC compared in constant time); `InvalidToken` for any other case."""
        token = bearer_token(authorization)
        if not isinstance(subject, str):
            raise InvalidToken()
        self.tokens.verify(token, subject, now=self.wall_clock())
        return subject

    async def authorize(self, authorization: str | None, job_id: object) -> Job:
        """The job, if the Bearer token was issued for it; `InvalidToken` for any other case.

        An unknown job id gives the same answer as a bad token so ids cannot be probed.
        """
        job_id = self._verified(authorization, job_id)
        current_job_id.set(job_id)
        live = self.live.get(job_id)
        if live is not None:
            # A job this process supervises is in memory and kept current (a store read per
            # request costs a worker-thread hop; see docs/performance.md).
            return live.job
        try:
            return await self.store.get(job_id)
        except UnknownJob:
            raise InvalidToken() from None

    def authorize_session(self, authorization: str | None, session_id: object) -> str:
        """The session id, if the Bearer token was issued for it (a persistent sprite's long poll).

        Only a session id is accepted (never a job's token for a job id). Whether the session
        is still live is the caller's question: a valid token proves the id was ours, so the
        sprite of an ended session is told it ended.
        """
        if isinstance(session_id, str) and not looks_like_session_id(session_id):
            raise InvalidToken()
        return self._verified(authorization, session_id)

    async def repo_credentials(self, authorization: str | None, job_id: object) -> tuple[RepoToken, str]:
        """The repository token and its server for the job's sprite, asked with its job token.

        A persistent session's messages share their session's token (the sprite is the
        session's). Only while the job runs: a finished job's sprite has no use for it
        (`JobClosed`). `NoRepoCredentials` when it has none; `CredentialsUnavailable` when
        minting failed.
        """
        job = await self.authorize(authorization, job_id)
        if job.is_finished:
            raise JobClosed(job.id)
        credentials = self.credentials
        if credentials is None:
            raise NoRepoCredentials()
        holder = job.session if job.session is not None and credentials.holds(job.session) else job.id
        token = await credentials.current(holder, job.spec.repo)
        for live in self.live.values():  # the job, or its session's job running now
            if holder in (live.job.id, live.job.session) and not live.redactor.covers(token.token):
                live.redactor = live.redactor.with_secrets(token.token)  # a renewed one
        return token, credentials.server_url

    async def note(self, job: Job, line: str) -> None:
        """A line of the dispatcher's own in the job's output (stored, shown, in `/od-logs`)."""
        await self._store_batch(job, LogBatch(job_id=job.id, lines=(line,)))

    def _refuse_if_closed(self, job: Job) -> None:
        if job.finished_at is not None and self.wall_clock() - job.finished_at > self.finished_grace_s:
            raise JobClosed(job.id)

    async def accept_logs(
        self, authorization: str | None, batch: LogBatch, *, arrived_at: float | None = None
    ) -> int | None:
        """Store and show a batch; returns the `batchIntervalMs` to ask the sidecar for, if any.

        A seq-less batch waits its turn: stored in the order the requests arrived
        (`arrived_at`, trio's clock; domain/arrival_order.py).
        """
        job = await self.authorize(authorization, batch.job_id)
        self._refuse_if_closed(job)
        advice = None if job.is_finished else self.pacer.note(job.id, trio.current_time())
        if batch.seq is not None:
            await self._store_batch(job, batch)
            return advice
        async with self.arrival_turns.turn(job.id, trio.current_time() if arrived_at is None else arrived_at):
            await self._store_batch(job, batch)
        return advice

    async def open_stream(self, authorization: str | None, job_id: object) -> Job:
        """Authorise a streaming ingest once, at its start (`InvalidToken`, `JobClosed`)."""
        job = await self.authorize(authorization, job_id)
        self._refuse_if_closed(job)
        return job

    async def accept_stream_records(self, job: Job, batches: Sequence[LogBatch]) -> None:
        """Records of a stream `open_stream` authorised: shown at once, stored by the ingest task.

        Shown before they are stored: chat is a view, the store is the record. Waiting for
        the commit cost the line two more rounds of the event loop, each tens of ms under
        load (docs/performance.md, round 5). Nothing is lost or shown twice by it: a record is
        acknowledged (`lastSeq`) only once stored, so a failed write is resent, and the live
        job shows each seq once (`LiveJob.accept`). All the records that arrived together
        are stored in one write. Stream senders are not counted by the pacer: a record costs
        a fraction of a request, and no answer per record carries advice.
        """
        live = self.live.get(job.id)
        current = live.job if live is not None else job
        self._refuse_if_closed(current)
        redactor = live.redactor if live is not None else self.redactor
        batches = [_redacted(batch, redactor) for batch in batches]
        if live is not None and not current.is_finished:
            now = trio.current_time()
            for batch in batches:
                if batch.seq is not None:  # a seq-less batch is shown once the store says it is new
                    live.accept(batch.seq, batch.lines, now, batch.events)
        records = _Records(current, batches, redacted=True)
        if self._ingest is None or not await self._hand_over(self._ingest, records):
            # No ingest task (a Relay built by hand, or one stopping): store here. Records
            # half applied would not be acknowledged, so finish once begun.
            with trio.CancelScope(shield=True):
                for starting in await self._store_and_show([records]):
                    await self._mark_running_after_output(starting)

    @staticmethod
    async def _hand_over(ingest: trio.MemorySendChannel[_Records | _Settled], item: _Records | _Settled) -> bool:
        """Queue for the ingest task (waiting only when its queue is full); False if it is gone."""
        try:
            try:
                ingest.send_nowait(item)
            except trio.WouldBlock:
                await ingest.send(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def run_ingest(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Store and show stream records in one task, all that arrived in a round at once.

        Why: a stream's connection that awaited its own commit cost a task wake-up, a shielded
        cancel scope and the commit's bookkeeping per record; here a round's records from a
        thousand streams share one write and one wake-up (docs/performance.md, round 4). The
        connection hands its records over and goes back to reading; before it answers with
        `lastSeq` it waits until they are settled (`last_seq`). A record queued but not stored
        when the server stops is not acknowledged, so its sidecar sends it again.
        """
        send, receive = trio.open_memory_channel[_Records | _Settled](INGEST_QUEUE_RECORDS)
        self._ingest = send
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    round_items = [await receive.receive()]
                    while True:
                        try:
                            round_items.append(receive.receive_nowait())
                        except trio.WouldBlock:
                            break
                    await self._ingest_round(round_items, nursery)
        finally:
            self._ingest = None
            while True:  # nobody will settle these now: let their streams answer
                try:
                    item = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if isinstance(item, _Settled):
                    item.done.set()
            receive.close()  # a connection still waiting to hand records over stores them itself

    async def _ingest_round(self, items: Sequence[_Records | _Settled], nursery: trio.Nursery) -> None:
        records = [item for item in items if isinstance(item, _Records)]
        try:
            if records:
                await self._store_records(records, nursery)
        except Exception:
            # Not acknowledged, so not lost: each stream's answer says the last stored seq and
            # its sidecar sends the rest again.
            jobs = ", ".join(sorted({record.job.id for record in records}))
            log.warning(
                "could not store %d stream record(s) of job(s) %s; their sidecars will resend them",
                len(records),
                jobs,
                exc_info=True,
            )
        finally:
            for item in items:
                if isinstance(item, _Settled):
                    item.done.set()

    async def _store_records(self, records: Sequence[_Records], nursery: trio.Nursery) -> None:
        for job in await self._store_and_show(records):
            nursery.start_soon(self._mark_running_quietly, job)

    async def _store_and_show(self, records: Sequence[_Records]) -> list[Job]:
        """Redact, store in one write and hand new batches to live output; the jobs still starting.

        One job's batches (a POST, or a stream without the ingest task) or a round of many
        jobs' (the ingest) alike: the store's one append path, whose group commit (SQLite)
        lets concurrent requests share a transaction.
        """
        appends: list[tuple[Job, LogBatch]] = []
        for record in records:
            if record.redacted:
                appends.extend((record.job, batch) for batch in record.batches)
                continue
            live = self.live.get(record.job.id)
            redactor = live.redactor if live else self.redactor
            appends.extend((record.job, _redacted(batch, redactor)) for batch in record.batches)
        if not appends:
            return []
        appends, reached = self._within_quota(appends)
        stored = await self.store.append_many([(job.id, batch.seq, batch.stored_lines()) for job, batch in appends])
        now = trio.current_time()
        starting: dict[str, Job] = {}
        for (job, batch), is_new in zip(appends, stored):
            if not is_new:
                live = self.live.get(job.id)
                if live is not None:
                    live.quota.refund(batch.lines)
                continue  # a resent batch we already have: acknowledged, not repeated
            self._show(job, batch, now)
            if job.state is JobState.STARTING:
                starting[job.id] = job
        for job_id in reached:
            await self._note_truncated(job_id)
        return list(starting.values())

    def _within_quota(self, appends: list[tuple[Job, LogBatch]]) -> tuple[list[tuple[Job, LogBatch]], list[str]]:
        """Each batch cut to what its job may still store; the jobs that reached the quota now.

        A batch past the quota is still stored (empty, keeping its seq) so that a resuming
        sidecar is not asked for it again.
        """
        kept: list[tuple[Job, LogBatch]] = []
        reached: list[str] = []
        for job, batch in appends:
            live = self.live.get(job.id)
            if live is not None:
                lines, now_reached = live.quota.admit(batch.lines)
                if lines is not batch.lines:
                    batch = LogBatch(job_id=batch.job_id, lines=tuple(lines), seq=batch.seq, events=batch.events)
                if now_reached:
                    reached.append(job.id)
            kept.append((job, batch))
        return kept, reached

    async def _note_truncated(self, job_id: str) -> None:
        """Remember on the job that its output was cut, for its card (the job goes on)."""
        log.warning("job %s: its output reached the quota; later lines are not stored", job_id)
        await self.ledger.change(job_id, lambda current: current.with_output_truncated())

    async def _mark_running_quietly(self, job: Job) -> None:
        current_job_id.set(job.id)  # this task's own context: its log lines name the job
        try:
            await self._mark_running_after_output(job)
        except Exception:  # the job's own status report marks it running too
            log.warning("job %s: could not mark it running after its first output", job.id, exc_info=True)

    async def _settled(self) -> None:
        ingest = self._ingest
        if ingest is None:
            return
        marker = _Settled(trio.Event())
        if await self._hand_over(ingest, marker):
            await marker.done.wait()

    def stream_batch_interval_ms(self) -> int | None:
        """What a streaming sidecar should gather per record now (None: its own default)."""
        return stream_interval_ms(len(self.live), self.stream_record_budget_per_s)

    async def last_seq(self, job_id: str) -> int | None:
        """The highest stored batch seq of a job: where a reconnecting stream resumes.

        Records already handed to the ingest task are settled first, so a stream's answer
        counts everything it sent.
        """
        await self._settled()
        return await self.store.last_seq(job_id)

    async def _store_batch(self, job: Job, batch: LogBatch) -> None:
        await self._store_batches(job, [batch])

    async def _store_batches(self, job: Job, batches: Sequence[LogBatch]) -> None:
        for starting in await self._store_and_show([_Records(job, batches)]):
            await self._mark_running_after_output(starting)

    def _show(self, job: Job, batch: LogBatch, now: float) -> None:
        """A newly stored batch: counted, and handed to the job's live output in seq order.

        A stream's batch was handed over on arrival already; `LiveJob.accept` ignores a seq
        it has shown.
        """
        self.lines_relayed += len(batch.lines)
        self.metrics.lines_relayed(len(batch.lines))
        self.ledger.watch.changed(job.id)
        live = self.live.get(job.id)
        if live is not None and not job.is_finished:
            live.accept(batch.seq, batch.lines, now, batch.events)

    async def _mark_running_after_output(self, job: Job) -> None:
        """Output from a starting job means its sprite runs (old sidecars skip `running`)."""
        await self.ledger.change_if_possible(job.id, mark_running)

    async def accept_status(self, authorization: str | None, report: StatusReport) -> None:
        job = await self.authorize(authorization, report.job_id)
        self._refuse_if_closed(job)
        if job.is_finished:
            return  # a repeated or late final status changes nothing
        now = self.wall_clock()
        live = self.live.get(job.id)
        redactor = live.redactor if live else self.redactor
        result = live.progress.result if live is not None else None
        # Shown running, or its task woken when it ended: by the ledger's events (app/job_events.py).
        updated = await self.ledger.change_if_possible(
            job.id, lambda current: transition_for(current, report, now, redactor, result)
        )
        if updated.is_finished:
            self.pacer.forget(job.id)

    async def accept_transcript(self, authorization: str | None, part: TranscriptPart) -> None:
        """Keep a part of the agent's raw transcript (redacted again: never trust the sprite)."""
        job = await self.authorize(authorization, part.job_id)
        self._refuse_if_closed(job)
        live = self.live.get(job.id)
        redactor = live.redactor if live is not None else self.redactor
        await self.store.append_transcript(job.id, part.part, redactor.redact_lines(part.lines))

    async def accept_artifact_file(self, authorization: str | None, file: ArtifactFile) -> None:
        """Keep a small artifact file, since the sprite's workspace goes when the job ends.

        Redacted like every line (a report may print the environment); bytes that are not
        UTF-8 go through unchanged. A job keeps at most `MAX_KEPT_ARTIFACT_FILES`: past that
        the artifact is listed, not kept, and the card says so.
        """
        job = await self.authorize(authorization, file.job_id)
        self._refuse_if_closed(job)
        if job.is_finished:
            return  # its card is out: a retried upload is acknowledged, a new one is not kept
        kept_already = sum(1 for artifact in job.artifacts if artifact.kept)
        artifact = Artifact(name=file.name, url=file.path, type="file", size=len(file.content))
        if kept_already < MAX_KEPT_ARTIFACT_FILES:
            live = self.live.get(job.id)
            redactor = live.redactor if live is not None else self.redactor
            text = file.content.decode("utf-8", "surrogateescape")
            content = redactor.redact(text).encode("utf-8", "surrogateescape")
            await self.store.keep_artifact_file(job.id, file.name, content)
            artifact = attrs.evolve(artifact, kept=True, size=len(content))  # what a reader gets
        await self._add_artifacts(job.id, (artifact,))

    async def accept_artifacts(self, authorization: str | None, report: ArtifactReport) -> None:
        job = await self.authorize(authorization, report.job_id)
        self._refuse_if_closed(job)
        await self._add_artifacts(job.id, report.artifacts)

    async def _add_artifacts(self, job_id: str, artifacts: tuple[Artifact, ...]) -> None:
        await self.ledger.change(job_id, lambda current: current.with_artifacts(artifacts))


def _redacted(batch: LogBatch, redactor: Redactor) -> LogBatch:
    """The batch with its secrets masked; the same object when it had none (the usual case)."""
    lines = tuple(redactor.redact_lines(clean_lines(batch.lines)))
    events = tuple(map_strings(event, lambda text: redactor.redact(clean_text(text))) for event in batch.events)
    if lines == batch.lines and events == batch.events:
        return batch
    return LogBatch(job_id=batch.job_id, lines=lines, seq=batch.seq, events=events)
