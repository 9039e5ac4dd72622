"""The PostgreSQL schema, as versioned migrations run at start-up.

`migrate` brings a database to `SCHEMA_VERSION` in one transaction that first takes a
transaction-level advisory lock: dispatchers starting together against one database queue
on the lock, the first applies what is missing, the others find it applied and do nothing.
Each applied version is a row of `schema_version`. A database written by a newer build is
refused, as the SQLite store refuses a newer file.

Version 1 holds what SQLite's versions 1-7 built, in their final form:
- `jobs`: the job as JSON text (`body`, the cattrs JSON the SQLite store writes too) and the
  columns `recent()` filters and orders by. `position` (an identity) breaks `created_at` ties
  newest-added first, as SQLite's rowid does.
- `output_batches`: a row per batch (its lines a JSON array in text, like SQLite's; not
  `text[]`, because a PostgreSQL text value cannot hold the NUL characters agents print,
  which JSON escapes). Key (job_id, unsequenced, seq_key): seq'd batches by seq, then
  seq-less ones by arrival; for a seq'd batch the key is (job, seq), so a batch is stored
  once whichever dispatcher receives it (INSERT ... ON CONFLICT DO NOTHING). A seq-less
  batch takes its `seq_key` from the `output_arrival` sequence when it is inserted:
  increasing in arrival order within each job, whichever instance inserts it.
- `transcripts`, `artifact_files`, `secrets`, `sessions`, `channel_settings`, `approvals`:
  as in SQLite (JSON text bodies, bytea for bytes).

Version 2, for dispatchers sharing the database (`cluster.py`, docs/deploy-fly.md):
- `leader`: at most one row, the leading process's member name, the URL standbys pass
  requests on to, and until when it counts (renewed by its heartbeat).
- `job_leases`: a row per job the leader runs, with the member holding it and until when.
- `job_messages`: where each running job's chat messages are (its first reply, its pages),
  so the next leader edits them instead of posting new ones.
Times are the database's (`now()`), so the members' clocks need not agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...domain.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 2

#: The advisory lock key (`pg_advisory_xact_lock`) migrations hold: "odschema" in ASCII, so it
#: is unlikely to meet another application's key on a shared database.
MIGRATION_LOCK_KEY = int.from_bytes(b"odschema", "big") & 0x7FFF_FFFF_FFFF_FFFF

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

_V1 = (
    """
    CREATE TABLE jobs (
        id text PRIMARY KEY,
        position bigint GENERATED ALWAYS AS IDENTITY,
        created_at double precision NOT NULL,
        state text NOT NULL,
        user_id text NOT NULL,
        platform text NOT NULL,
        channel text NOT NULL,
        repo text,
        agent text NOT NULL,
        body text NOT NULL
    )
    """,
    "CREATE INDEX jobs_newest ON jobs (created_at DESC, position DESC)",
    "CREATE INDEX jobs_by_state ON jobs (state, created_at DESC)",
    "CREATE INDEX jobs_by_user ON jobs (user_id, created_at DESC)",
    "CREATE INDEX jobs_by_channel ON jobs (platform, channel, created_at DESC)",
    """
    CREATE TABLE output_batches (
        job_id text NOT NULL,
        unsequenced boolean NOT NULL,
        seq_key bigint NOT NULL,
        line_count integer NOT NULL,
        lines text NOT NULL,
        PRIMARY KEY (job_id, unsequenced, seq_key)
    )
    """,
    "CREATE SEQUENCE output_arrival AS bigint",
    """
    CREATE TABLE transcripts (
        job_id text NOT NULL,
        part integer NOT NULL,
        lines text NOT NULL,
        PRIMARY KEY (job_id, part)
    )
    """,
    """
    CREATE TABLE artifact_files (
        job_id text NOT NULL,
        name text NOT NULL,
        content bytea NOT NULL,
        PRIMARY KEY (job_id, name)
    )
    """,
    "CREATE TABLE secrets (name text PRIMARY KEY, value bytea NOT NULL)",
    """
    CREATE TABLE sessions (
        id text PRIMARY KEY,
        position bigint GENERATED ALWAYS AS IDENTITY,
        created_at double precision NOT NULL,
        state text NOT NULL,
        body text NOT NULL
    )
    """,
    "CREATE INDEX sessions_by_state ON sessions (state, created_at, position)",
    "CREATE TABLE channel_settings (channel text PRIMARY KEY, body text NOT NULL)",
    """
    CREATE TABLE approvals (
        id text PRIMARY KEY,
        position bigint GENERATED ALWAYS AS IDENTITY,
        job_id text NOT NULL,
        asked_at double precision NOT NULL,
        state text NOT NULL,
        body text NOT NULL
    )
    """,
    "CREATE INDEX approvals_by_job ON approvals (job_id, asked_at, position)",
    "CREATE INDEX approvals_by_state ON approvals (state, asked_at, position)",
)

_V2 = (
    """
    CREATE TABLE leader (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        member text NOT NULL,
        url text NOT NULL,
        expires_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE job_leases (
        job_id text PRIMARY KEY,
        member text NOT NULL,
        expires_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX job_leases_by_member ON job_leases (member)",
    "CREATE TABLE job_messages (job_id text PRIMARY KEY, body text NOT NULL)",
)

#: Version -> its statements, applied in order inside `migrate`'s transaction. A new version
#: is a new entry (never an edit of a shipped one) and a `SCHEMA_VERSION` bump.
MIGRATIONS: dict[int, tuple[str, ...]] = {1: _V1, 2: _V2}


def migrate(db: psycopg.Connection[tuple[Any, ...]]) -> list[int]:
    """Bring the database to `SCHEMA_VERSION`; the versions this call applied (none when it
    was up to date). One transaction, under the migration lock, so it applies all or nothing
    and two dispatchers starting at once migrate once."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        db.execute(_VERSION_TABLE)
        row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row is not None else 0
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"The job database was written by a newer Open-Dispatch (schema {current}, "
                f"this build knows {SCHEMA_VERSION}); upgrade, or point OPENDISPATCH_DB at another database."
            )
        applied: list[int] = []
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            applied.append(version)
    return applied


def schema_version(db: psycopg.Connection[tuple[Any, ...]]) -> int:
    """The version the database is at (0: never migrated)."""
    found = db.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if found is None or not found[0]:
        return 0
    row = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])
