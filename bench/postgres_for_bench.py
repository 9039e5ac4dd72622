"""PostgreSQL for `bench/relay --db`: a throwaway local server, a fresh schema per run, and the
CPU the server's processes use. Not a test.

`--db postgres-temp` starts a server of its own for the whole bench run, as the tests do
(`tests/postgres_server.py`, whose helpers this imports: Debian's `postgresql` programs, initdb
into a temporary folder, a Unix socket in that folder only, run as the `postgres` user when we
are root, SIGQUIT by the kernel if the bench dies), and stops and deletes it at the end. One
difference: the tests' server runs with fsync, synchronous_commit and full_page_writes off for
speed; this one keeps PostgreSQL's stock durability (a commit returns once its WAL is flushed
to disk, as on a managed database) unless `--pg-option KEY=VALUE` says otherwise, e.g.
`--pg-option synchronous_commit=off`, the nearest thing to the SQLite store's
`synchronous=NORMAL` (commits reach the OS, the WAL is flushed in the background).

Each bench run (one N, one batching mode) gets a new schema, `bench_<pid>_<k>`, in the
database the URL names, and its connections see it first (`options=-csearch_path=...` added
to the URL, as the tests' `postgres_url` does); the store's migrations create its tables there,
and the schema is dropped after the run. So runs never see each other's jobs, and a database
of your own is left as it was.
"""

from __future__ import annotations

import importlib
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

#: The database a temporary server's schemas live in.
DATABASE = "opendispatch_bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_schemas = itertools.count(1)


def _tests_postgres() -> ModuleType:
    """tests/postgres_server.py, imported only to start a server (it imports pytest, which the
    bench's server process, whose memory is measured, should not carry)."""
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    return importlib.import_module("postgres_server")


def start_temp_server(settings: Sequence[str]) -> Any:
    """A running throwaway server, or SystemExit saying why there is none."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise SystemExit("--db postgres-temp needs psycopg: .venv/bin/python -m pip install -q -e '.[postgres]'") from None
    helpers = _tests_postgres()
    bin_dir = helpers.find_bin_dir()
    if bin_dir is None:
        raise SystemExit(f"--db postgres-temp: {helpers.HOW_TO_RUN}")
    helpers._remove_stale_folders()  # of killed runs, tests' and bench's alike (same prefix)
    root = Path(tempfile.mkdtemp(prefix=f"{helpers.FOLDER_PREFIX}bench-"))
    # The tests' server (tests/postgres_server.py), with stock durability and `--pg-option`s.
    server = helpers.PostgresServer(root, bin_dir, helpers._unprivileged_user(), settings=tuple(settings), database=DATABASE)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        raise SystemExit(f"--db postgres-temp: could not start PostgreSQL from {bin_dir}: {exc}") from None
    return server


def schema_url(url: str, schema: str) -> str:
    """`url` with its connections' search_path set to `schema` (where the store creates its tables)."""
    base, hashmark, fragment = url.partition("#")
    query = base.partition("?")[2]
    if any(part.split("=", 1)[0] == "options" for part in query.split("&")):
        raise SystemExit("--db: the URL sets `options` already; the bench sets search_path through it, so leave it out")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}', safe='')}{hashmark}{fragment}"


def create_schema(url: str) -> str:
    """A new, empty schema in the database `url` names; its name."""
    import psycopg
    from psycopg import sql

    name = f"bench_{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return name


def drop_schema(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def describe(url: str) -> str:
    """The server's version and the settings that decide what a commit costs."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        version = db.execute("SHOW server_version").fetchone()
        settings = [
            f"{name}={db.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers")
        ]
    return f"PostgreSQL {version[0] if version else '?'} ({', '.join(settings)})"


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree_cpu_seconds(pid: int) -> float:
    """CPU (user + system) of the postmaster `pid` and of every process it started, exited ones
    included (a reaped child's time is in its parent's cutime/cstime): backends, WAL writer,
    checkpointer, autovacuum. What the database did for the bench, as far as this host sees."""
    fields = _stat(pid)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == pid:
            continue
        try:
            child = _stat(int(entry.name))
        except OSError:
            continue  # gone meanwhile: its time is in the postmaster's cutime now
        if int(child[1]) == pid:  # ppid
            total += int(child[11]) + int(child[12])
    return total / CLOCK_TICKS
