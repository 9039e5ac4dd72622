"""The job database's schema and its migrations: numbered steps, kept in `PRAGMA user_version`.

Each version adds what a feature needed; `migrate` applies, in one transaction, every step
above the file's version (a new file takes them all), and refuses a file written by a newer
build. Version 3 rewrote the output tables (a row per batch); its step converts the data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ...domain.errors import ConfigError
from .codec import LINES
from .writer import transaction

SCHEMA_VERSION = 7

# Version 1: jobs, and output as a row per batch and a row per line (see version 3).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    user_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (user_id, created_at);

CREATE TABLE IF NOT EXISTS batches (
    batch_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    seq INTEGER,
    line_count INTEGER NOT NULL,
    UNIQUE (job_id, seq)
);

CREATE TABLE IF NOT EXISTS output_lines (
    job_id TEXT NOT NULL,
    unsequenced INTEGER NOT NULL,
    seq_key INTEGER NOT NULL,
    batch_id INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job_id, unsequenced, seq_key, batch_id, line_no)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""

# Version 2: sessions (one row per session, the value as JSON like jobs).
_SESSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_state ON sessions (state, created_at);
"""

# Version 3: a batch's lines in one row, as a JSON array. Output order: seq'd batches by
# seq, then seq-less (old sidecar) batches by arrival; `unsequenced` and `seq_key` encode
# that order, so the key serves reads, tails and the duplicate check. Why one row: a
# record from a sidecar was a batch row, a row per line and two B-tree pages of its job's
# (the rows and the (job, seq) index) rewritten per commit; now it is one row and one page
# (docs/performance.md, round 7).
_OUTPUT_BATCHES_SCHEMA = """
CREATE TABLE IF NOT EXISTS output_batches (
    job_id TEXT NOT NULL,
    unsequenced INTEGER NOT NULL,
    seq_key INTEGER NOT NULL,
    line_count INTEGER NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (job_id, unsequenced, seq_key)
) WITHOUT ROWID
"""


def _batches_in_one_row(db: sqlite3.Connection) -> None:
    """Version 2 -> 3: each batch and its lines become one row; the two old tables go.

    A seq-less batch keeps its old global `batch_id` as its `seq_key`: arrival order
    within the job is kept, and later ones are numbered after it.
    """
    db.execute(_OUTPUT_BATCHES_SCHEMA)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"batches", "output_lines"} <= tables:
        return  # a file that never had output
    db.execute(
        "INSERT INTO output_batches (job_id, unsequenced, seq_key, line_count, lines)"
        " SELECT job_id, seq IS NULL, COALESCE(seq, batch_id), line_count, '[]' FROM batches"
    )
    lines: list[str] = []
    key: tuple[str, int, int] | None = None
    rows = db.execute(
        "SELECT o.job_id, o.unsequenced, o.seq_key, o.batch_id, o.text FROM output_lines o"
        " ORDER BY o.job_id, o.unsequenced, o.seq_key, o.batch_id, o.line_no"
    )
    for job_id, unsequenced, seq_key, batch_id, text in rows:
        row_key = (job_id, unsequenced, batch_id if unsequenced else seq_key)
        if row_key != key:
            _set_lines(db, key, lines)
            key, lines = row_key, []
        lines.append(text)
    _set_lines(db, key, lines)
    db.execute("DROP TABLE output_lines")
    db.execute("DROP TABLE batches")


def _set_lines(db: sqlite3.Connection, key: tuple[str, int, int] | None, lines: list[str]) -> None:
    if key is not None:
        db.execute(
            "UPDATE output_batches SET lines = ? WHERE job_id = ? AND unsequenced = ? AND seq_key = ?",
            (LINES.encode(lines), *key),
        )


# Version 4: each job's raw agent transcript (the CLI's JSON lines), in parts as uploaded.
_TRANSCRIPTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    job_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (job_id, part)
) WITHOUT ROWID
"""

# Version 5: copies of small artifact files, kept after the sprite's workspace is deleted.
_ARTIFACT_FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifact_files (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
) WITHOUT ROWID
"""

# Version 6: each channel's defaults (`/od-config`), as the JSON of a ChannelSettings.
_CHANNEL_SETTINGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS channel_settings (
    channel TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID
"""

# Version 7: approval requests (approvals.py), as the JSON of an ApprovalRequest.
_APPROVALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    asked_at REAL NOT NULL,
    state TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_by_job ON approvals (job_id, asked_at)
"""

_MIGRATIONS: dict[int, str | Callable[[sqlite3.Connection], None]] = {
    1: _SCHEMA,
    2: _SESSIONS_SCHEMA,
    3: _batches_in_one_row,
    4: _TRANSCRIPTS_SCHEMA,
    5: _ARTIFACT_FILES_SCHEMA,
    6: _CHANNEL_SETTINGS_SCHEMA,
    7: _APPROVALS_SCHEMA,
}


def migrate(db: sqlite3.Connection) -> None:
    """Apply every step above the file's `user_version`, in one transaction (`ConfigError`
    for a file of a newer build)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"The job database was written by a newer Open-Dispatch (schema {version}, "
            f"this build knows {SCHEMA_VERSION}); upgrade, or point the store at another file."
        )
    if version < SCHEMA_VERSION:
        with transaction(db):
            for step in range(version + 1, SCHEMA_VERSION + 1):  # a v1 file gains the sessions table
                migration = _MIGRATIONS[step]
                if callable(migration):
                    migration(db)
                    continue
                for statement in migration.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
