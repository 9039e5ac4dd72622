"""Opening the job database's file: its mode (owner only), the connections' settings, and
the schema brought up to date before the store uses it."""

from __future__ import annotations

import os
import sqlite3

from .schema import migrate
from .writer import BUSY_TIMEOUT_MS

#: The write connection's page cache, in KiB (SQLite's default is 2,000). A thousand jobs
#: writing at once each append to a page of their own; with the default the writer read
#: them back from the file on most commits (5 % of the server's CPU, docs/performance.md).
WRITER_CACHE_KIB = 32 * 1024


def _owner_only(path: str | os.PathLike[str]) -> None:
    """Create the database file readable by this user only, or make an existing one so.

    It holds the job-token key and every job's output: with the usual umask it was 0644, so
    any local user (or a local sprite) could read the key and forge tokens. SQLite gives its
    -wal and -shm files the database file's mode.
    """
    name = os.fspath(path)
    if name in ("", ":memory:") or name.startswith("file:"):
        return
    fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            os.chmod(name + suffix, 0o600)
        except FileNotFoundError:
            pass


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """The write connection: the file made owner-only, WAL, its settings, the schema migrated."""
    _owner_only(path)
    db = sqlite3.connect(os.fspath(path), check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def connect_another(path: str | os.PathLike[str], *, read_only: bool = True) -> sqlite3.Connection | None:
    """Another connection to the same file (for reads, or for checkpoints), or None in memory."""
    name = os.fspath(path)
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    db = sqlite3.connect(name, check_same_thread=False, isolation_level=None)
    if read_only:
        db.execute("PRAGMA query_only=ON")
    db.execute("PRAGMA busy_timeout=1000")
    return db
