"""What the sidecar makes of a structured agent's output: events, the raw transcript, files changed.

Claude Code and OpenCode print one JSON event per stdout line. Each line is kept (redacted) in
the job's raw transcript, for `/od-logs JOB --raw`, and translated (`agent_events`) into our
small vocabulary, which is what the server shows. A line that is not JSON (a warning printed to
stdout) is relayed as a plain line, so nothing the agent says is lost. Once the agent exited,
`git diff` against the commit that was cloned says which files it changed.
"""

import codecs
import collections
import json
import os
import stat
import subprocess
from typing import Any, Callable, Deque, Dict, List, Optional

from .agent_events import translator_for
from .privileges import AgentIdentity

#: A JSON event line may be far longer than a text line (a file the agent read); past this
#: it is not kept whole: the transcript says so and the line is relayed as text instead.
MAX_EVENT_LINE_BYTES = 8 * 1024 * 1024
#: The raw transcript's cap: past it, lines are counted, not kept.
MAX_TRANSCRIPT_BYTES = 32 * 1024 * 1024
#: The transcript goes to the server in parts under its 1 MiB body limit.
TRANSCRIPT_PART_BYTES = 512 * 1024
STDERR_TAIL_LINES = 20
GIT_TIMEOUT_S = 30.0
MAX_FILES_LISTED = 200


def pump_json_lines(stream: Any, on_line: Callable[[str], None], max_bytes: int = MAX_EVENT_LINE_BYTES) -> None:
    """Every line of `stream` whole (UTF-8, bad bytes replaced), up to `max_bytes` each.

    Unlike `process.pump_lines`, a long line is not cut into pieces: a piece of JSON is no
    event. A line over `max_bytes` is passed on as its first `max_bytes` (which then fails to
    parse, and is relayed as text), the rest dropped.
    """
    readline = stream.readline
    while True:
        chunk = readline(max_bytes)
        if not chunk:
            return
        if not chunk.endswith(b"\n"):
            while True:  # the rest of an over-long line
                rest = readline(max_bytes)
                if not rest or rest.endswith(b"\n"):
                    break
        text = codecs.decode(chunk.rstrip(b"\r\n"), "utf-8", "replace")
        on_line(text)


def redact_event(event: Any, redact: Callable[[str], str]) -> Any:
    """`event` with `redact` applied to every string in it, keys excepted."""
    if isinstance(event, str):
        return redact(event)
    if isinstance(event, dict):
        return {key: redact_event(value, redact) for key, value in event.items()}
    if isinstance(event, list):
        return [redact_event(item, redact) for item in event]
    return event


class Transcript(object):
    """The agent's raw JSON lines, redacted, up to MAX_TRANSCRIPT_BYTES."""

    def __init__(self, limit: int = MAX_TRANSCRIPT_BYTES) -> None:
        self.lines = []  # type: List[str]
        self.size = 0
        self.dropped = 0
        self.limit = limit

    def add(self, line: str) -> None:
        cost = len(line.encode("utf-8")) + 1
        if self.size + cost > self.limit:
            self.dropped += 1
            return
        self.lines.append(line)
        self.size += cost

    def parts(self, part_bytes: int = TRANSCRIPT_PART_BYTES) -> List[List[str]]:
        """The lines in parts of about `part_bytes` each (a longer line is a part of its own)."""
        lines = list(self.lines)
        if self.dropped:
            lines.append(json.dumps({"opendispatch": "transcript_cut", "droppedLines": self.dropped}))
        parts = []  # type: List[List[str]]
        current = []  # type: List[str]
        size = 0
        for line in lines:
            cost = len(line.encode("utf-8")) + 3
            if current and size + cost > part_bytes:
                parts.append(current)
                current, size = [], 0
            current.append(line)
            size += cost
        if current:
            parts.append(current)
        return parts


class StructuredOutput(object):
    """One run of a structured agent: stdout lines in; events, plain lines and the transcript out."""

    def __init__(
        self,
        agent: str,
        workspace: str,
        redact: Callable[[str], str],
        on_event: Callable[[Dict[str, Any]], None],
        on_line: Callable[[str], None],
    ) -> None:
        translator = translator_for(agent, workspace=workspace)
        if translator is None:
            raise ValueError(f"{agent} has no structured output")
        self.translator = translator
        self.redact = redact
        self.on_event = on_event
        self.on_line = on_line
        self.transcript = Transcript()
        self.stderr_tail = collections.deque(maxlen=STDERR_TAIL_LINES)  # type: Deque[str]

    def stdout_line(self, line: str) -> None:
        if not line.strip():
            return
        redacted = self.redact(line)
        self.transcript.add(redacted)
        events = self.translator.feed(line)
        if not events and not line.lstrip().startswith("{"):
            self.on_line(redacted)  # not an event: a warning or a message printed as text
        for event in events:
            self.on_event(redact_event(event, self.redact))

    def stderr_line(self, line: str) -> None:
        self.stderr_tail.append(line)
        self.on_line(self.redact(line))

    def finish(self, exit_code: int) -> None:
        """The agent exited: its result, when it never reported one (a crash, a kill)."""
        for event in self.translator.finish(exit_code, list(self.stderr_tail)):
            self.on_event(redact_event(event, self.redact))

    @property
    def session_id(self) -> Optional[str]:
        return self.translator.session_id


def head_commit(workdir: str) -> Optional[str]:
    """The commit that was cloned (right after the clone, before the agent touched anything)."""
    try:
        done = subprocess.run(
            ["git", "-C", workdir, "rev-parse", "--verify", "HEAD"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.decode("ascii", "replace").strip()
    return commit if done.returncode == 0 and commit else None


def files_changed(workdir: str, base: str, identity: AgentIdentity, env: Dict[str, str]) -> Optional[Dict[str, Any]]:
    """The `files_changed` event: what the agent changed against `base`, committed or not.

    git runs as the agent's user: the workspace (and its `.git/config`, which can name programs
    for git to run) is the agent's, so the sidecar's root must not run git there.
    """
    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(
                ["git", "-C", workdir, "-c", "core.quotepath=off", *args],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                timeout=GIT_TIMEOUT_S, check=False, env=env,
                user=identity.uid, group=identity.gid, extra_groups=identity.extra_groups(),
            )
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None

    numstat = git("diff", "--numstat", base)
    untracked = git("ls-files", "--others", "--exclude-standard")
    if numstat is None or untracked is None:
        return None
    files = []  # type: List[Dict[str, Any]]
    for row in numstat.splitlines():
        parts = row.split("\t", 2)
        if len(parts) == 3:
            added, removed, path = parts
            files.append({"path": path, "added": _count(added), "removed": _count(removed)})
    for path in untracked.splitlines():
        if path and not os.path.basename(path).startswith(".opendispatch"):
            files.append({"path": path, "added": _line_count(os.path.join(workdir, path)), "removed": 0})
    if not files:
        return None
    added = sum(item["added"] for item in files)
    removed = sum(item["removed"] for item in files)
    summary = f"{len(files)} file{'s' if len(files) != 1 else ''} changed"
    summary += f", {added} insertion{'s' if added != 1 else ''}(+), {removed} deletion{'s' if removed != 1 else ''}(-)"
    return {"v": 1, "type": "files_changed", "files": files[:MAX_FILES_LISTED], "summary": summary}


def _count(text: str) -> int:
    return int(text) if text.isdigit() else 0  # "-" for a binary file


def _line_count(path: str) -> int:
    """Lines of a plain file the agent made; links and anything else count 0 (we are root here)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(65536), b""))
