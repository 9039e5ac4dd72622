"""bench/relay: how the relay holds up with N sprites streaming at once. Not a test.

For each N it starts the real server in its own process (`relay_server.py`), creates N jobs
through `/od-run` (Dispatcher -> token -> spawn request), hands the sprites' environments to
load-generator processes (`relay_load.py`, the real sidecar relay code), lets every sprite
write `--rate` lines/s for `--duration` seconds, and prints what the server did with them.

    bench/relay                      # N = 10, 100, 1000; 20 s each; ours and the seed's batching
    bench/relay --quick              # 5 s each
    bench/relay -n 1000 --duration 30 --modes ours
    bench/relay --events -n 100 -n 1000   # agent events instead of lines (stream mode)
    bench/relay -n 100 --quick --modes ours,stream --ingest fast   # the fast webhook path
    bench/relay -n 100 --db postgres-temp    # on the PostgreSQL store, a throwaway local server
    bench/relay -n 100 --db postgresql://user@host/db   # on a database of yours (a schema per run)

`--ingest`: the server's webhook path. `plain` (default, as `opendispatch serve` runs by
default) is the Quart app on hypercorn; `fast` is the fast path (`OPENDISPATCH_FAST_INGEST=1`,
adapters/webhook/fast/), which every figure before round 15 in docs/performance.md measured.

`--db`: the store the server under test runs on. `sqlite` (default) is the SQLite store in a
temporary file per run; a `postgresql://` URL is the PostgreSQL store
(`open_postgres_store(url)`, as `OPENDISPATCH_DB` chooses it), each run in a new schema of that
database, dropped after it; `postgres-temp` starts a local PostgreSQL server for the bench
(stock durability settings; `--pg-option KEY=VALUE` changes one) and stops it at the end, and
its processes' CPU is reported beside the server's (`bench/postgres_for_bench.py`).

`--events`: each sprite replays a recorded real agent event stream (Claude Code's
stream-json, `tests/fixtures/agent_streams/claude-tools.jsonl` unless `--recording` says
otherwise), translated once at start by the sidecar's own `ClaudeTranslator`, cycled through
from a random place, one `Relay.add_event` every 1/`--event-rate` s (default 3/s); text and
tool_end events are padded to `--event-kb-min`..`--event-kb-max` KiB (default 1-5). Chat
latency is `Relay.add_event` called -> the chat port got a LiveOutput whose progress was
computed after the event was applied to the job's `AgentProgress` (how that is measured, and
checked against the view itself: `relay_server.py`'s docstring). Events are counted sent ->
applied -> shown in chat -> stored (the tagged ones: text and tool events), and their order
is checked.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import postgres_for_bench  # bench/, this script's folder
from opendispatch.adapters.postgres.url import is_postgres_url, redact_url

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: How a sprite batches: `ours` is the sidecar as shipped (100 ms batches, the server may ask
#: for more through batchIntervalMs); `seed` is the seed's one POST per 20 lines.
# stream: the sidecar as shipped (one long-lived /webhooks/stream request per sprite);
# ours: the same sidecar with OPENDISPATCH_STREAM=0 (a POST per batch, adaptive batchIntervalMs);
# seed: the seed's one POST per 20 lines.
MODES: dict[str, dict[str, Any]] = {
    "stream": {"batch_ms": 100.0, "stream": True},
    "ours": {"batch_ms": 100.0, "stream": False},
    "seed": {"batch_ms": 2000.0, "stream": False},
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Server:
    def __init__(
        self,
        edit_interval: float,
        request_budget: float,
        stream_budget: float = 0.0,
        cpus: set[int] | None = None,
        python_gc: bool = False,
        stages: bool = False,
        events: bool = False,
        db_url: str = "",
        db_pid: int | None = None,
        fast_ingest: bool = False,
    ) -> None:
        command = [PYTHON, str(HERE / "relay_server.py"), "--edit-interval", str(edit_interval)]
        if fast_ingest:
            command.append("--fast-ingest")
        if db_url:
            command += ["--db", db_url]
        if db_pid:
            command += ["--db-pid", str(db_pid)]
        if events:
            command.append("--events")
        if python_gc:
            command.append("--python-gc")
        if stages:
            command.append("--stages")
        if request_budget:
            command += ["--request-budget", str(request_budget)]
        if stream_budget:
            command += ["--stream-budget", str(stream_budget)]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        self.ready = self.read()
        self.pid = self.proc.pid

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the bench server exited early (code {self.proc.wait()})")
        return dict(json.loads(line))

    def close(self) -> None:
        try:
            self.send({"cmd": "quit"})
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def run_generators(jobs: list[dict[str, str]], args: argparse.Namespace, mode: str, folder: str) -> dict[str, Any]:
    procs = max(1, math.ceil(len(jobs) / args.sprites_per_generator))
    start_at = time.time() + 1.0 + len(jobs) / 1000.0  # let every generator set its relays up
    running: list[tuple[subprocess.Popen[str], IO[str]]] = []
    for index in range(procs):
        part = jobs[index::procs]
        path = Path(folder) / f"jobs-{index}.json"
        path.write_text(json.dumps(part))
        command = [
            PYTHON,
            str(HERE / "relay_load.py"),
            str(path),
            "--duration", str(args.duration),
            "--rate", str(args.event_rate if args.events else args.rate),
            "--batch-ms", str(args.stream_batch_ms if mode == "stream" and args.stream_batch_ms else MODES[mode]["batch_ms"]),
            *(["--stream"] if MODES[mode]["stream"] else []),
            "--line-chars", str(args.line_chars),
            "--start-at", str(start_at),
            *(["--stages"] if args.stages else []),
            *(
                [
                    "--events", "--seed", str(index),
                    "--event-kb-min", str(args.event_kb_min), "--event-kb-max", str(args.event_kb_max),
                    *[item for path in args.recording or [] for item in ("--recording", str(path))],
                ]
                if args.events else []
            ),
        ]
        cpus = args.generator_cpus
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        assert proc.stdout is not None
        running.append((proc, proc.stdout))
    # One generator of several is profiled: they all run the same code on equal shares.
    profiler = start_profiler(running[0][0].pid, args.profile, f"{len(jobs)}-{mode}-sprites") if args.profile else None
    merged: dict[str, Any] = {
        "sent": {}, "started": math.inf, "delivered_at": 0.0, "lag": 0.0, "cpu_s": 0.0, "sent_age_ms": [],
        "event_sent_at": {}, "event_bytes": 0, "event_tagged": {}, "writing_ended": 0.0,
    }
    for proc, out in running:
        text = out.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"a load generator failed (exit {proc.returncode})")
        result = json.loads(text)
        merged["sent"].update(result["sent"])
        merged["started"] = min(merged["started"], result["started"])
        merged["delivered_at"] = max(merged["delivered_at"], result["delivered_at"])
        merged["lag"] = max(merged["lag"], result["producer_lag_max_s"])
        merged["cpu_s"] += usage.ru_utime + usage.ru_stime
        merged["sent_age_ms"].extend(result.get("sent_age_ms") or [])
        merged["event_sent_at"].update(result.get("event_sent_at") or {})
        merged["event_bytes"] += result.get("event_bytes") or 0
        merged["event_tagged"].update(result.get("event_tagged") or {})
        merged["writing_ended"] = max(merged["writing_ended"], result["writing_ended"])
    if profiler is not None:
        profiler.wait()  # py-spy stops when its process ends
    merged["generators"] = procs
    return merged


def start_profiler(pid: int, folder: Path, name: str) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) on a process while the sprites stream: collapsed stacks.

    `--gil`: only the thread holding the GIL is sampled, so the figures are CPU, not the
    hundreds of sidecar threads waiting for their next batch."""
    folder.mkdir(parents=True, exist_ok=True)
    py_spy = Path(PYTHON).with_name("py-spy")
    output = folder / f"relay-{name}.txt"
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--gil", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_once(n: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One N, one mode, on a store of its own: SQLite in a new file (relay_server.py's), or a new
    schema of the PostgreSQL database, dropped after the run."""
    if not args.db_url:
        return measure(n, mode, args, "")
    schema = postgres_for_bench.create_schema(args.db_url)
    try:
        return measure(n, mode, args, postgres_for_bench.schema_url(args.db_url, schema))
    finally:
        postgres_for_bench.drop_schema(args.db_url, schema)


def measure(n: int, mode: str, args: argparse.Namespace, db_url: str) -> dict[str, Any]:
    server = Server(
        args.edit_interval, args.request_budget, args.stream_budget, args.server_cpus, args.python_gc, args.stages,
        args.events, db_url, args.db_pid, args.ingest == "fast",
    )
    try:
        server.send({"cmd": "start", "n": n})
        jobs_event = server.read()
        overheads = jobs_event["start_overhead_ms"]
        with tempfile.TemporaryDirectory(prefix="od-bench-") as folder:
            cpu_before = cpu_seconds(server.pid)
            db_cpu_before = postgres_for_bench.tree_cpu_seconds(args.db_pid) if args.db_pid else None
            profiler = start_profiler(server.pid, args.profile, f"{n}-{mode}") if args.profile else None
            load = run_generators(jobs_event["jobs"], args, mode, folder)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait()
            server.send({"cmd": "report"})
            report = server.read()
            cpu_after = report["cpu_s"]  # as the last job ended, before the checks read the store
        rss = peak_rss_mib(server.pid)
    finally:
        server.close()
    # The database server's CPU over the same span (None: SQLite, whose work is in the server's
    # own CPU, or a database of yours, whose processes the bench does not see).
    db_cpu = None if db_cpu_before is None or report["db_cpu_s"] is None else report["db_cpu_s"] - db_cpu_before
    if args.events:
        return {
            **event_row(n, mode, args, load, report, overheads, cpu_after - cpu_before, rss),
            **store_fields(args, db_cpu, cpu_after - cpu_before),
        }
    sent = load["sent"]
    total_sent = sum(sent.values())
    lost_store = sum(max(0, count - report["stored"].get(job, 0)) for job, count in sent.items())
    lost_chat = sum(max(0, count - report["chat"].get(job, 0)) for job, count in sent.items())
    extra = sum(max(0, report["stored"].get(job, 0) - count) for job, count in sent.items())
    wall = load["delivered_at"] - load["started"]
    cpu = cpu_after - cpu_before
    return {
        "n": n,
        "mode": mode,
        "sent": total_sent,
        "offered_per_s": n * args.rate,
        "delivered_per_s": (total_sent - lost_store) / wall if wall > 0 else float("nan"),
        "drain_s": wall - args.duration,
        "lost_store": lost_store,
        "lost_chat": lost_chat,
        "duplicated": extra,
        "out_of_order": report["stored_out_of_order"] + report["chat_out_of_order"],
        "still_live": report["still_live"],
        "chat_p50_ms": _ms(report["chat_latency_s"]["p50"]),
        "chat_p99_ms": _ms(report["chat_latency_s"]["p99"]),
        "store_p50_ms": _ms(report["store_latency_s"]["p50"]),
        "store_p99_ms": _ms(report["store_latency_s"]["p99"]),
        "cpu_s": cpu,
        "cpu_s_per_mline": cpu / total_sent * 1e6 if total_sent else float("nan"),
        "server_cpu_share": cpu / wall if wall > 0 else float("nan"),
        "peak_rss_mib": rss,
        "start_p50_ms": percentile(overheads, 0.50),
        "start_p99_ms": percentile(overheads, 0.99),
        "generators": load["generators"],
        "generator_cpu_s": load["cpu_s"],
        "producer_lag_max_ms": load["lag"] * 1000.0,
        "chat_calls": report["chat_calls"],
        "log_requests": report["log_requests"],
        "webhook_requests": report["webhook_requests"],
        "append_wait_ms": {k: _ms(v) for k, v in report["append_wait_s"].items()},
        "timeline": report["chat_latency_by_second"],
        "gc": report["gc"],
        "stages_ms": {
            "sent": (percentile(load["sent_age_ms"], 0.50), percentile(load["sent_age_ms"], 0.99)),
            "read": (_ms(report["arrival_latency_s"]["p50"]), _ms(report["arrival_latency_s"]["p99"])),
            "stored": (_ms(report["store_latency_s"]["p50"]), _ms(report["store_latency_s"]["p99"])),
            "chat": (_ms(report["chat_latency_s"]["p50"]), _ms(report["chat_latency_s"]["p99"])),
        } if args.stages else None,
        "loop_round": report["loop_round_s"] if args.stages else None,
        "started_at": load["started"],
        **store_fields(args, db_cpu, cpu, total_sent),
    }


def store_fields(args: argparse.Namespace, db_cpu: float | None, cpu: float, sent: int = 0) -> dict[str, Any]:
    """Which store a row ran on, and the database server's CPU (s, and s per million lines)."""
    return {
        "store": args.store_name,
        "ingest": args.ingest,
        "db_cpu_s": db_cpu,
        "db_cpu_s_per_mline": None if db_cpu is None or not sent else db_cpu / sent * 1e6,
        "total_cpu_s_per_mline": None if db_cpu is None or not sent else (cpu + db_cpu) / sent * 1e6,
    }


def reached_at(sent_at: list[float], marks: list[list[float]]) -> list[tuple[float, float]]:
    """(sent, latency) of each event k that a mark covers: the first mark whose count passed k."""
    joined = []
    m = 0
    for k, sent in enumerate(sent_at):
        while m < len(marks) and marks[m][0] <= k:
            m += 1
        if m == len(marks):
            break
        joined.append((sent, marks[m][1] - sent))
    return joined


def event_row(
    n: int, mode: str, args: argparse.Namespace, load: dict[str, Any], report: dict[str, Any],
    overheads: list[float], cpu: float, rss: float,
) -> dict[str, Any]:
    """One `--events` run's figures: latencies joined by event index (sent -> applied, -> chat)."""
    sent_at: dict[str, list[float]] = load["event_sent_at"]
    events: dict[str, dict[str, Any]] = report["events"] or {}
    total_sent = sum(len(times) for times in sent_at.values())
    applied = shown = lost_applied = lost_chat = 0
    chat: list[tuple[float, float]] = []
    to_applied: list[float] = []
    for job_id, times in sent_at.items():
        job = events.get(job_id, {"applied": 0, "shown": 0, "applied_marks": [], "chat_marks": []})
        applied += job["applied"]
        shown += job["shown"]
        lost_applied += max(0, len(times) - job["applied"])
        lost_chat += max(0, len(times) - job["shown"])
        chat.extend(reached_at(times, job["chat_marks"]))
        to_applied.extend(latency for _, latency in reached_at(times, job["applied_marks"]))
    chat_latencies = [latency for _, latency in chat]
    tagged = load["event_tagged"]
    lost_store = sum(max(0, count - report["stored"].get(job, 0)) for job, count in tagged.items())
    duplicated = sum(max(0, job["applied"] - len(sent_at.get(job_id, []))) for job_id, job in events.items())
    wall = load["delivered_at"] - load["started"]
    first = min((sent for sent, _ in chat), default=0.0)
    by_second: dict[int, list[float]] = {}
    for sent, latency in chat:
        by_second.setdefault(int(sent - first), []).append(latency * 1000.0)
    return {
        "n": n,
        "mode": mode,
        "sent": total_sent,
        "offered_per_s": total_sent / (load["writing_ended"] - load["started"]),
        "delivered_per_s": applied / wall if wall > 0 else float("nan"),
        "drain_s": wall - args.duration,
        "lost_applied": lost_applied,
        "lost_chat": lost_chat,
        "lost_store": lost_store,
        "duplicated": duplicated,
        "out_of_order": sum(job["out_of_order"] for job in events.values()) + report["stored_out_of_order"],
        "view_mismatch": sum(job["view_mismatch"] for job in events.values()),
        "views_checked": sum(job.get("views", 0) for job in events.values()),
        "still_live": report["still_live"],
        "chat_p50_ms": percentile(chat_latencies, 0.50) * 1000.0,
        "chat_p99_ms": percentile(chat_latencies, 0.99) * 1000.0,
        "chat_max_ms": max(chat_latencies, default=float("nan")) * 1000.0,
        "applied_p50_ms": percentile(to_applied, 0.50) * 1000.0,
        "applied_p99_ms": percentile(to_applied, 0.99) * 1000.0,
        "store_p50_ms": _ms(report["store_latency_s"]["p50"]),
        "store_p99_ms": _ms(report["store_latency_s"]["p99"]),
        "event_kib": load["event_bytes"] / total_sent / 1024.0 if total_sent else float("nan"),
        "cpu_s": cpu,
        "cpu_us_per_event": cpu / total_sent * 1e6 if total_sent else float("nan"),
        "server_cpu_share": cpu / wall if wall > 0 else float("nan"),
        "peak_rss_mib": rss,
        "start_p50_ms": percentile(overheads, 0.50),
        "start_p99_ms": percentile(overheads, 0.99),
        "generators": load["generators"],
        "generator_cpu_s": load["cpu_s"],
        "producer_lag_max_ms": load["lag"] * 1000.0,
        "chat_calls": report["chat_calls"],
        "log_requests": report["log_requests"],
        "webhook_requests": report["webhook_requests"],
        "append_wait_ms": {k: _ms(v) for k, v in report["append_wait_s"].items()},
        "timeline": [
            {"second": second, "lines": len(values), "p50": percentile(values, 0.5) / 1000.0,
             "p99": percentile(values, 0.99) / 1000.0}
            for second, values in sorted(by_second.items())
        ],
        "gc": report["gc"],
        "stages_ms": {
            "sent": (percentile(load["sent_age_ms"], 0.50), percentile(load["sent_age_ms"], 0.99)),
            "read": (_ms(report["arrival_latency_s"]["p50"]), _ms(report["arrival_latency_s"]["p99"])),
            "applied": (percentile(to_applied, 0.50) * 1000.0, percentile(to_applied, 0.99) * 1000.0),
            "stored": (_ms(report["store_latency_s"]["p50"]), _ms(report["store_latency_s"]["p99"])),
            "chat": (percentile(chat_latencies, 0.50) * 1000.0, percentile(chat_latencies, 0.99) * 1000.0),
        } if args.stages else None,
        "loop_round": report["loop_round_s"] if args.stages else None,
        "started_at": load["started"],
    }


def _ms(seconds: float | None) -> float:
    return float("nan") if seconds is None else seconds * 1000.0


COLUMNS = [
    ("store", "store", "{:>8}"),
    ("ingest", "ingest", "{:>6}"),
    ("N", "n", "{:>5}"),
    ("batching", "mode", "{:>8}"),
    ("lines sent", "sent", "{:>10}"),
    ("offered/s", "offered_per_s", "{:>9.0f}"),
    ("lines/s", "delivered_per_s", "{:>8.0f}"),
    ("lost", "lost_store", "{:>4}"),
    ("lost chat", "lost_chat", "{:>9}"),
    ("dup", "duplicated", "{:>3}"),
    ("chat p50 ms", "chat_p50_ms", "{:>11.0f}"),
    ("chat p99 ms", "chat_p99_ms", "{:>11.0f}"),
    ("store p50 ms", "store_p50_ms", "{:>12.0f}"),
    ("store p99 ms", "store_p99_ms", "{:>12.0f}"),
    ("CPU s/M lines", "cpu_s_per_mline", "{:>13.1f}"),
    ("DB CPU s/M lines", "db_cpu_s_per_mline", "{:>16.1f}"),
    ("server CPU", "server_cpu_share", "{:>10.0%}"),
    ("peak RSS MiB", "peak_rss_mib", "{:>12.0f}"),
    ("start p50 ms", "start_p50_ms", "{:>12.1f}"),
    ("start p99 ms", "start_p99_ms", "{:>12.1f}"),
]


EVENT_COLUMNS = [
    ("store", "store", "{:>8}"),
    ("ingest", "ingest", "{:>6}"),
    ("ingest", "ingest", "{:>6}"),
    ("N", "n", "{:>5}"),
    ("batching", "mode", "{:>8}"),
    ("events sent", "sent", "{:>11}"),
    ("offered/s", "offered_per_s", "{:>9.0f}"),
    ("events/s", "delivered_per_s", "{:>8.0f}"),
    ("KiB/event", "event_kib", "{:>9.2f}"),
    ("lost", "lost_applied", "{:>4}"),
    ("lost chat", "lost_chat", "{:>9}"),
    ("lost store", "lost_store", "{:>10}"),
    ("dup", "duplicated", "{:>3}"),
    ("order", "out_of_order", "{:>5}"),
    ("view", "view_mismatch", "{:>4}"),
    ("chat p50 ms", "chat_p50_ms", "{:>11.0f}"),
    ("chat p99 ms", "chat_p99_ms", "{:>11.0f}"),
    ("applied p50 ms", "applied_p50_ms", "{:>14.0f}"),
    ("applied p99 ms", "applied_p99_ms", "{:>14.0f}"),
    ("server CPU s", "cpu_s", "{:>12.1f}"),
    ("DB CPU s", "db_cpu_s", "{:>8.1f}"),
    ("CPU µs/event", "cpu_us_per_event", "{:>12.0f}"),
    ("server CPU", "server_cpu_share", "{:>10.0%}"),
    ("peak RSS MiB", "peak_rss_mib", "{:>12.0f}"),
    ("start p50 ms", "start_p50_ms", "{:>12.1f}"),
]


def cell(fmt: str, value: Any) -> str:
    """A value in its column's format; "-" for none (the DB CPU of SQLite: it is in the server's own)."""
    return "-" if value is None else fmt.format(value)


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]] = COLUMNS) -> None:
    print("  ".join(f"{title:>{len(cell(fmt, rows[0][key])) if rows else len(title)}}" for title, key, fmt in columns))
    for row in rows:
        print("  ".join(cell(fmt, row[key]).rjust(len(title)) for title, key, fmt in columns))


def check_targets(rows: list[dict[str, Any]]) -> list[str]:
    verdicts = []
    shipped = "stream" if any(row["mode"] == "stream" for row in rows) else "ours"
    for row in rows:
        if row["mode"] != shipped:
            continue
        checks = [
            ("0 lost", row["lost_store"] == 0 and row["lost_chat"] == 0 and row["duplicated"] == 0),
            ("chat p50 <= 250 ms", row["chat_p50_ms"] <= 250),
            ("chat p99 <= 1 s", row["chat_p99_ms"] <= 1000),
            ("RSS <= 300 MB", row["peak_rss_mib"] * 1.048576 <= 300),
            ("start p50 <= 20 ms", row["start_p50_ms"] <= 20),
        ]
        verdicts.append(
            f"{row['store']} N={row['n']} {shipped}: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in checks)
        )
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, action="append", help="number of sprites (repeatable; default 10, 100, 1000)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds each sprite writes (default 20)")
    parser.add_argument("--quick", action="store_true", help="5 s per run")
    parser.add_argument("--rate", type=float, default=10.0, help="lines/s per sprite (default 10)")
    parser.add_argument("--line-chars", type=int, default=80, help="characters per line (default 80)")
    parser.add_argument("--modes", default="stream,ours,seed", help="stream,ours,seed (default all)")
    parser.add_argument(
        "--edit-interval", type=float, default=0.25,
        help="seconds between live-output hand-offs to the chat port per job (production: 0.25, bootstrap.EDIT_INTERVAL_S)"
    )
    parser.add_argument(
        "--request-budget", type=float, default=0.0, help="override the server's log requests/s budget (experiments)"
    )
    parser.add_argument(
        "--stream-budget", type=float, default=0.0, help="override the server's stream records/s budget (experiments)"
    )
    parser.add_argument("--stream-batch-ms", type=float, default=0.0, help="override the stream mode's batch window")
    parser.add_argument("--sprites-per-generator", type=int, default=250, help="sprites per load-generator process")
    parser.add_argument(
        "--pin", action="store_true",
        help="run the server on CPU 0 and the simulated sprites on the others, as sprites run on their own machines",
    )
    parser.add_argument(
        "--python-gc", action="store_true", help="run the server with CPython's collector settings, not serve's"
    )
    parser.add_argument(
        "--ingest", choices=("plain", "fast"), default="plain",
        help="the server's webhook path: plain (Quart on hypercorn, serve's default) or fast (OPENDISPATCH_FAST_INGEST=1)",
    )
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of the server (and of one load generator) into this folder")
    parser.add_argument("--timeline", action="store_true", help="print chat latency p50/p99 (ms) per second of the run")
    parser.add_argument(
        "--stages", action="store_true",
        help="print a line's age p50/p99 when its sidecar sends it, when the relay gets it, stored, at chat",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--events", action="store_true",
        help="sprites replay a recorded agent event stream (Relay.add_event) instead of writing lines; "
        "default mode stream",
    )
    parser.add_argument("--event-rate", type=float, default=3.0, help="--events: events/s per sprite (default 3)")
    parser.add_argument(
        "--event-kb-min", type=float, default=1.0, help="--events: smallest padded text/tool_end event, KiB (default 1)"
    )
    parser.add_argument(
        "--event-kb-max", type=float, default=5.0, help="--events: largest padded text/tool_end event, KiB (default 5)"
    )
    parser.add_argument(
        "--recording", type=Path, action="append",
        help="--events: a Claude Code stream-json recording to replay (repeatable; default "
        "tests/fixtures/agent_streams/claude-tools.jsonl)",
    )
    parser.add_argument(
        "--db", default="sqlite",
        help="the server's store: sqlite (default, a temporary file per run), a postgresql:// URL (a new schema "
        "per run, dropped after it), or postgres-temp (a throwaway local PostgreSQL server for the bench)",
    )
    parser.add_argument(
        "--pg-option", action="append", default=[], metavar="KEY=VALUE",
        help="--db postgres-temp: a server setting (postgres -c), e.g. synchronous_commit=off (repeatable)",
    )
    args = parser.parse_args()
    if args.db not in ("sqlite", "postgres-temp") and not is_postgres_url(args.db):
        parser.error(f"--db: sqlite, postgres-temp or a postgresql:// URL, not {args.db!r}")
    if is_postgres_url(args.db):
        postgres_for_bench.schema_url(args.db, "check")  # refuses a URL that sets `options`
    if args.pg_option and args.db != "postgres-temp":
        parser.error("--pg-option is for --db postgres-temp (a server of yours has its own settings)")
    if args.events and args.modes == parser.get_default("modes"):
        args.modes = "stream"
    if args.quick:
        args.duration = 5.0
    all_cpus = sorted(os.sched_getaffinity(0))
    if args.pin and len(all_cpus) < 2:
        parser.error("--pin needs at least 2 CPUs")
    args.server_cpus = {all_cpus[0]} if args.pin else None
    args.generator_cpus = set(all_cpus[1:]) if args.pin else None
    sizes = args.n or [10, 100, 1000]
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if args.events:
        recordings = ", ".join(path.name for path in args.recording or []) or "claude-tools.jsonl"
        load = (
            f"{args.event_rate:g} agent events/s per sprite ({recordings}; text and tool_end padded to "
            f"{args.event_kb_min:g}-{args.event_kb_max:g} KiB)"
        )
    else:
        load = f"{args.rate:g} lines/s per sprite, {args.line_chars}-char lines"
    temp_server = postgres_for_bench.start_temp_server(args.pg_option) if args.db == "postgres-temp" else None
    try:
        if temp_server is not None:
            args.db_url, args.db_pid = temp_server.url(postgres_for_bench.DATABASE), temp_server.pid
            where = f"a throwaway local server (up in {temp_server.started_in_s:.1f} s)"
        elif args.db != "sqlite":
            args.db_url, args.db_pid = args.db, None
            where = f"{redact_url(args.db)} (its CPU not measured)"
        else:
            args.db_url, args.db_pid = "", None
        args.store_name = "sqlite" if not args.db_url else "postgres"
        store = "store: SQLite, a temporary file per run"
        if args.db_url:
            try:
                store = f"store: {postgres_for_bench.describe(args.db_url)}, {where}, a new schema per run"
            except Exception as exc:  # psycopg.OperationalError: no server, no such database, ...
                raise SystemExit(f"--db: cannot use {redact_url(args.db_url)}: {exc}") from None
        return run_all(args, sizes, modes, load, store)
    finally:
        if temp_server is not None:
            temp_server.stop()


def run_all(args: argparse.Namespace, sizes: list[int], modes: list[str], load: str, store: str) -> int:
    print(
        f"bench/relay: {os.cpu_count()} CPUs, {args.duration:g} s per run, {load}, "
        f"live-output edit interval {args.edit_interval:g} s; {store}",
        flush=True,
    )
    rows = []
    for n in sizes:
        for mode in modes:
            row = run_once(n, mode, args)
            rows.append(row)
            if args.events:
                print(
                    f"  N={n} {mode}: {row['sent']} events ({row['event_kib']:.2f} KiB each on average), "
                    f"chat max {row['chat_max_ms']:.0f} ms, {row['views_checked']} progress views checked "
                    f"({row['view_mismatch']} not matching what was applied), "
                    f"{row['still_live']} job(s) still live at the end, "
                    f"store p50/p99 (tagged events) {row['store_p50_ms']:.0f}/{row['store_p99_ms']:.0f} ms",
                    flush=True,
                )
            print(
                f"  {args.store_name} N={n} {mode}: {row['sent']} {'events' if args.events else 'lines'}, drained {row['drain_s']:.1f} s after the last line, "
                f"{row['generators']} generator process(es) used {row['generator_cpu_s']:.1f} CPU s, "
                f"producer lag max {row['producer_lag_max_ms']:.0f} ms, {row['chat_calls']} chat calls, "
                f"{row['log_requests']} log batches ({row['sent'] / max(1, row['log_requests']):.1f} "
                f"{'events' if args.events else 'lines'} each)",
                flush=True,
            )
            requests = ", ".join(
                f"{labels.replace('endpoint=', '').replace('status=', '')}: {count:.0f}"
                for labels, count in sorted(row["webhook_requests"].items())
            )
            print(f"    webhook answers: {requests}", flush=True)
            collector = row["gc"]
            print(
                "    server garbage collection: "
                + ", ".join(f"gen{g} {n} x {s:.2f} s" for g, (n, s) in enumerate(zip(collector["counts"], collector["seconds"])))
                + f", longest pause {collector['longest_s'] * 1000:.0f} ms",
                flush=True,
            )
            waits = row["append_wait_ms"]
            if args.timeline:
                print("    chat latency by second written: " + ", ".join(
                    f"{point['second']}s {_ms(point['p50']):.0f}/{_ms(point['p99']):.0f}" for point in row["timeline"]
                ), flush=True)
            if row["stages_ms"]:
                print("    a line's age p50/p99 (ms): " + ", ".join(
                    f"{stage} {p50:.0f}/{p99:.0f}" for stage, (p50, p99) in row["stages_ms"].items()
                ), flush=True)
            if row["loop_round"]:
                rounds = row["loop_round"]
                print(
                    f"    event loop: {rounds['count']} rounds, p50 {_ms(rounds['p50']):.1f} ms, "
                    f"p99 {_ms(rounds['p99']):.1f} ms, max {_ms(rounds['max']):.1f} ms; weighted by time p50 "
                    f"{_ms(rounds['w50']):.1f} ms, p90 {_ms(rounds['w90']):.1f} ms, p99 {_ms(rounds['w99']):.1f} ms; "
                    f"busy {rounds['busy_s']:.1f} s, idle {rounds['idle_s']:.1f} s",
                    flush=True,
                )
                print("    rounds over 100 ms (s into the run: ms): " + ", ".join(
                    f"{at - row['started_at']:.1f}: {length * 1000:.0f}" for at, length in rounds["long"]
                ), flush=True)
            print(f"    store append (await, commit included): p50 {waits['p50']:.1f} ms, p99 {waits['p99']:.1f} ms, max {waits['max']:.1f} ms", flush=True)
            if row["db_cpu_s"] is not None:
                print(f"    database server's processes: {row['db_cpu_s']:.1f} CPU s", flush=True)
    print()
    print_table(rows, EVENT_COLUMNS if args.events else COLUMNS)
    print()
    for line in [] if args.events else check_targets(rows):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
