"""The first program inside a local sprite's sandbox: loopback ports to Unix sockets, then the sidecar.

Run by bubblewrap as the sandbox's pid 2 (Python >= 3.9, stdlib only; it is a file of its own
so that the sandbox needs nothing of the opendispatch package):

    python3 sandbox_init.py [--ready-fd N] [--forward PORT=SOCKET]... -- PROGRAM [ARG]...

The sandbox has a network namespace of its own, with only a loopback interface. For each
`--forward`, it listens on 127.0.0.1:PORT (and [::1]:PORT) inside the sandbox and relays each
connection to SOCKET, a Unix socket that the dispatcher serves on the host side (the webhook
server, the agents' model API when it is on loopback, the outbound HTTP proxy). Once every port
listens it writes `ready` to the ready descriptor (the dispatcher waits for it before it calls
the sprite started), then runs PROGRAM and exits with its exit code (128 + N when a signal N
ended it).

SIGTERM is the sprite's programs' business (the dispatcher sends it to every process of the
sandbox): this process waits for PROGRAM to end either way, and keeps relaying meanwhile.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
from typing import List, Optional, Tuple

CHUNK = 65536
BACKLOG = 128


def parse(argv: List[str]) -> Tuple[Optional[int], List[Tuple[int, str]], List[str]]:
    ready_fd = None  # type: Optional[int]
    forwards = []  # type: List[Tuple[int, str]]
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return ready_fd, forwards, argv[index + 1 :]
        if arg == "--ready-fd" and index + 1 < len(argv):
            ready_fd = int(argv[index + 1])
        elif arg == "--forward" and index + 1 < len(argv):
            port, _, path = argv[index + 1].partition("=")
            forwards.append((int(port), path))
        else:
            raise SystemExit(f"sandbox_init: unknown argument {arg!r}")
        index += 2
    raise SystemExit("sandbox_init: no program after --")


def listen(port: int) -> List[socket.socket]:
    """Listening sockets on 127.0.0.1:port and, where the namespace has IPv6, [::1]:port."""
    sockets = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            if family == socket.AF_INET:
                raise
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            if family == socket.AF_INET:
                raise
            continue
        sockets.append(sock)
    return sockets


def pump(source: socket.socket, target: socket.socket, done: threading.Semaphore) -> None:
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        done.release()


def relay(client: socket.socket, path: str) -> None:
    """One connection: both directions until each side has closed, then both sockets."""
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        upstream.close()
        client.close()  # the dispatcher is not serving it (restarting): the client retries
        return
    done = threading.Semaphore(0)
    threading.Thread(target=pump, args=(upstream, client, done), daemon=True).start()
    pump(client, upstream, done)
    done.acquire()
    done.acquire()
    upstream.close()
    client.close()


def accept_forever(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=relay, args=(client, path), daemon=True).start()


def main(argv: List[str]) -> int:
    ready_fd, forwards, command = parse(argv)
    try:
        for port, path in forwards:
            for listener in listen(port):
                threading.Thread(target=accept_forever, args=(listener, path), daemon=True).start()
    except OSError as exc:
        if ready_fd is not None:
            os.write(ready_fd, f"error: cannot listen on a loopback port inside the sandbox: {exc}\n".encode())
        return 70
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # PROGRAM decides; we wait for it
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        if ready_fd is not None:
            os.write(ready_fd, f"error: cannot start {command[0]!r} inside the sandbox: {exc.strerror or exc}\n".encode())
        return 127
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
