"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, initdb into a
temporary folder, listening on a Unix socket in that folder only (no TCP), fsync off; stopped
and deleted at the end of the session.

Fixtures (registered in tests/conftest.py):
- `postgres_server` (session): the running server, or why none could be started;
- `postgres_url` (per test): a `postgresql://` URL whose connections work in a fresh, empty
  schema (dropped after the test). Without a server the test fails under CI=true and is skipped
  elsewhere, with the command that installs one.

Under CI=true as root, the `postgresql` package is installed with apt-get when missing (as
the `bubblewrap` fixture does). PostgreSQL refuses to run as root, so as root the server runs
as the `postgres` user when there is one (the package makes it), else as `nobody`. The server
is a child of pytest that the kernel stops when pytest ends, even when a killed pytest skips
the teardown; a later run deletes such a run's folder.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

INSTALL_COMMAND = "sudo apt-get install -y postgresql"
HOW_TO_RUN = (
    f"PostgreSQL tests need a PostgreSQL server's programs (initdb, postgres); install them with `{INSTALL_COMMAND}` "
    "and run the tests again (the tests start and stop a server of their own; nothing to set up). "
    "Under CI=true as root they are installed automatically."
)
START_TIMEOUT_S = 60
FOLDER_PREFIX = "opendispatch-pg-"
STALE_AFTER_S = 3600
PR_SET_PDEATHSIG = 1
#: The database the tests' schemas live in.
DATABASE = "opendispatch_tests"


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parts[-3])) or (0,)


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and postgres, else the folder of
    an initdb on PATH (with postgres beside it)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version, reverse=True)
    for initdb in found:
        if (initdb.parent / "postgres").is_file():
            return initdb.parent
    on_path = shutil.which("initdb")
    if on_path is not None:
        folder = Path(on_path).resolve().parent
        if (folder / "postgres").is_file():
            return folder
    return None


def _install_under_ci() -> str:
    """Under CI=true, as root with apt-get: install the `postgresql` package. What went wrong, or ""."""
    if not _under_ci() or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return ""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        return f"`{' '.join(install)}` exited {done.returncode}: {done.stderr.strip()[-2000:]}"
    return ""


def _die_with_parent() -> None:
    """In the server's process before it starts (after its user is set, which would clear it):
    the kernel sends it SIGQUIT, PostgreSQL's immediate shutdown, when this process ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def _remove_stale_folders() -> None:
    """Folders of earlier runs whose server is gone (a killed pytest cannot delete its own)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            if time.time() - folder.stat().st_mtime < STALE_AFTER_S:
                continue  # maybe another run, still starting
            pid_file = folder / "data" / "postmaster.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, 0)
                continue  # its server still runs
        except ProcessLookupError:
            pass
        except (OSError, ValueError, IndexError):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs the server when we are root: `postgres` (Debian's package makes it), else `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and there is neither a `postgres` nor a `nobody` user to run PostgreSQL as")


#: The tests' server trades durability for speed; `bench/relay --db postgres-temp` passes its own.
FOR_TESTS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


@attrs.define
class PostgresServer:
    root: Path
    bin_dir: Path
    run_as: pwd.struct_passwd | None
    #: Each given to `postgres -c` (besides the socket-only listening and max_connections).
    settings: tuple[str, ...] = FOR_TESTS
    #: The database created at start-up, where the schemas live.
    database: str = DATABASE
    #: Seconds from initdb to accepting connections (reported by the tests that time it).
    started_in_s: float = 0.0
    _names: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))
    _process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def _as_server_user(self) -> dict[str, object]:
        """subprocess arguments that run a program as the server's user (nothing when not root)."""
        if self.run_as is None:
            return {}
        return {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}

    def _log_tail(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def start(self) -> None:
        """initdb, then the postmaster as a child of this process that dies with it (however
        pytest ends: a `timeout` or Ctrl-C that skips the fixture's teardown leaves no server)."""
        import psycopg

        began = time.monotonic()
        self.socket_dir.mkdir()
        if self.run_as is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)
        initdb = [
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ]
        done = subprocess.run(
            initdb, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False, cwd=self.root,
            **self._as_server_user(),  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        server = [
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir),
            "-c", "listen_addresses=", "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "max_connections=200",
            *[item for setting in self.settings for item in ("-c", setting)],
        ]
        with open(self.root / "server.log", "ab") as log:
            self._process = subprocess.Popen(
                server, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root,
                preexec_fn=_die_with_parent, **self._as_server_user(),  # type: ignore[call-overload]
            )
        # Ready when it takes a connection (as `pg_ctl start -w` polls).
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.url(), autocommit=True, connect_timeout=2) as admin:
                    admin.execute(f'CREATE DATABASE "{self.database}" TEMPLATE template0')  # type: ignore[arg-type]
                break
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start (exit status {self._process.poll()}):\n{self._log_tail()}") from None
                time.sleep(0.02)
        self.started_in_s = time.monotonic() - began

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # immediate shutdown: it is thrown away
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(self.database), autocommit=True) as admin:
            admin.execute(statement)  # type: ignore[arg-type]

    def create_schema(self) -> str:
        """A new, empty schema in the tests' database; its name. (A schema, not a database:
        CREATE DATABASE costs ~125 ms here, CREATE SCHEMA ~1 ms.)"""
        name = f"test_{next(self._names)}"
        self._admin(f'CREATE SCHEMA "{name}"')
        return name

    def drop_schema(self, name: str) -> None:
        self._admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def schema_url(self, schema: str) -> str:
        """A URL whose connections see `schema` first (and create their tables there)."""
        return f"{self.url(self.database)}&options=-csearch_path%3D{schema}"


def start_server() -> PostgresServer | str:
    """A running server, or why there is none (in words that say how to get one)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: .venv/bin/python -m pip install -q -e '.[test]'"
    bin_dir = find_bin_dir()
    if bin_dir is None:
        problem = _install_under_ci()
        bin_dir = find_bin_dir()
        if bin_dir is None:
            return f"{HOW_TO_RUN} {problem}".strip()
    _remove_stale_folders()
    server = PostgresServer(Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX)), bin_dir, _unprivileged_user())
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        return f"could not start PostgreSQL from {bin_dir}: {exc}"
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | str]:
    server = start_server()
    try:
        yield server
    finally:
        if isinstance(server, PostgresServer):
            server.stop()


def require(server: PostgresServer | str) -> PostgresServer:
    """The server; without one, fail under CI=true (never a silent skip there), else skip."""
    if isinstance(server, PostgresServer):
        return server
    if _under_ci():
        pytest.fail(f"CI=true and no PostgreSQL server: {server}", pytrace=False)
    pytest.skip(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer | str) -> Iterator[str]:
    """A URL to a fresh, empty schema for this test (its connections' search_path), dropped after it."""
    server = require(postgres_server)
    name = server.create_schema()
    try:
        yield server.schema_url(name)
    finally:
        server.drop_schema(name)
