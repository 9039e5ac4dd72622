"""The server side of `bench/relay`: the real dispatcher in its own process.

Everything is production wiring (`open_dispatcher`: Dispatcher, JobRunner, Relay, the
quart-trio webhook server, the SQLite store in a temporary file, or with `--db postgresql://...`
the PostgreSQL store, `open_postgres_store(url)`, as `OPENDISPATCH_DB` would choose) except two
ports:

- `StopwatchChat`, a ChatPort that timestamps every output line the moment it reaches the
  chat port (lines carry their send time, written by the load generator);
- `HandOffSprites`, a SpritePort that starts nothing: it records when the spawn was
  requested and hands the sprite's environment (JOB_ID, JOB_TOKEN, OPEN_DISPATCH_URL) to the
  orchestrator, which gives it to the load generator.

With `--events` the sprites send agent events instead of lines (`relay_load.py --events`), and
what is timed is the events' way to chat. An event shows in chat only through the live
message's progress (`LiveOutput.progress`, a `ProgressView` folded from every event so far),
and most events leave no trace there of their own (a usage total that did not change, a
tool_end whose label is its tool_start's), so the send time cannot be read back from what
reaches chat. Instead `EventStopwatch` wraps `LiveJob._append`, where a job's events are
applied to its `AgentProgress` in seq order, and counts them per job (checking the
`[<index> <wall time>]` tag that text and tool events carry against that count: order); the
chat port notes, for each LiveOutput carrying progress, how many of the job's events had been
applied when that progress was computed (the view is taken right before the chat call, and
nothing in between yields). Event k of a job reached chat with the first LiveOutput whose
count passed k; the orchestrator joins that with event k's send time from the load generator
(`Relay.add_event` called). To check that the progress really reflects those events, every
progress handed to chat is compared with what the stopwatch applied: `steps_done` must equal
the tool_end events applied and `latest_text` must start with the last text event's tag.

It is driven over stdin/stdout, one JSON object per line (logs go to stderr):
  -> {"cmd": "start", "n": N}      <- {"event": "jobs", "jobs": [...], "start_overhead_ms": [...]}
  -> {"cmd": "report"}             <- {"event": "report", ...}   (after every job has ended)
  -> {"cmd": "quit"}
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from typing import Any

import attrs
import httpx
import trio

from opendispatch.adapters.postgres.url import is_postgres_url
from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.app.job_runner import RunnerSettings
from opendispatch.app.live_job import LiveJob
from opendispatch.domain.pacing import SenderPacer
from opendispatch.app.relay import Relay
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.gc_tuning import tune_garbage_collector
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.agent_events import AgentText, ToolFinished, ToolStarted
from opendispatch.domain.messages import ChatMessage, Inbound, LiveOutput, MessageRef
from opendispatch.ports.sprites import Sprite, SpriteRequest
from postgres_for_bench import tree_cpu_seconds  # bench/, this script's folder

CHANNEL = Conversation("bench", "c1")
#: Latency is measured on one line in this many; the order and count of every line are
#: still checked.
LATENCY_SAMPLE = 4


#: Random starts drawn once: `random.randrange` per batch was ~2 % of the server's CPU, which
#: the bench would have charged to the relay. Batches of all jobs take them in turn, so no
#: job or position in a batch is favoured.
_STARTS = itertools.cycle([random.randrange(LATENCY_SAMPLE) for _ in range(65536)])


def sample(lines: Sequence[str]) -> Sequence[str]:
    """Every LATENCY_SAMPLE-th line from a random start: each line is taken with the same
    chance, wherever it sits in its batch (a fixed start would favour a batch's oldest or
    newest line, batches being about LATENCY_SAMPLE lines long here)."""
    return lines[next(_STARTS) :: LATENCY_SAMPLE]


@attrs.define
class JobLines:
    """What reached the chat port (or the store) for one job, in order."""

    count: int = 0
    next_index: int = 0
    out_of_order: int = 0

    def take(self, line: str, latencies: array[float], now: float, written: array[float] | None = None) -> None:
        index_text, sent_text, _ = line.split(" ", 2)
        index = int(index_text)
        if index != self.next_index:
            self.out_of_order += 1
        self.next_index = index + 1
        self.count += 1
        latencies.append(now - float(sent_text))
        if written is not None:
            written.append(float(sent_text))

    def take_run(self, lines: Sequence[str], latencies: array[float], now: float, written: array[float]) -> None:
        """Lines that arrived together: counted, checked for order at their ends, every
        `LATENCY_SAMPLE`-th line of the job timed.

        Why not `take` per line: parsing every line cost the server process ~5 % of its CPU
        at 10,000 lines/s, which the bench would have charged to the relay. A gap or a
        reordering inside a run shows in the count or the ends here, and in the store's
        line-by-line check at the end.
        """
        first = int(lines[0].split(" ", 1)[0])
        last = int(lines[-1].split(" ", 1)[0])
        if first != self.next_index or last != first + len(lines) - 1:
            self.out_of_order += 1
        self.next_index = last + 1
        self.count += len(lines)
        for line in sample(lines):
            sent = float(line.split(" ", 2)[1])
            latencies.append(now - sent)
            written.append(sent)


class StopwatchChat:
    """A ChatPort that keeps nothing but when each new output line arrived.

    Live output is sent as pages that are edited in place, each edit carrying the whole page;
    the lines after the ones already seen on that page are the new ones.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, JobLines] = {}
        self.latencies: array[float] = array("d")
        self.written_at: array[float] = array("d")  # when each of those lines was written
        self.seen_on_page: dict[tuple[str, int], int] = {}
        self.refs: dict[str, tuple[str, int]] = {}
        self.calls = 0
        self.omitted = 0
        self._ids = 0

    async def send(self, where: Conversation, message: ChatMessage, *, reply_to: MessageRef | None = None) -> MessageRef:
        self.calls += 1
        self._ids += 1
        ref = MessageRef(where, str(self._ids))
        if isinstance(message, LiveOutput):
            self.refs[ref.id] = (message.job.id, message.page)
            self._record(message)
        return ref

    async def edit(self, ref: MessageRef, message: ChatMessage) -> None:
        self.calls += 1
        if isinstance(message, LiveOutput):
            self._record(message)

    async def listen(self, handler: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def _record(self, message: LiveOutput) -> None:
        now = time.time()
        if message.progress is not None and EVENTS.installed:
            EVENTS.shown(message, now)
        key = (message.job.id, message.page)
        seen = self.seen_on_page.get(key, 0)
        fresh = message.lines[seen:]
        if not fresh:
            return
        self.seen_on_page[key] = len(message.lines)
        self.omitted = max(self.omitted, message.omitted)
        self.jobs.setdefault(message.job.id, JobLines()).take_run(fresh, self.latencies, now, self.written_at)


@attrs.define
class HandOffSprites:
    """A SpritePort whose sprites are run by the load generator in another process."""

    spawned_at: dict[str, float] = attrs.Factory(dict)
    envs: list[dict[str, str]] = attrs.Factory(list)
    _stopped: dict[str, trio.Event] = attrs.Factory(dict)

    async def spawn(self, request: SpriteRequest) -> Sprite:
        self.spawned_at[request.env["TASK"]] = time.perf_counter()
        self.envs.append({k: request.env[k] for k in ("JOB_ID", "JOB_TOKEN", "OPEN_DISPATCH_URL", "TASK")})
        sprite_id = f"bench-{request.job_id}"
        self._stopped[sprite_id] = trio.Event()
        return Sprite(id=sprite_id, job_id=request.job_id)

    async def wait_exited(self, sprite_id: str) -> int | None:
        event = self._stopped.get(sprite_id)
        if event is not None:
            await event.wait()
        return 0

    async def destroy(self, sprite_id: str) -> None:
        event = self._stopped.get(sprite_id)
        if event is not None:
            event.set()

    async def list_sprites(self) -> list[Sprite]:
        return []


class StoreStopwatch:
    """The store (SQLite or PostgreSQL), plus the time each line was stored (line -> store latency)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.latencies: array[float] = array("d")
        self.append_waits: array[float] = array("d")
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append_many(self, appends: Any) -> list[bool]:
        self.batches += len(appends)
        began = time.time()
        stored = await self._inner.append_many(appends)
        now = time.time()
        self.append_waits.append(now - began)
        for (_, _, lines), is_new in zip(appends, stored):
            if is_new and EVENTS.installed:
                for line in lines:  # every tagged event's line (the padding's lines have none)
                    sent = event_line_sent_at(line)
                    if sent is not None:
                        self.latencies.append(now - sent)
            elif is_new:
                for line in sample(lines):  # sampled, as the chat's (JobLines.take_run)
                    parts = line.split(" ", 2)
                    if len(parts) == 3:
                        self.latencies.append(now - float(parts[1]))
        return list(stored)


def event_tag(text: str) -> tuple[int, float] | None:
    """`[<index> <wall time>]` at the start of `text` (relay_load.py's tag), else None."""
    if text[:1] != "[" or not text[1:2].isdigit():
        return None
    end = text.find("]", 1, 64)
    if end < 0:
        return None
    index, _, sent = text[1:end].partition(" ")
    return int(index), float(sent)


def event_index(text: str) -> int | None:
    """Just the index of `event_tag` (what the order check needs), cheaper."""
    if text[:1] != "[" or not text[1:2].isdigit():
        return None
    return int(text[1 : text.find(" ", 1, 32)])


def event_line_sent_at(line: str) -> float | None:
    """The send time in an event's stored line: its text's first line (`[k t] ...`), or a
    tool's (`▶ Bash: [k t] ...`, `✓ ...`, `✗ ...`); None for other lines."""
    first = line[:1]
    if first == "[":
        tag = event_tag(line)
    elif first in ("▶", "✓", "✗"):
        at = line.find(": [", 0, 256)
        tag = event_tag(line[at + 2 : at + 64]) if at >= 0 else None
    else:
        return None
    return tag[1] if tag is not None else None


@attrs.define
class JobEvents:
    """One job's events as applied to its live progress, and as far as chat has shown them."""

    applied: int = 0
    shown: int = 0
    out_of_order: int = 0
    view_mismatch: int = 0
    views: int = 0
    tool_ends: int = 0
    last_text_tag: str | None = None
    applied_marks: list[tuple[int, float]] = attrs.Factory(list)  # (events applied so far, when)
    chat_marks: list[tuple[int, float]] = attrs.Factory(list)  # (events shown so far, when)


class EventStopwatch:
    """When each job's events were applied to its progress and when chat got a view of them."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobEvents] = {}
        self.installed = False

    def install(self) -> None:
        self.installed = True
        append = LiveJob._append
        applied = self.applied

        def timed_append(live: LiveJob, lines: Any, events: Any, now: float) -> None:
            append(live, lines, events, now)
            if events:
                applied(live.job.id, events)

        LiveJob._append = timed_append  # type: ignore[method-assign]

    def applied(self, job_id: str, events: Sequence[Any]) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            job = self.jobs[job_id] = JobEvents()
        for event in events:
            kind = type(event)
            if kind is AgentText:
                text = event.text
                index = event_index(text)
                job.last_text_tag = text[: text.find("]") + 1] if index is not None else None
            elif kind is ToolStarted or kind is ToolFinished:
                index = event_index(event.summary)
                if kind is ToolFinished:
                    job.tool_ends += 1
            else:
                index = None
            if index is not None and index != job.applied:
                job.out_of_order += 1
                job.applied = index  # count on from where the stream is
            job.applied += 1
        job.applied_marks.append((job.applied, time.time()))

    def shown(self, message: LiveOutput, now: float) -> None:
        job = self.jobs.get(message.job.id)
        if job is None:
            return
        view = message.progress
        assert view is not None
        job.views += 1
        if view.steps_done != job.tool_ends or (
            job.last_text_tag is not None and not view.latest_text.startswith(job.last_text_tag)
        ):
            job.view_mismatch += 1
        if job.applied > job.shown:
            job.shown = job.applied
            job.chat_marks.append((job.applied, now))

    def report(self) -> dict[str, Any]:
        return {
            job_id: {
                "applied": job.applied,
                "shown": job.shown,
                "out_of_order": job.out_of_order,
                "view_mismatch": job.view_mismatch,
                "views": job.views,
                "applied_marks": job.applied_marks,
                "chat_marks": job.chat_marks,
            }
            for job_id, job in self.jobs.items()
        }


EVENTS = EventStopwatch()


def percentiles(values: array[float] | list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1]}


def timeline(written_at: array[float], latencies: array[float]) -> list[dict[str, Any]]:
    """Chat latency by the second the lines were written in: a backlog that grows shows here."""
    if not written_at:
        return []
    first = min(written_at)
    seconds: dict[int, list[float]] = {}
    for at, latency in zip(written_at, latencies):
        seconds.setdefault(int(at - first), []).append(latency)
    return [{"second": second, "lines": len(values), **percentiles(values)} for second, values in sorted(seconds.items())]


class CollectorStopwatch:
    """Time spent in garbage collection, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self.longest_s = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        self.seconds[info["generation"]] += spent
        self.counts[info["generation"]] += 1
        self.longest_s = max(self.longest_s, spent)

    def snapshot(self) -> dict[str, Any]:
        return {"seconds": list(self.seconds), "counts": list(self.counts), "longest_s": self.longest_s}


COLLECTOR = CollectorStopwatch()


class ArrivalStopwatch:
    """How old each line is when the relay gets it, parsed off the wire (`--stages`)."""

    def __init__(self) -> None:
        self.latencies: array[float] = array("d")

    def install(self) -> None:
        stream_records, logs = Relay.accept_stream_records, Relay.accept_logs
        latencies = self.latencies

        def note(batches: Any) -> None:
            now = time.time()
            for batch in batches:
                for line in sample(batch.lines):
                    latencies.append(now - float(line.split(" ", 2)[1]))
                for event in batch.events:  # --events: every tagged one
                    text = event.text if isinstance(event, AgentText) else getattr(event, "summary", "")
                    tag = event_tag(text) if isinstance(event, (AgentText, ToolStarted, ToolFinished)) else None
                    if tag is not None:
                        latencies.append(now - tag[1])

        async def timed_stream_records(relay: Relay, job: Any, batches: Any) -> None:
            note(batches)
            await stream_records(relay, job, batches)

        async def timed_logs(relay: Relay, authorization: Any, batch: Any) -> int | None:
            note([batch])
            return await logs(relay, authorization, batch)

        Relay.accept_stream_records = timed_stream_records  # type: ignore[method-assign]
        Relay.accept_logs = timed_logs  # type: ignore[method-assign]


ARRIVALS = ArrivalStopwatch()


class LoopStopwatch(trio.abc.Instrument):
    """How long the event loop's rounds take (`--stages`): every task woken waits about one."""

    def __init__(self) -> None:
        self.rounds: array[float] = array("d")
        self.long_rounds: list[tuple[float, float]] = []
        self.idle_s = 0.0
        self._round_began = 0.0
        self._wait_began = 0.0

    def before_io_wait(self, timeout: float) -> None:
        now = time.perf_counter()
        self._wait_began = now
        if self._round_began:
            self.rounds.append(now - self._round_began)
            if now - self._round_began > 0.1:
                self.long_rounds.append((time.time(), now - self._round_began))

    def after_io_wait(self, timeout: float) -> None:
        now = time.perf_counter()
        self.idle_s += now - self._wait_began
        self._round_began = now

    def report(self) -> dict[str, Any]:
        """Plain and time-weighted percentiles: a task woken at a random moment lands in a
        round with the probability of that round's share of the time."""
        ordered = sorted(self.rounds)
        total = sum(ordered)
        weighted: dict[str, float | None] = {"w50": None, "w90": None, "w99": None}
        running = 0.0
        marks = iter([(0.50, "w50"), (0.90, "w90"), (0.99, "w99")])
        mark = next(marks, None)
        for length in ordered:
            running += length
            while mark is not None and running >= mark[0] * total:
                weighted[mark[1]] = length
                mark = next(marks, None)
        return {**percentiles(self.rounds), **weighted, "count": len(self.rounds), "idle_s": self.idle_s, "busy_s": total,
                "long": self.long_rounds}


LOOP = LoopStopwatch()


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def read_command() -> dict[str, Any]:
    line = await trio.to_thread.run_sync(sys.stdin.readline)
    if not line:
        return {"cmd": "quit"}
    return dict(json.loads(line))


async def start_jobs(running: Any, sprites: HandOffSprites, n: int) -> None:
    """One `/od-run` per sprite through `Dispatcher.handle`, as a chat adapter delivers them."""
    received_at: dict[str, float] = {}
    first = len(sprites.envs)
    for i in range(n):
        task = f"bench-{first + i}"
        inbound = Inbound(CHANNEL, User(f"u{first + i}", f"user{first + i}"), f'/od-run --agent shell "{task}"')
        received_at[task] = time.perf_counter()
        await running.dispatcher.handle(inbound)
    with trio.fail_after(60):
        while len(sprites.envs) < first + n:
            await trio.sleep(0.01)
    overheads = [(sprites.spawned_at[task] - at) * 1000.0 for task, at in received_at.items()]
    emit({"event": "jobs", "jobs": sprites.envs[first:], "start_overhead_ms": overheads})


async def report(running: Any, chat: StopwatchChat, store: StoreStopwatch, db_pid: int | None) -> None:
    with trio.move_on_after(120):
        await running.dispatcher.wait_idle()
    # The CPU the relay used ends here: what follows (reading every job's output back to
    # check it) is the bench's own work. Likewise the database server's, when it is ours.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    db_cpu_s = tree_cpu_seconds(db_pid) if db_pid else None
    collector = COLLECTOR.snapshot()
    stored: dict[str, int] = {}
    stored_out_of_order = 0
    events_report = EVENTS.report() if EVENTS.installed else None
    for job_id in chat.jobs.keys() | EVENTS.jobs.keys() | set(running.dispatcher.runner.live_jobs):
        lines = await store.output(job_id)
        if EVENTS.installed:
            # The tagged events' lines (text, tool start and end), in order of their index.
            stored[job_id], last = 0, -1
            for line in lines:
                first = line[:1]
                tag = event_tag(line) if first == "[" else None
                if tag is None and first in ("▶", "✓", "✗"):
                    at = line.find(": [", 0, 256)
                    tag = event_tag(line[at + 2 : at + 64]) if at >= 0 else None
                if tag is not None:
                    stored[job_id] += 1
                    stored_out_of_order += tag[0] <= last
                    last = tag[0]
            continue
        stored[job_id] = len(lines)
        check = JobLines()
        scratch: array[float] = array("d")
        for line in lines:
            check.take(line, scratch, 0.0)
        stored_out_of_order += check.out_of_order
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(running.webhook_url + "/metrics")).text
    requests = {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("opendispatch_webhook_requests_total{")
    }
    emit(
        {
            "event": "report",
            "still_live": len(running.dispatcher.runner.live_jobs),
            "stored": stored,
            "stored_out_of_order": stored_out_of_order,
            "chat": {job_id: lines.count for job_id, lines in chat.jobs.items()},
            "chat_out_of_order": sum(lines.out_of_order for lines in chat.jobs.values()),
            "chat_calls": chat.calls,
            "log_requests": store.batches,
            "webhook_requests": requests,
            "chat_omitted": chat.omitted,
            "chat_latency_s": percentiles(chat.latencies),
            "chat_latency_by_second": timeline(chat.written_at, chat.latencies),
            "store_latency_s": percentiles(store.latencies),
            "append_wait_s": percentiles(store.append_waits),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "db_cpu_s": db_cpu_s,
            "max_rss_kib": usage.ru_maxrss,
            "gc": collector,
            "arrival_latency_s": percentiles(ARRIVALS.latencies),
            "loop_round_s": LOOP.report(),
            "events": events_report,
        }
    )


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.request_budget:  # an experiment knob: the production default lives in domain/pacing.py
        SenderPacer.__init__.__defaults__ = (args.request_budget,)
    if args.stream_budget:  # likewise; the default is domain/pacing.py's
        assert Relay.__init__.__kwdefaults__ is not None
        Relay.__init__.__kwdefaults__["stream_record_budget_per_s"] = args.stream_budget
    folder = tempfile.mkdtemp(prefix="od-bench-")
    try:
        await serve(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def serve(args: argparse.Namespace, folder: str) -> None:
    database = args.db or os.path.join(folder, "jobs.db")
    config = Config.embedded(database_path=database, silence_s=None, fast_ingest=args.fast_ingest)
    settings = RunnerSettings(edit_interval_s=args.edit_interval, max_pages=1_000_000, heartbeat_s=3600.0)
    chat = StopwatchChat()
    sprites = HandOffSprites()
    # As bootstrap._open_store does for OPENDISPATCH_DB: a postgresql:// URL, else a SQLite file.
    if is_postgres_url(database):
        from opendispatch.adapters.postgres import open_postgres_store

        opened = open_postgres_store(database)
    else:
        opened = open_sqlite_store(database)
    async with opened as inner:
        store = StoreStopwatch(inner)
        async with open_dispatcher(
            config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0", runner_settings=settings
        ) as running:
            if args.stages:
                trio.lowlevel.add_instrument(LOOP)
            emit({"event": "ready", "url": running.webhook_url, "pid": os.getpid()})
            while True:
                command = await read_command()
                if command["cmd"] == "start":
                    await start_jobs(running, sprites, int(command["n"]))
                elif command["cmd"] == "report":
                    await report(running, chat, store, args.db_pid)
                else:
                    break


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--edit-interval", type=float, default=1.0)
    parser.add_argument("--request-budget", type=float, default=0.0)
    parser.add_argument("--stream-budget", type=float, default=0.0)
    parser.add_argument("--python-gc", action="store_true", help="keep CPython's collector settings (before/after)")
    parser.add_argument("--stages", action="store_true", help="note each line's age when the relay gets it")
    parser.add_argument("--events", action="store_true", help="the sprites send agent events: time those")
    parser.add_argument("--db", default="", help="a postgresql:// URL (default: SQLite in a temporary file)")
    parser.add_argument("--db-pid", type=int, help="the database server's postmaster, to report its CPU")
    parser.add_argument("--fast-ingest", action="store_true", help="the fast webhook path (OPENDISPATCH_FAST_INGEST=1)")
    arguments = parser.parse_args()
    if arguments.stages:
        ARRIVALS.install()
    if arguments.events:
        EVENTS.install()
    if not arguments.python_gc:
        tune_garbage_collector()  # as `opendispatch serve` does
    gc.callbacks.append(COLLECTOR)
    trio.run(main, arguments)
