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
as the `postgres` user when there is one (the package makes it), else as `nobody`.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

INSTALL_COMMAND = "sudo apt-get install -y postgresql"
HOW_TO_RUN = (
    f"PostgreSQL tests need a PostgreSQL server's programs (initdb, pg_ctl); install them with `{INSTALL_COMMAND}` "
    "and run the tests again (the tests start and stop a server of their own; nothing to set up). "
    "Under CI=true as root they are installed automatically."
)
START_TIMEOUT_S = 60
#: The database the tests' schemas live in.
DATABASE = "opendispatch_tests"


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parts[-3])) or (0,)


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and pg_ctl, else the folder of an
    initdb on PATH (with pg_ctl beside it)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version, reverse=True)
    for initdb in found:
        if (initdb.parent / "pg_ctl").is_file():
            return initdb.parent
    on_path = shutil.which("initdb")
    if on_path is not None:
        folder = Path(on_path).resolve().parent
        if (folder / "pg_ctl").is_file():
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


@attrs.define
class PostgresServer:
    root: Path
    bin_dir: Path
    run_as: pwd.struct_passwd | None
    #: Seconds from initdb to accepting connections (reported by the tests that time it).
    started_in_s: float = 0.0
    _names: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def _command(self, *argv: str) -> list[str]:
        if self.run_as is None:
            return list(argv)
        if shutil.which("runuser"):
            return ["runuser", "-u", self.run_as.pw_name, "--", *argv]
        return ["setpriv", f"--reuid={self.run_as.pw_uid}", f"--regid={self.run_as.pw_gid}", "--clear-groups", *argv]

    def _run(self, *argv: str, timeout: float = START_TIMEOUT_S) -> None:
        done = subprocess.run(
            self._command(*argv), capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} exited {done.returncode}: {done.stderr.strip()[-2000:]}\n{tail}")

    def start(self) -> None:
        began = time.monotonic()
        self.socket_dir.mkdir()
        if self.run_as is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )
        options = " ".join(
            (
                "-c listen_addresses=''",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            )
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
            "-w", "-t", str(START_TIMEOUT_S), "-o", options,
        )
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{DATABASE}" TEMPLATE template0')  # type: ignore[arg-type]
        self.started_in_s = time.monotonic() - began

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(DATABASE), autocommit=True) as admin:
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
        return f"{self.url(DATABASE)}&options=-csearch_path%3D{schema}"


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
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="opendispatch-pg-")), bin_dir, _unprivileged_user())
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
