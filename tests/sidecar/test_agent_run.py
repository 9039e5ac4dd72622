"""The sidecar's structured-agent parts: event records keep their order, the transcript, files changed."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from sprite_reporter.agent_run import (
    StructuredOutput,
    Transcript,
    files_changed,
    head_commit,
    pump_json_lines,
    redact_event,
)
from sprite_reporter.config import Connection, Tuning
from sprite_reporter.privileges import AgentIdentity
from sprite_reporter.relay import Relay


def spooled_relay(tmp_path: Path) -> Relay:
    connection = Connection("job-1", "token", "http", "127.0.0.1", 9, "")
    return Relay(connection, Tuning(batch_s=0.0), str(tmp_path / "spool.jsonl"))  # never started: nothing is sent


def test_a_record_carries_lines_before_events_and_a_later_line_starts_the_next(tmp_path: Path) -> None:
    relay = spooled_relay(tmp_path)
    relay.add_line("clone output")
    relay.add_event({"v": 1, "type": "text", "text": "hello"})
    relay.add_event({"v": 1, "type": "tool_start", "id": "t", "tool": "Bash"})
    relay.add_line("stderr after the events")
    relay._closed = True  # no more output: batches go at once
    first = relay._collect_batch()
    assert first is not None and first.lines == ["clone output"] and [e["type"] for e in first.events] == ["text", "tool_start"]
    assert first.body() == {"seq": 0, "lines": ["clone output"], "events": first.events}
    relay._read, relay._seq = first.end, 1
    second = relay._collect_batch()
    assert second is not None and second.lines == ["stderr after the events"] and second.events == []
    assert "events" not in second.body()  # plain records stay as old servers know them


def test_json_lines_are_read_whole_however_long() -> None:
    long = json.dumps({"type": "user", "content": "x" * 100_000})
    seen: list[str] = []
    pump_json_lines(io.BytesIO(f"{long}\n{{\"a\": 1}}\n".encode()), seen.append)
    assert seen == [long, '{"a": 1}']
    cut: list[str] = []
    pump_json_lines(io.BytesIO(b"y" * 50 + b"\nnext\n"), cut.append, max_bytes=10)
    assert cut == ["y" * 10, "next"]  # an over-long line keeps its start, the rest is dropped


def test_structured_output_translates_keeps_the_transcript_and_relays_text_lines() -> None:
    events: list[dict] = []
    lines: list[str] = []
    output = StructuredOutput("claude", "/w", lambda text: text.replace("sekret", "[redacted]"), events.append, lines.append)
    output.stdout_line(json.dumps({"type": "system", "subtype": "init", "session_id": "s-1", "model": "m"}))
    output.stdout_line(json.dumps({"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "the sekret"}]}}))
    output.stdout_line("Warning: printed as text")
    output.stderr_line("a warning on stderr")
    output.finish(0)
    assert [e["type"] for e in events][:2] == ["init", "text"] and events[1]["text"] == "the [redacted]"
    assert lines == ["Warning: printed as text", "a warning on stderr"]
    assert output.session_id == "s-1"
    assert len(output.transcript.lines) == 3 and all("sekret" not in line for line in output.transcript.lines)
    assert events[-1]["type"] == "result" and events[-1]["errorKind"] == "crash"  # no result line came


def test_a_transcript_goes_in_parts_and_says_where_it_was_cut() -> None:
    transcript = Transcript(limit=100)
    for n in range(20):
        transcript.add(f'{{"n": {n}}}')
    parts = transcript.parts(part_bytes=40)
    flat = [line for part in parts for line in part]
    assert len(parts) > 1 and flat[0] == '{"n": 0}'
    assert json.loads(flat[-1])["opendispatch"] == "transcript_cut" and transcript.dropped > 0


def test_redact_event_reaches_every_string() -> None:
    event = {"v": 1, "type": "plan", "items": [{"text": "use tok3n", "status": "pending"}], "n": 3}
    assert redact_event(event, lambda s: s.replace("tok3n", "***")) == {
        "v": 1, "type": "plan", "items": [{"text": "use ***", "status": "pending"}], "n": 3
    }


def test_files_changed_against_the_cloned_commit_counts_committed_edited_and_new_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e"]
    (repo / "a.py").write_text("one\ntwo\n")
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    base = head_commit(str(repo))
    assert base is not None
    (repo / "a.py").write_text("one\nTWO\nthree\n")
    subprocess.run([*git, "commit", "-qam", "the agent committed"], check=True)
    (repo / "b.txt").write_text("x\ny\n")
    (repo / ".opendispatch-artifacts").write_text("ours\n")
    event = files_changed(str(repo), base, AgentIdentity(), {"PATH": "/usr/bin:/bin"})
    assert event == {
        "v": 1, "type": "files_changed",
        "files": [{"path": "a.py", "added": 2, "removed": 1}, {"path": "b.txt", "added": 2, "removed": 0}],
        "summary": "2 files changed, 4 insertions(+), 1 deletion(-)",
    }
    assert files_changed(str(tmp_path), base, AgentIdentity(), {}) is None  # not a repository
