"""The sprite side of `bench/relay`: N simulated sprites, each driving the real sidecar relay.

The sidecar's own `Relay` (spool file, batching, seq, retries, `batchIntervalMs`) is imported
from its sources (`sidecar/src/sprite_reporter`); only the agent is simulated: one producer
thread writes a line to every sprite's relay at `--rate` lines/s, each line carrying its index
and the wall time it was written (the server's chat port measures latency from it).

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

    return SimpleNamespace(load_connection=config.load_connection, Tuning=config.Tuning, Relay=relay.Relay)


LATENCY_SAMPLE = 4  # as bench/relay_server.py samples


def line_ages(lines: list[str], now: float) -> list[float]:
    """The age of one line in LATENCY_SAMPLE, each taken with the same chance (random start)."""
    return [now - float(line.split(" ", 2)[1]) for line in lines[random.randrange(LATENCY_SAMPLE) :: LATENCY_SAMPLE]]


def time_batches_sent(sidecar: Any) -> list[float]:
    """Wrap the sidecar's record (stream) and batch (POST) senders to note line ages at send."""
    ages: list[float] = []
    record, deliver = sidecar.Relay._record, sidecar.Relay._deliver

    def timed_record(self: Any, batch: Any) -> bytes:
        if not any(batch is sent for sent in self._unconfirmed):  # a resend is not a new send
            ages.extend(line_ages(batch.lines, time.time()))
        return record(self, batch)

    def timed_deliver(self: Any, batch: Any) -> None:
        ages.extend(line_ages(batch.lines, time.time()))
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
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
