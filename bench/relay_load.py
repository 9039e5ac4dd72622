"""The sprite side of `bench/relay`: N simulated sprites, each driving the real sidecar relay.

The sidecar's own `Relay` (spool file, batching, seq, retries, `batchIntervalMs`) is imported
from its sources (`sidecar/src/sprite_reporter`); only the agent is simulated: one producer
thread writes a line to every sprite's relay at `--rate` lines/s, each line carrying its index
and the wall time it was written (the server's chat port measures latency from it).

With `--events`, each sprite replays a recorded real agent event stream instead of lines:
the recordings (Claude Code's stream-json, `tests/fixtures/agent_streams/claude-*.jsonl`) are
translated once at start by the sidecar's own `ClaudeTranslator`, and every sprite cycles
through them from a random place, one `Relay.add_event` per tick at `--rate` events/s. Text
and tool_end events are padded (their `text`, their `excerpt`) to a size drawn between
`--event-kb-min` and `--event-kb-max` KiB on the wire; the others keep their recorded size.
Each text event's `text` and each tool event's `summary` starts with `[<index> <wall time>]`
(the event's index in its sprite's stream and when it was added), which the server checks
for order and which shows in the stored log; the output also lists every event's send time,
by index, for the orchestrator to join with when the server saw it applied and shown.

Input: a JSON file with the jobs' environments. Output (stdout): one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SIDECAR_SOURCES = Path(__file__).resolve().parents[1] / "sidecar" / "src"
TICKS_PER_SECOND = 100  # sprites are spread over the ticks so they do not all write at once


def load_sidecar() -> Any:
    """The sidecar's parts this bench drives (its sources, which build `sidecar/sprite-reporter`)."""
    if str(SIDECAR_SOURCES) not in sys.path:
        sys.path.insert(0, str(SIDECAR_SOURCES))
    from sprite_reporter import config, relay

    from sprite_reporter import agent_events, http

    return SimpleNamespace(
        load_connection=config.load_connection,
        Tuning=config.Tuning,
        Relay=relay.Relay,
        ClaudeTranslator=agent_events.ClaudeTranslator,
        encode_body=http.encode_body,
    )


RECORDINGS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "agent_streams"
DEFAULT_RECORDINGS = [RECORDINGS / "claude-tools.jsonl"]
#: Words the padding is made of: prose and tool output as an agent writes them (no secrets,
#: nothing the redactor would mask).
WORDS = (
    "the test suite passes now I will update the handler and run it again file line error "
    "def return import self value config path src tests main build output warning ok done "
    "function module install package version check result changed added removed read write"
).split()


def recorded_events(sidecar: Any, paths: list[Path]) -> list[dict[str, Any]]:
    """The recordings as our events, translated once by the sidecar's own translator."""
    events: list[dict[str, Any]] = []
    for path in paths:
        translator = sidecar.ClaudeTranslator()
        for raw in path.read_text().splitlines():
            events.extend(translator.feed(raw) or [])
    if not events:
        raise SystemExit(f"no events in {', '.join(map(str, paths))}")
    return events


def padding_text(rng: random.Random, chars: int = 256 * 1024) -> str:
    """Lines of 40-100 characters of words, for slicing (a slice may start mid-line)."""
    lines, total = [], 0
    while total < chars:
        words: list[str] = []
        width = rng.randrange(40, 100)
        while sum(map(len, words)) + len(words) < width:
            words.append(rng.choice(WORDS))
        line = " ".join(words)
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


class EventStream:
    """One sprite's replay: the recorded events in a cycle, tagged, padded where they can be."""

    def __init__(self, events: list[dict[str, Any]], start: int, sizes: tuple[int, int], pad: str, rng: random.Random,
                 encode: Any) -> None:
        self.events = events
        self.position = start
        self.sizes = sizes
        self.pad = pad
        self.rng = rng
        self.encode = encode
        self.sent_at: list[float] = []
        self.sizes_recorded = [len(encode(event)) for event in events]
        self.bytes = 0  # on the wire, within a few bytes (not encoded again to count: CPU the sidecars need)
        self.tagged = 0  # events whose text or summary carries the tag (their stored lines do too)

    def next(self, now: float) -> dict[str, Any]:
        template = self.events[self.position % len(self.events)]
        size = self.sizes_recorded[self.position % len(self.events)]
        self.position += 1
        index = len(self.sent_at)
        self.sent_at.append(now)
        event = dict(template)
        tag = f"[{index} {now:.6f}]"
        kind = event.get("type")
        if kind in ("text", "tool_start", "tool_end"):
            self.tagged += 1
        if kind == "text":
            event["text"] = f"{tag} {event.get('text', '')}"
            size = self._pad(event, "text")
        elif kind == "tool_start":
            event["summary"] = f"{tag} {event.get('summary', '')}"
            size += len(tag) + 1
        elif kind == "tool_end":
            event["summary"] = f"{tag} {event.get('summary', '')}"
            size = self._pad(event, "excerpt")
        self.bytes += size
        return event

    def _pad(self, event: dict[str, Any], field: str) -> int:
        """Pad `field` so the event takes a size drawn from `sizes` in JSON; that size."""
        target = self.rng.randint(*self.sizes)
        size = len(self.encode(event))
        need = target - size - 1  # the newline before the padding
        if need <= 0:
            return size
        start = self.rng.randrange(len(self.pad) - need)
        piece = self.pad[start : start + need]
        piece = piece[: need - piece.count("\n")]  # a newline is 2 bytes in JSON
        event[field] = f"{event.get(field, '')}\n{piece}"
        return target


LATENCY_SAMPLE = 4  # as bench/relay_server.py samples


def line_ages(lines: list[str], now: float, events: list[dict[str, Any]] | None = None) -> list[float]:
    """The age of one line in LATENCY_SAMPLE, each taken with the same chance (random start);
    and of every tagged event (`[<index> <wall time>]` at the start of its text or summary)."""
    ages = [now - float(line.split(" ", 2)[1]) for line in lines[random.randrange(LATENCY_SAMPLE) :: LATENCY_SAMPLE]]
    for event in events or ():
        text = event.get("text") if event.get("type") == "text" else event.get("summary")
        if isinstance(text, str) and text.startswith("["):
            ages.append(now - float(text[1 : text.index("]")].split(" ")[1]))
    return ages


def time_batches_sent(sidecar: Any) -> list[float]:
    """Wrap the sidecar's record (stream) and batch (POST) senders to note line ages at send."""
    ages: list[float] = []
    record, deliver = sidecar.Relay._record, sidecar.Relay._deliver

    def timed_record(self: Any, batch: Any) -> bytes:
        if not any(batch is sent for sent in self._unconfirmed):  # a resend is not a new send
            ages.extend(line_ages(batch.lines, time.time(), batch.events))
        return record(self, batch)

    def timed_deliver(self: Any, batch: Any) -> None:
        ages.extend(line_ages(batch.lines, time.time(), batch.events))
        deliver(self, batch)

    sidecar.Relay._record = timed_record
    sidecar.Relay._deliver = timed_deliver
    return ages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs", type=Path)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--batch-ms", type=float, default=100.0)
    parser.add_argument("--line-chars", type=int, default=80)
    parser.add_argument("--stream", action="store_true", help="send over /webhooks/stream (else POSTs)")
    parser.add_argument("--start-at", type=float, default=0.0, help="wall time to start writing lines")
    parser.add_argument("--stages", action="store_true", help="note each line's age when its batch is sent")
    parser.add_argument("--events", action="store_true", help="replay recorded agent events instead of lines")
    parser.add_argument("--recording", type=Path, action="append", help="a Claude Code stream-json recording")
    parser.add_argument("--event-kb-min", type=float, default=1.0)
    parser.add_argument("--event-kb-max", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sidecar = load_sidecar()
    sent_ages = time_batches_sent(sidecar) if args.stages else None
    jobs = json.loads(args.jobs.read_text())
    spool_dir = tempfile.mkdtemp(prefix="od-bench-spool-")
    relays = []
    for index, env in enumerate(jobs):
        connection = sidecar.load_connection(env)
        tuning = sidecar.Tuning(batch_s=args.batch_ms / 1000.0, give_up_s=120.0, http_timeout_s=30.0, stream=args.stream)
        relay = sidecar.Relay(connection, tuning, os.path.join(spool_dir, f"{index}.jsonl"))
        relays.append((env["JOB_ID"], relay))
    for job_id, relay in relays:
        relay.start({"jobId": job_id, "status": "running", "error": ""})

    padding = "x" * max(0, args.line_chars - 30)
    sent = [0] * len(relays)
    streams: list[EventStream] = []
    if args.events:
        rng = random.Random(args.seed)
        recorded = recorded_events(sidecar, args.recording or DEFAULT_RECORDINGS)
        pad = padding_text(rng)
        sizes = (round(args.event_kb_min * 1024), round(args.event_kb_max * 1024))
        streams = [
            EventStream(recorded, rng.randrange(len(recorded)), sizes, pad, random.Random(rng.random()), sidecar.encode_body)
            for _ in relays
        ]
    groups = [relays_index for relays_index in range(len(relays))]
    ticks_per_line = max(1, round(TICKS_PER_SECOND / args.rate))
    tick_s = 1.0 / TICKS_PER_SECOND
    start = max(time.time(), args.start_at)
    time.sleep(max(0.0, start - time.time()))
    started = time.time()
    tick = 0
    lag_max = 0.0
    while True:
        due = started + tick * tick_s
        now = time.time()
        if now < due:
            time.sleep(due - now)
        else:
            lag_max = max(lag_max, now - due)
        if due - started >= args.duration:
            break
        slot = tick % ticks_per_line
        if streams:
            for index in groups[slot::ticks_per_line]:
                relays[index][1].add_event(streams[index].next(time.time()))
                sent[index] += 1
        else:
            for index in groups[slot::ticks_per_line]:
                relays[index][1].add_line(f"{sent[index]} {time.time():.6f} {padding}")
                sent[index] += 1
        tick += 1
    writing_ended = time.time()
    for job_id, relay in relays:
        relay.finish([], {"jobId": job_id, "status": "completed", "exitCode": 0, "error": ""})
    for _, relay in relays:
        relay.wait_done(300.0)
    delivered_at = time.time()
    json.dump(
        {
            "sent": {job_id: count for (job_id, _), count in zip(relays, sent)},
            "started": started,
            "writing_ended": writing_ended,
            "delivered_at": delivered_at,
            "producer_lag_max_s": lag_max,
            "sent_age_ms": [round(age * 1000.0, 1) for age in sent_ages] if sent_ages is not None else None,
            # --events: each event's send time by index, per job, and the bytes they took
            "event_sent_at": {job_id: stream.sent_at for (job_id, _), stream in zip(relays, streams)},
            "event_bytes": sum(stream.bytes for stream in streams),
            "event_tagged": {job_id: stream.tagged for (job_id, _), stream in zip(relays, streams)},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
