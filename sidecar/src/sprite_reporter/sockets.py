"""A broker of the sidecar: a private Unix socket, answered in threads, and its helper program.

Two brokers use it: the git credential broker (credentials.py) and the approval broker
(approvals.py). Each lives in a folder of the workspace that only root may write,
`.od-git/` (a longer workspace path than a socket address holds gets a temporary folder):
- its socket in a subfolder of it, 0700, the socket 0600, both the agent user's when the agent
  runs as one (root, the sidecar, reaches it anyway), so the agent's programs can ask;
- its helper program next to it (a module of this package copied as it is, root's, 0755),
  run with a python3 the agent's user can run.
"""

import os
import pkgutil
import shutil
import socket
import stat
import sys
import tempfile
import threading
from typing import Callable, Optional, Tuple

from .output import say
from .privileges import SIDECAR_FOLDER, AgentIdentity

FOLDER = SIDECAR_FOLDER  # in the workspace
SOCKET_NAME = "socket"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes: a longer workspace gets a folder in the temp dir
BACKLOG = 16


def broker_folder(workspace: str, sockets: str) -> str:
    """The folder for a broker's helper (its socket in `sockets/` under it), made root's and 0755."""
    folder = os.path.join(workspace, FOLDER)
    if len(os.path.join(folder, sockets, SOCKET_NAME).encode()) > MAX_SOCKET_PATH:
        folder = tempfile.mkdtemp(prefix="od-git-")
    private_folder(folder, 0o755)
    return folder


def open_socket(folder: str, sockets: str, owner: AgentIdentity) -> Tuple[socket.socket, str]:
    """A listening socket in `folder/sockets/` (made anew, 0700), for the sidecar and `owner`."""
    where = os.path.join(folder, sockets)
    if os.path.isdir(where) and not os.path.islink(where):
        shutil.rmtree(where)
    elif os.path.lexists(where):
        os.unlink(where)
    os.mkdir(where, 0o700)
    os.chmod(where, 0o700)
    socket_path = os.path.join(where, SOCKET_NAME)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(socket_path)
        os.chmod(socket_path, 0o600)
        if owner.uid is not None and owner.gid is not None:
            os.chown(socket_path, owner.uid, owner.gid)
            os.chown(where, owner.uid, owner.gid)
        listener.listen(BACKLOG)
    except BaseException:
        listener.close()
        raise
    return listener, socket_path


class SocketService:
    """Answers a listening socket: one thread per connection, at most `at_once` at a time."""

    def __init__(self, name: str, at_once: int) -> None:
        self.name = name
        self._listener = None  # type: Optional[socket.socket]
        self._answering = threading.BoundedSemaphore(at_once)
        self._answer = None  # type: Optional[Callable[[socket.socket], None]]

    @property
    def started(self) -> bool:
        return self._listener is not None

    def start(self, listener: socket.socket, answer: Callable[[socket.socket], None]) -> None:
        self._listener = listener
        self._answer = answer
        threading.Thread(target=self._serve, args=(listener,), name=self.name, daemon=True).start()

    def close(self) -> None:
        """Stop answering (the thread ends); a sidecar never needs to, its tests do."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
            except OSError:
                pass
            listener.close()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            self._answering.acquire()
            try:
                conn, _ = listener.accept()
            except OSError:
                self._answering.release()
                return
            threading.Thread(target=self._one, args=(conn,), name=self.name + "-answer", daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        answer = self._answer
        try:
            with conn:
                if answer is not None:
                    answer(conn)
        except OSError:
            pass
        except Exception as exc:  # a bug of ours must not end the broker: the helper just gets nothing
            say(f"the {self.name} broker failed: {type(exc).__name__}")
        finally:
            self._answering.release()


def interpreter_for(owner: AgentIdentity) -> str:
    """The python3 to run a helper with: ours, unless the agent's user cannot run it.

    A sidecar started from a private folder (a virtualenv under /root) falls back to a
    python3 on PATH that the user can reach; a sprite's own /usr/bin/python3 always is.
    """
    ours = os.path.abspath(sys.executable or shutil.which("python3") or "/usr/bin/python3")
    if owner.uid is None:
        return ours
    candidates = [ours, os.path.realpath(ours), shutil.which("python3"), "/usr/bin/python3"]
    for candidate in candidates:
        if candidate and os.path.isabs(candidate) and _runnable_by(candidate, owner):
            return candidate
    return ours


def _runnable_by(program: str, owner: AgentIdentity) -> bool:
    real = os.path.realpath(program)  # a virtualenv's python is a link: where it leads must be open too
    if owner.cannot_reach(os.path.dirname(program)) is not None or owner.cannot_reach(os.path.dirname(real)):
        return False
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IXOTH)


def private_folder(path: str, mode: int) -> None:
    """`path` as a real folder of ours with `mode` (a link or file there is replaced)."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    os.makedirs(path, exist_ok=True)
    if os.stat(path).st_uid != os.geteuid():
        os.chown(path, os.geteuid(), os.getegid())
    os.chmod(path, mode)


def write_helper(path: str, python: str, module: str) -> None:
    """A helper program (`module` of this package), ours and 0755, replaced atomically."""
    source = pkgutil.get_data(__package__ or "sprite_reporter", module)
    if source is None:
        raise OSError(f"{module} is missing from {__package__}")
    temporary = path + ".tmp"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
    with os.fdopen(fd, "wb") as out:
        out.write(f"#!{python}\n".encode() + source)
    os.chmod(temporary, 0o755)
    os.replace(temporary, path)


class OpenedBroker:
    """What `open_broker` set up: where, the listening socket, the helper program and the
    interpreter it runs with."""

    def __init__(self, folder: str, listener: socket.socket, socket_path: str, program: str, python: str) -> None:
        self.folder = folder
        self.listener = listener
        self.socket_path = socket_path
        self.program = program
        self.python = python


def open_broker(workspace: str, sockets: str, owner: AgentIdentity, program_name: str, module: str) -> OpenedBroker:
    """A broker's folder, its socket for the sidecar and `owner`, and its helper program
    (`module` of this package, written as `program_name`); the socket is closed on failure."""
    folder = broker_folder(workspace, sockets)
    listener, socket_path = open_socket(folder, sockets, owner)
    try:
        program = os.path.join(folder, program_name)
        python = interpreter_for(owner)
        write_helper(program, python, module)
    except BaseException:
        listener.close()
        raise
    return OpenedBroker(folder, listener, socket_path, program, python)
