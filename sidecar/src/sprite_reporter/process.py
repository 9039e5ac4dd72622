"""Running a child: reading its output as lines, cancelling it, and the exit codes we report."""

import codecs
import os
import signal
import time
from typing import Callable, Optional

EXIT_INTERNAL = 1
EXIT_CONFIG = 2
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_INSTALLED = 127
EXIT_CANCELLED = 143  # 128 + SIGTERM, what a shell reports for a terminated process

# A line longer than this is relayed as several lines: a batch then always fits in the
# server's 1 MiB body limit, even when every character needs a JSON escape.
MAX_LINE_BYTES = 32 * 1024

KILL_GRACE_S = 3.0  # SIGTERM to the agent, then SIGKILL after this


def pump_lines(stream: "object", on_line: Callable[[str], None]) -> None:
    """Every line of `stream`, decoded as UTF-8 (bad bytes replaced), newline stripped.

    Empty lines are real lines; a last line without a newline is kept; a line longer than
    MAX_LINE_BYTES is passed on in pieces, split on character boundaries.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    continued = False
    readline = stream.readline  # type: ignore[attr-defined]
    while True:
        chunk = readline(MAX_LINE_BYTES)
        if not chunk:
            rest = decoder.decode(b"", final=True)
            if rest:
                on_line(rest)
            return
        if chunk.endswith(b"\n"):
            if continued and chunk == b"\n":
                continued = False  # the newline that ended a line we already passed on in pieces
                continue
            body = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1]
            on_line(decoder.decode(body, final=True))
            continued = False
        else:
            on_line(decoder.decode(chunk, final=False))
            continued = True



# Signals


class Cancellation:
    """SIGTERM / SIGINT: forward SIGTERM to the child's process group, remember we were asked.

    The handler only sets attributes and sends a signal (no locks), so it is safe wherever
    the main thread happens to be when it arrives.
    """

    def __init__(self) -> None:
        self.requested = False
        self.at = 0.0
        self.child_pgid = None  # type: Optional[int]
        self.killed = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: "object") -> None:
        if not self.requested:
            self.requested = True
            self.at = time.monotonic()
        self.signal_child(signal.SIGTERM)

    def signal_child(self, signum: int) -> None:
        pgid = self.child_pgid
        if pgid is None:
            return
        try:
            os.killpg(pgid, signum)
        except OSError:
            pass

    def escalate_if_due(self) -> None:
        if self.requested and not self.killed and time.monotonic() - self.at >= KILL_GRACE_S:
            self.killed = True
            self.signal_child(signal.SIGKILL)


def exit_code_of(returncode: int) -> int:
    """Shell convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode
