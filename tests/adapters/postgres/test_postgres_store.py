"""What the PostgreSQL store adds to the contracts (tests/contracts run it beside memory and
SQLite): two stores on one database, one transaction per append call, the limiter, the same
JSON bodies as SQLite, and no password in its errors."""

from __future__ import annotations

import psycopg
import pytest
import trio
import trio.testing

from opendispatch.adapters.postgres import check_connection, open_postgres_store
from opendispatch.adapters.sqlite.store import job_to_json, session_to_json
from opendispatch.domain.errors import ConfigError
from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.session import Session

CEILING_S = 20.0
SPEC = JobSpec(task="run the tests ✓", agent=AgentKind.CLAUDE, repo="owner/repo")


def job(job_id: str, at: float = 1.0, conversation: Conversation = Conversation("slack", "C1", "1.2")) -> Job:
    return Job.queued(job_id, SPEC, conversation, User("u1", "alice"), at=at)


async def test_two_stores_on_one_database_store_each_batch_once_in_order(postgres_url: str) -> None:
    """Two dispatchers share a database: a seq'd batch is stored once whichever receives it,
    and seq-less batches read back in the order they reached the database, from either."""
    with trio.fail_after(CEILING_S):
        async with open_postgres_store(postgres_url) as one, open_postgres_store(postgres_url) as two:
            assert await one.append_many([("j-00000001", 1, ["b"])]) == [True]
            assert await two.append_many([("j-00000001", 1, ["b again"])]) == [False]
            assert await two.append_many([("j-00000001", 0, ["a"]), ("j-00000001", 1, ["b"])]) == [True, False]
            for n, store in enumerate((one, two, two, one)):
                assert await store.append_many([("j-00000002", None, [f"old {n}"])]) == [True]
            for store in (one, two):
                assert await store.output("j-00000001") == ["a", "b"]
                assert await store.last_seq("j-00000001") == 1
                assert await store.output("j-00000002") == ["old 0", "old 1", "old 2", "old 3"]
            await one.add(job("j-00000003"))
            with pytest.raises(ValueError):
                await two.add(job("j-00000003"))
            assert await two.get("j-00000003") == job("j-00000003")
            assert await one.secret("key", lambda: b"first") == b"first"
            assert await two.secret("key", lambda: b"second") == b"first"


async def test_an_append_call_is_one_transaction(postgres_url: str) -> None:
    """`append_many` (the relay's ingest) writes every job's batches in one statement: all
    rows share the transaction id that inserted them."""
    appends = [(f"j-0000000{n % 7}", seq, [f"{n}"] * 3) for n, seq in enumerate([*range(40), *[None] * 10])]
    with trio.fail_after(CEILING_S):
        async with open_postgres_store(postgres_url) as store:
            assert await store.append_many(appends) == [True] * 50
            await store.append_many([("j-00000009", 0, ["x"]), ("j-00000009", None, ["y"]), ("j-00000009", 1, ["z"])])
    with psycopg.connect(postgres_url, autocommit=True) as db:
        rows = db.execute(
            "SELECT job_id = 'j-00000009', count(DISTINCT xmin::text), count(*) FROM output_batches GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [(False, 1, 50), (True, 1, 3)]


async def test_more_calls_than_connections_wait_their_turn(postgres_url: str) -> None:
    """The limiter has a token per pooled connection; the rest wait in Trio, not in the pool."""
    with trio.fail_after(CEILING_S):
        async with open_postgres_store(postgres_url, pool_size=2) as store:
            assert store.limiter.total_tokens == 2
            async with trio.open_nursery() as nursery:
                for n in range(40):
                    nursery.start_soon(store.append_many, [("j-00000001", n, [str(n)])])
            assert await store.output("j-00000001") == [str(n) for n in range(40)]


async def test_a_call_cancelled_while_waiting_for_a_connection_writes_nothing(postgres_url: str) -> None:
    with trio.fail_after(CEILING_S):
        async with open_postgres_store(postgres_url, pool_size=1) as store:
            async with store.limiter:  # every connection busy
                with trio.CancelScope() as waiting:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(store.append_many, [("j-00000001", 0, ["never"])])
                        await trio.testing.wait_all_tasks_blocked()  # it waits for a token
                        waiting.cancel()
            assert await store.output("j-00000001") == []


async def test_bodies_are_the_same_json_as_sqlites(postgres_url: str) -> None:
    """Both stores write cattrs' JSON of the value, so a body moves between them unchanged."""
    session = Session.begin(
        session_id="s-00000001", name="work", spec=SPEC, persistent=True, conversation=Conversation("slack", "C1"),
        owner=User("u1", "alice"), agent_session_id="x", at=5.0,
    )
    stored = job("j-00000001").starting(at=2.0)
    with trio.fail_after(CEILING_S):
        async with open_postgres_store(postgres_url) as store:
            await store.add(job("j-00000001"))
            await store.save(stored)
            await store.add_session(session)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        assert db.execute("SELECT body FROM jobs").fetchone() == (job_to_json(stored),)
        assert db.execute("SELECT body FROM sessions").fetchone() == (session_to_json(session),)


async def test_a_nul_in_a_channel_id_neither_fails_the_write_nor_breaks_the_filter(postgres_url: str) -> None:
    """PostgreSQL text cannot hold NUL; the body keeps the exact value, the column a stand-in."""
    odd = Conversation("slack", "C\x001")
    with trio.fail_after(CEILING_S):
        async with open_postgres_store(postgres_url) as store:
            await store.add(job("j-00000001", conversation=odd))
            await store.add(job("j-00000002"))
            assert await store.get("j-00000001") == job("j-00000001", conversation=odd)
            assert [j.id for j in await store.recent(limit=5, channel=odd)] == ["j-00000001"]
            assert await store.append_many([("j-00000001", 0, ["nul\x00inside"])]) == [True]
            assert await store.output("j-00000001") == ["nul\x00inside"]


def url_with_password(postgres_url: str, password: str, database: str) -> str:
    rest = postgres_url.removeprefix("postgresql://postgres@/")
    host = rest.split("?", 1)[1]
    return f"postgresql://postgres:{password}@/{database}?{host}"


async def test_a_connection_error_names_the_database_without_its_password(postgres_url: str) -> None:
    url = url_with_password(postgres_url, "hunter2-very-secret", "no_such_database")
    with trio.fail_after(CEILING_S), pytest.raises(ConfigError) as refused:
        async with open_postgres_store(url):
            pass
    message = str(refused.value)
    assert "hunter2" not in message
    assert "postgresql://postgres:***@/no_such_database" in message and "does not exist" in message
    problem = check_connection(url)
    assert problem is not None and "hunter2" not in problem and "does not exist" in problem
    assert check_connection(postgres_url) is None
