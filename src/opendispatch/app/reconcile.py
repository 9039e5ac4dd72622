"""Jobs and sprites no job task in this process is looking after: start-up reconciliation and the reaper.

A dispatcher that restarts (deploy, crash, SIGKILL) finds machines it created and jobs it
stored as running. `reconcile` settles them once at start-up; `StaleJobReaper` keeps
checking while the service runs, for jobs past their deadline and sidecars gone silent.
Both use only the ports, so they work with any sprite backend and any store.

Policy:
- a sprite whose job is finished or unknown is an orphan: destroy it;
- a job stored as active whose recorded sprite is gone is `lost`, and its channel gets the card;
- a job stored as active whose sprite still runs is left alone: its sidecar still reports
  (job tokens survive restarts) and the reaper ends it at its deadline if nobody else does.
- a sprite of a live session (its `job_id` is the session's id) is kept: it waits for the
  session's next message; a message running on it is kept like any running job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Awaitable

import attrs
import trio

from ..domain.errors import DispatchError, UnknownJob
from ..domain.job import ACTIVE_STATES, Job, JobState
from ..ports.chat import ChatPort
from ..ports.job_store import JobStore
from ..ports.sprites import Sprite, SpritePort
from .final_cards import FinalCards
from .web_view import JobLink, no_link
from .ledger import JobLedger

log = logging.getLogger(__name__)

SCAN_LIMIT = 1000
DEFAULT_REAPER_PERIOD_S = 60.0  # the seed's reaper "runs every 60 seconds"
DEFAULT_SILENCE_S = 1800.0

LOST_AT_RESTART = "its sprite was gone when the dispatcher restarted"


@attrs.frozen
class ReconcileReport:
    destroyed: tuple[str, ...] = ()  # sprite ids
    lost: tuple[str, ...] = ()  # job ids
    kept: tuple[str, ...] = ()  # job ids still running on their sprite


@attrs.define
class _Ender:
    """Ends a job once (through the ledger), destroys its sprite and posts its card."""

    store: JobStore
    ledger: JobLedger
    sprites: SpritePort
    chat: ChatPort
    wall_clock: Callable[[], float]
    job_link: JobLink = no_link

    async def end(self, job: Job, transition: Callable[[Job], Job], *, sprite_ids: Collection[str] = ()) -> Job | None:
        ended = await self.ledger.change_if_possible(job.id, lambda j: None if j.is_finished else transition(j))
        if not ended.is_finished or ended == job:
            return None
        for sprite_id in {*sprite_ids, *([ended.sprite_id] if ended.sprite_id else [])}:
            await self.destroy(sprite_id)
        await self.post_card(ended)
        return ended

    async def destroy(self, sprite_id: str) -> bool:
        try:
            await self.sprites.destroy(sprite_id)
            return True
        except Exception:
            log.exception("could not destroy sprite %s", sprite_id)
            return False

    async def post_card(self, job: Job) -> None:
        await FinalCards(self.store, self.chat, self.wall_clock, self.job_link).post(job)


async def reconcile(
    *,
    store: JobStore,
    ledger: JobLedger,
    sprites: SpritePort,
    chat: ChatPort,
    wall_clock: Callable[[], float],
    supervised: Collection[str] = (),
    sessions: Collection[str] = (),
    job_link: JobLink = no_link,
) -> ReconcileReport:
    """Destroy orphan sprites and mark jobs whose sprite is gone as lost (see the module doc).

    `sessions` are the ids of live sessions: their sprites are not orphans.
    """
    ender = _Ender(store, ledger, sprites, chat, wall_clock, job_link)
    try:
        listed = await sprites.list_sprites()
    except DispatchError as exc:
        log.error("reconciliation skipped: cannot list sprites: %s", exc)
        return ReconcileReport()
    destroyed: list[str] = []
    running_on: dict[str, list[Sprite]] = {}
    session_sprites = {sprite.id for sprite in listed if sprite.job_id in sessions}
    for sprite in listed:
        if sprite.job_id in supervised or sprite.id in session_sprites:
            continue
        job = await _job_or_none(store, sprite.job_id)
        if job is None or job.is_finished:
            if await ender.destroy(sprite.id):
                destroyed.append(sprite.id)
        else:
            running_on.setdefault(job.id, []).append(sprite)
    lost: list[str] = []
    for job in await store.recent(limit=SCAN_LIMIT, states=ACTIVE_STATES):
        if job.id in supervised or job.id in running_on or job.sprite_id is None:
            continue  # no sprite recorded: its spawn may still be landing; the reaper has the deadline
        if job.session is not None and job.sprite_id in session_sprites:
            running_on.setdefault(job.id, [])  # a message running on its session's sprite
            continue
        now = wall_clock()
        if await ender.end(job, lambda j: j.lost(LOST_AT_RESTART, at=now)) is not None:
            lost.append(job.id)
    report = ReconcileReport(tuple(destroyed), tuple(lost), tuple(running_on))
    if destroyed or lost:
        log.warning(
            "reconciliation: destroyed %d orphan sprite(s), marked %d job(s) lost, %d job(s) still running",
            len(destroyed),
            len(lost),
            len(running_on),
        )
    return report


async def _job_or_none(store: JobStore, job_id: str) -> Job | None:
    try:
        return await store.get(job_id)
    except UnknownJob:
        return None


@attrs.define
class _Seen:
    lines: int
    state: JobState
    since: float


@attrs.define
class StaleJobReaper:
    """Every `period_s`: end active jobs past their deadline, and jobs whose sidecar went silent.

    Jobs a `JobRunner` of this process supervises (`supervised()`) keep their own timeout;
    for them the reaper only watches for silence and, when it ends one, calls `interrupt` so
    the runner destroys the sprite and posts the card. Other jobs (left by an earlier
    process) are ended here: state, sprite destroyed, card posted. `silence_s=None` turns
    the silence check off; silence means no new output line and no state change.
    """

    store: JobStore
    ledger: JobLedger
    sprites: SpritePort
    chat: ChatPort
    wall_clock: Callable[[], float]
    supervised: Callable[[], Collection[str]] = lambda: ()
    interrupt: Callable[[str], Awaitable[object]] | None = None
    #: Jobs waiting in a session's queue: not started, so neither late nor silent.
    waiting: Callable[[], Collection[str]] = lambda: ()
    period_s: float = DEFAULT_REAPER_PERIOD_S
    silence_s: float | None = DEFAULT_SILENCE_S
    job_link: JobLink = no_link
    _seen: dict[str, _Seen] = attrs.field(factory=dict, init=False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.period_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("stale job reaper: sweep failed; trying again in %ss", self.period_s)

    async def sweep(self) -> list[Job]:
        """One pass; returns the jobs it ended."""
        ender = _Ender(self.store, self.ledger, self.sprites, self.chat, self.wall_clock, self.job_link)
        supervised = set(self.supervised())
        waiting = set(self.waiting())
        active = [
            job for job in await self.store.recent(limit=SCAN_LIMIT, states=ACTIVE_STATES) if job.id not in waiting
        ]
        self._seen = {job_id: seen for job_id, seen in self._seen.items() if job_id in {j.id for j in active}}
        ended: list[Job] = []
        for job in active:
            now = self.wall_clock()
            mine = job.id in supervised
            if not mine and now >= (job.started_at or job.created_at) + job.spec.timeout_s:
                done = await ender.end(job, lambda j: j.timed_out(at=now))
            elif await self._went_silent(job, now):
                reason = f"its sidecar went silent (no output or status for {self.silence_s:g}s)"
                if mine:
                    done = await self._end_supervised(job, lambda j: j.lost(reason, at=now))
                else:
                    done = await ender.end(job, lambda j: j.lost(reason, at=now))
            else:
                continue
            if done is not None:
                log.warning("reaped job %s: %s", job.id, done.state.value)
                ended.append(done)
        return ended

    async def _went_silent(self, job: Job, now: float) -> bool:
        if self.silence_s is None:
            return False
        lines = await self.store.output_line_count(job.id)
        seen = self._seen.get(job.id)
        if seen is None or seen.lines != lines or seen.state is not job.state:
            self._seen[job.id] = _Seen(lines, job.state, now)
            return False
        return now - seen.since >= self.silence_s

    async def _end_supervised(self, job: Job, transition: Callable[[Job], Job]) -> Job | None:
        ended = await self.ledger.change_if_possible(job.id, lambda j: None if j.is_finished else transition(j))
        if not ended.is_finished or ended == job:
            return None
        if self.interrupt is not None:
            await self.interrupt(job.id)  # the runner destroys the sprite and posts the card
        return ended
