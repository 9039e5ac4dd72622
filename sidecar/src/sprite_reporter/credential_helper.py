"""git-credential-opendispatch: git's credential helper for the job's repository server.

The sidecar copies this file, as it is, next to its credential broker's socket and names it
in git's configuration (`credential.<server>.helper`); it is never imported there. git runs
it as `<python> -I <this file> <socket> get|store|erase` (gitcredentials(7)). For `get` it
passes git's request (protocol, host, path) to the broker over the Unix socket and prints
the broker's `username=` and `password=` lines for git; `store` and `erase` do nothing.

When the broker has nothing (no job is running, the dispatcher refused or is unreachable,
the socket is gone) it prints nothing and exits 0: git goes on to its own "Authentication
failed". The broker's reason, when it gives one, goes to stderr, where git shows it. The
token is written to stdout (to git) and nowhere else.

Standard library only, python3 >= 3.9, no import of the sidecar: it runs on its own.
"""

import socket
import sys
from typing import List

TIMEOUT_S = 60.0  # the broker may have to ask the dispatcher (with its own retries) first
MAX_ANSWER_BYTES = 64 * 1024
ASKED = ("protocol", "host", "path")  # what the broker needs of git's request
ANSWERED = ("username", "password")


def read_request(stream: "object") -> bytes:
    """git's attribute lines, up to the blank line that ends them; only the ones the broker needs."""
    kept = []  # type: List[bytes]
    readline = stream.readline  # type: ignore[attr-defined]
    while True:
        line = readline(MAX_ANSWER_BYTES)
        if not line or not line.strip():
            break
        name = line.split(b"=", 1)[0].decode("ascii", "replace")
        if name in ASKED:
            kept.append(line.rstrip(b"\r\n") + b"\n")
    return b"".join(kept) + b"\n"


def ask_broker(socket_path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(TIMEOUT_S)
        conn.connect(socket_path)
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        chunks = []  # type: List[bytes]
        size = 0
        while size < MAX_ANSWER_BYTES:
            chunk = conn.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def main(argv: List[str]) -> int:
    if len(argv) < 3:
        sys.stderr.write("usage: git-credential-opendispatch SOCKET get|store|erase\n")
        return 0
    socket_path, operation = argv[1], argv[2]
    request = read_request(sys.stdin.buffer)
    if operation != "get":
        return 0
    try:
        answer = ask_broker(socket_path, request).decode("utf-8", "replace")
    except OSError:
        return 0  # no broker: git asks no one else and fails with its own message
    fields = {}
    for line in answer.splitlines():
        name, sep, value = line.partition("=")
        if sep and "\x00" not in value:
            fields[name] = value
    if all(fields.get(name) for name in ANSWERED):
        sys.stdout.write("".join(f"{name}={fields[name]}\n" for name in ANSWERED))
        sys.stdout.flush()
    elif fields.get("error"):
        sys.stderr.write(f"opendispatch: {fields['error']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
