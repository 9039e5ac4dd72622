"""A git server over HTTP on loopback that wants a password: `git http-backend` behind Basic auth.

For tests of credentials that must really reach git: a clone, fetch or push succeeds only if
git sent a user name and password `check(username, password)` accepts; anything else gets
`401` with `WWW-Authenticate: Basic`, as GitHub answers. It runs in a thread, so it works the
same under trio, asyncio or plain code:

    with GitHttpServer(tmp_path / "git", check=lambda user, password: password == token) as server:
        server.add_repo("acme/api", {"README.md": "hi\\n"})
        url = server.repo_url("acme/api")            # http://127.0.0.1:PORT/acme/api.git
        ...                                          # server.requests: what git asked, and as whom
        server.branches("acme/api")                  # {"main": "<sha>", ...} as stored

Smart HTTP only (clone, shallow clone, fetch, push: receive-pack is on for authenticated
requests, as http-backend does when REMOTE_USER is set). Standard library and the `git`
program only.
"""

from __future__ import annotations

import base64
import binascii
import os
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import attrs

Check = Callable[[str, str], bool]
REALM = "opendispatch-test-git"


@attrs.frozen
class GitRequest:
    """One request git made: what for, who it said it was, and whether it was let in."""

    method: str
    path: str
    username: str | None
    password: str | None = attrs.field(repr=False)
    allowed: bool


class GitHttpServer:
    """`git http-backend` for the bare repositories under `root`, behind `check`."""

    def __init__(self, root: Path, check: Check, host: str = "127.0.0.1") -> None:
        self.root = root
        self.check = check
        self.requests: list[GitRequest] = []
        root.mkdir(parents=True, exist_ok=True)
        server = ThreadingHTTPServer((host, 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread: threading.Thread | None = None

    # ---- lifetime ----

    def start(self) -> GitHttpServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="git-http", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # ---- where and what ----

    @property
    def url(self) -> str:
        """The server's base URL (what OPENDISPATCH_GIT_CREDENTIALS names): http://127.0.0.1:PORT."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def repo_url(self, slug: str) -> str:
        return f"{self.url}/{slug}.git"

    def add_repo(self, slug: str, files: dict[str, str], branch: str = "main") -> Path:
        """A bare repository `slug`.git with one commit of `files` on `branch`."""
        bare = self.root / f"{slug}.git"
        work = self.root / ".work" / slug
        work.mkdir(parents=True)
        git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-C", str(work)]
        subprocess.run(["git", "init", "-q", "-b", branch, str(work)], check=True, env=_quiet_git_env())
        for name, content in files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(content)
        subprocess.run([*git, "add", "."], check=True, env=_quiet_git_env())
        subprocess.run([*git, "commit", "-q", "-m", "initial"], check=True, env=_quiet_git_env())
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, env=_quiet_git_env())
        return bare

    def branches(self, slug: str) -> dict[str, str]:
        """{branch: commit} of the stored repository (to see what a push did)."""
        done = subprocess.run(
            ["git", "-C", str(self.root / f"{slug}.git"), "for-each-ref", "--format=%(refname:short) %(objectname)",
             "refs/heads"],
            check=True, capture_output=True, text=True, env=_quiet_git_env(),
        )
        return dict(line.split(" ", 1) for line in done.stdout.splitlines() if line)

    def allowed_passwords(self) -> list[str]:
        """Every password a let-in request carried, in order, without repeats."""
        seen: list[str] = []
        for request in self.requests:
            if request.allowed and request.password is not None and request.password not in seen:
                seen.append(request.password)
        return seen


def _quiet_git_env() -> dict[str, str]:
    """git as a test runs it: no user or system configuration."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }


def _credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _handler_for(server: GitHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            body = self._body()
            path, _, query = self.path.partition("?")
            given = _credentials(self.headers.get("Authorization"))
            allowed = given is not None and server.check(*given)
            server.requests.append(
                GitRequest(self.command, path, given[0] if given else None, given[1] if given else None, allowed)
            )
            if not allowed:
                self._send(401, {"WWW-Authenticate": f'Basic realm="{REALM}"', "Content-Type": "text/plain"},
                           b"authentication required\n")
                return
            assert given is not None
            env = {
                **_quiet_git_env(),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": urllib.parse.unquote(path),
                "QUERY_STRING": query,
                "REMOTE_USER": given[0],
                "REMOTE_ADDR": self.client_address[0],
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
            }
            for header, name in (("Git-Protocol", "GIT_PROTOCOL"), ("Content-Encoding", "HTTP_CONTENT_ENCODING")):
                if self.headers.get(header):
                    env[name] = self.headers[header]
            done = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, check=False)
            head, sep, payload = done.stdout.partition(b"\r\n\r\n")
            if not sep:
                head, sep, payload = done.stdout.partition(b"\n\n")
            status, headers = 200, {}
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers[name.strip()] = value.strip()
            self._send(status, headers, payload)

        def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
