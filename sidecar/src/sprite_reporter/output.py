"""The sidecar's own two outputs: diagnostics on stderr, relayed lines echoed on stdout.

Both swallow write errors: a closed stdout or stderr must never stop a job.
"""

import sys
import threading

from . import PROG



_stdout_lock = threading.Lock()


def say(message: str) -> None:
    """A diagnostic of the sidecar itself: stderr, one line, never a secret."""
    try:
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def echo(text: str) -> None:
    """One relayed line, echoed to our own stdout so `fly logs` has the full output too."""
    with _stdout_lock:
        try:
            sys.stdout.buffer.write(text.encode("utf-8", "replace") + b"\n")
            sys.stdout.buffer.flush()
        except (OSError, ValueError):
            pass
