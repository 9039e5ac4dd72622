"""The PostgreSQL store's versioned migrations: run at start-up, idempotent, once when two
dispatchers start together, and a newer database refused."""

from __future__ import annotations

import psycopg
import pytest
import trio

from opendispatch.adapters.postgres import open_postgres_store
from opendispatch.adapters.postgres.schema import MIGRATION_LOCK_KEY, SCHEMA_VERSION, migrate, schema_version
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec

CEILING_S = 20.0
JOB = Job.queued("j-00000001", JobSpec(task="t", agent=AgentKind.SHELL), Conversation("slack", "C1"), User("u1", "a"), at=1.0)


def versions(url: str) -> list[tuple[int, object]]:
    with psycopg.connect(url, autocommit=True) as db:
        return [(int(v), at) for v, at in db.execute("SELECT version, applied_at FROM schema_version ORDER BY version")]


def migrate_on_own_connection(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as db:
        return migrate(db)


async def test_opening_migrates_a_fresh_database_and_again_changes_nothing(postgres_url: str) -> None:
    with trio.fail_after(CEILING_S):
        with psycopg.connect(postgres_url, autocommit=True) as db:
            assert schema_version(db) == 0
        async with open_postgres_store(postgres_url) as store:
            await store.add(JOB)
            await store.append_many([(JOB.id, 0, ["kept"])])
            await store.append_many([(JOB.id, None, ["seq-less"])])
        first = versions(postgres_url)
        assert [v for v, _ in first] == list(range(1, SCHEMA_VERSION + 1))

        assert migrate_on_own_connection(postgres_url) == []  # nothing left to apply
        async with open_postgres_store(postgres_url) as again:  # a restart
            assert await again.get(JOB.id) == JOB
            assert await again.output(JOB.id) == ["kept", "seq-less"]
            await again.append_many([(JOB.id, None, ["after the restart"])])
            assert await again.output(JOB.id) == ["kept", "seq-less", "after the restart"]
        assert versions(postgres_url) == first  # same rows, same times: nothing was applied again


async def test_two_dispatchers_starting_together_migrate_once(postgres_url: str) -> None:
    """Both start-ups queue on the migration lock (held here until both wait for it); the first
    applies the schema, the second finds it applied. Without the lock both would CREATE the
    same tables and one start-up would fail."""
    results: list[list[int]] = []

    async def start_up() -> None:
        results.append(await trio.to_thread.run_sync(migrate_on_own_connection, postgres_url))

    with trio.fail_after(CEILING_S), psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))  # opens a transaction
        async with trio.open_nursery() as nursery:
            nursery.start_soon(start_up)
            nursery.start_soon(start_up)
            await waiting_for_the_migration_lock(postgres_url, count=2)
            holder.commit()  # releases the lock: both proceed, one at a time
    assert sorted(results) == [[], list(range(1, SCHEMA_VERSION + 1))]
    assert [v for v, _ in versions(postgres_url)] == list(range(1, SCHEMA_VERSION + 1))


async def waiting_for_the_migration_lock(url: str, *, count: int) -> None:
    """Until `count` sessions wait for the advisory lock. The server tells nobody when a session
    starts waiting, so its lock table is read until they show (each read a round trip)."""
    key_high, key_low = MIGRATION_LOCK_KEY >> 32, MIGRATION_LOCK_KEY & 0xFFFF_FFFF
    with psycopg.connect(url, autocommit=True) as db:
        while True:
            row = db.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = %s AND objid = %s",
                (key_high, key_low),
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            await trio.lowlevel.checkpoint()


async def test_stores_opened_at_once_on_a_fresh_database_all_start(postgres_url: str) -> None:
    """The whole start-up path (connect, migrate, open the pool), three at once."""
    opened: list[int] = []

    async def open_one() -> None:
        async with open_postgres_store(postgres_url, pool_size=2) as store:
            await store.append_many([(JOB.id, len(opened), ["x"])])
            opened.append(1)

    with trio.fail_after(CEILING_S):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(open_one)
    assert len(opened) == 3
    assert [v for v, _ in versions(postgres_url)] == list(range(1, SCHEMA_VERSION + 1))


async def test_a_database_written_by_a_newer_build_is_refused(postgres_url: str) -> None:
    migrate_on_own_connection(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with trio.fail_after(CEILING_S), pytest.raises(ConfigError, match=f"newer Open-Dispatch \\(schema {SCHEMA_VERSION + 1}"):
        async with open_postgres_store(postgres_url):
            pass


async def test_a_failed_migration_leaves_nothing_behind(postgres_url: str) -> None:
    """All or nothing: one transaction (here a table of the same name is in the way)."""
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE sessions (id text)")
    with pytest.raises(psycopg.errors.DuplicateTable):
        migrate_on_own_connection(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        assert schema_version(db) == 0
        assert db.execute("SELECT to_regclass('jobs')").fetchone() == (None,)
