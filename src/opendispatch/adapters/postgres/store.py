"""`PostgresJobStore`: every store port on PostgreSQL, for a team's production deployment.

psycopg 3's sync API and a `psycopg_pool.ConnectionPool`, called from Trio worker threads
behind one `trio.CapacityLimiter` the size of the pool (psycopg's async API runs on asyncio
only; docs/architecture.md, "Production store on PostgreSQL"). So a call waits for a
connection in Trio, where it can be cancelled, never inside the pool; a thread once started
is not abandoned, so a write commits or rolls back before its caller sees `Cancelled`.

Connections are in autocommit: a call of one statement (nearly all of them, the appends
included) is one round trip and its own transaction; the few that need more than one
statement open a transaction themselves.

psycopg is imported when a store is opened, not with this module: the embedded default
(SQLite) needs neither it nor its pool.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import cattrs.preconf.json
import trio

from ...domain.approvals import ApprovalRequest, ApprovalState
from ...domain.channel_settings import ChannelSettings
from ...domain.errors import ConfigError, UnknownJob
from ...domain.job import Conversation, Job, JobState
from ...domain.session import Session, SessionState, UnknownSession
from .schema import migrate
from .url import redact_url, without_passwords

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

    _Connection = psycopg.Connection[tuple[Any, ...]]

#: Connections in the pool, and so calls in flight at once (the limiter's size).
DEFAULT_POOL_SIZE = 10
#: How long opening waits for the server (the first connection, the pool's first).
CONNECT_TIMEOUT_S = 10.0

_T = TypeVar("_T")

#: The same cattrs JSON converter the SQLite store uses (its defaults, no hooks), so a job's,
#: session's, setting's or approval's body is the same text in both stores (a test holds them
#: to each other). The library does the conversion; there is no hand-written code to share.
_converter = cattrs.preconf.json.make_converter()

#: A batch's lines as stored: a compact JSON array, as SQLite stores them.
_LINES = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

log = logging.getLogger(__name__)


def _column(text: str) -> str:
    """A value for a key or filter column. PostgreSQL text cannot hold NUL, which no platform
    id, state or repository has; if one ever does, it is kept (U+FFFD for NUL) rather than
    failing the write. The body keeps the exact value."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _job_row(job: Job) -> tuple[object, ...]:
    """The columns after `id` in `INSERT` order: created_at, state, user_id, platform, channel, repo, agent, body."""
    return (
        job.created_at,
        job.state.value,
        _column(job.requested_by.id),
        _column(job.conversation.platform),
        _column(job.conversation.channel),
        None if job.spec.repo is None else _column(job.spec.repo),
        job.spec.agent.value,
        _converter.dumps(job),
    )


def _lines(texts: Sequence[tuple[str]] | Sequence[tuple[str, Any]]) -> list[str]:
    return [line for row in texts for line in json.loads(row[0])]


class PostgresJobStore:
    """Use `open_postgres_store(url)`; constructing one directly is for that function only."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[_Connection], size: int) -> None:
        self._pool = pool
        #: One token per pooled connection: a call waits here (cancellable), never in the pool.
        self.limiter = trio.CapacityLimiter(size)

    async def _run(self, work: Callable[[_Connection], _T]) -> _T:
        """Run `work` on a pooled connection in a worker thread, one token of the limiter each."""

        def call() -> _T:
            with self._pool.connection() as db:
                return work(db)

        return await trio.to_thread.run_sync(call, limiter=self.limiter)

    # --- JobStore ------------------------------------------------------------------------------

    async def add(self, job: Job) -> None:
        def insert(db: _Connection) -> int:
            return db.execute(
                "INSERT INTO jobs (id, created_at, state, user_id, platform, channel, repo, agent, body)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (_column(job.id), *_job_row(job)),
            ).rowcount

        if await self._run(insert) == 0:
            raise ValueError(f"job {job.id} is already stored")

    async def get(self, job_id: str) -> Job:
        def select(db: _Connection) -> str | None:
            row = db.execute("SELECT body FROM jobs WHERE id = %s", (_column(job_id),)).fetchone()
            return None if row is None else str(row[0])

        body = await self._run(select)
        if body is None:
            raise UnknownJob(job_id)
        return _converter.loads(body, Job)

    async def save(self, job: Job) -> None:
        def update(db: _Connection) -> int:
            return db.execute(
                "UPDATE jobs SET created_at = %s, state = %s, user_id = %s, platform = %s, channel = %s,"
                " repo = %s, agent = %s, body = %s WHERE id = %s",
                (*_job_row(job), _column(job.id)),
            ).rowcount

        if await self._run(update) == 0:
            raise UnknownJob(job.id)

    async def recent(
        self,
        *,
        limit: int,
        states: Collection[JobState] | None = None,
        user_id: str | None = None,
        created_after: float | None = None,
        channel: Conversation | None = None,
        repo: str | None = None,
        agent: str | None = None,
        created_before: float | None = None,
        offset: int = 0,
    ) -> list[Job]:
        if offset < 0:
            raise ValueError(f"offset must be 0 or more, not {offset}")
        if limit <= 0 or (states is not None and not states):
            return []
        where: list[str] = []
        params: list[object] = []
        if states is not None:
            where.append("state = ANY(%s)")
            params.append(sorted({state.value for state in states}))
        if user_id is not None:
            where.append("user_id = %s")
            params.append(_column(user_id))
        if created_after is not None:
            where.append("created_at >= %s")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at < %s")
            params.append(created_before)
        if channel is not None:
            where.append("platform = %s AND channel = %s")
            params.extend((_column(channel.platform), _column(channel.channel)))
        if repo is not None:
            where.append("repo = %s")
            params.append(_column(repo))
        if agent is not None:
            where.append("agent = %s")
            params.append(agent)
        query = "SELECT body FROM jobs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, position DESC LIMIT %s OFFSET %s"
        params.extend((limit, offset))

        def select(db: _Connection) -> list[str]:
            return [str(row[0]) for row in db.execute(query, params)]

        return [_converter.loads(body, Job) for body in await self._run(select)]

    async def append_many(self, appends: Sequence[tuple[str, int | None, Sequence[str]]]) -> list[bool]:
        """The one append path: one INSERT of every batch (arrays unnested server-side), one
        round trip, one transaction.

        A seq'd batch whose (job, seq) is stored already, by this or another dispatcher, is
        skipped by ON CONFLICT DO NOTHING; RETURNING names the rows inserted. A repeat within
        this call is settled here (only its first occurrence may be stored). Seq-less batches
        are numbered from `output_arrival` in the order given (the ORDER BY runs before the
        volatile `nextval`), after every earlier one.
        """
        if not appends:
            return []
        stored = [False] * len(appends)
        first: dict[tuple[str, int], int] = {}
        wanted: list[int] = []  # indexes sent to the database
        for index, (job_id, seq, _) in enumerate(appends):
            if seq is not None:
                if (job_id, seq) in first:
                    continue  # a repeat within this call
                first[job_id, seq] = index
            wanted.append(index)
        job_ids = [_column(appends[i][0]) for i in wanted]
        seqs = [appends[i][1] for i in wanted]
        counts = [len(appends[i][2]) for i in wanted]
        texts = [_LINES.encode(list(appends[i][2])) for i in wanted]

        def insert(db: _Connection) -> list[tuple[str, bool, int]]:
            rows = db.execute(
                "INSERT INTO output_batches (job_id, unsequenced, seq_key, line_count, lines)"
                " SELECT job_id, seq IS NULL, COALESCE(seq, nextval('output_arrival')), line_count, lines"
                " FROM unnest(%s::text[], %s::bigint[], %s::integer[], %s::text[])"
                " WITH ORDINALITY AS given (job_id, seq, line_count, lines, n)"
                " ORDER BY n"
                " ON CONFLICT DO NOTHING"
                " RETURNING job_id, unsequenced, seq_key",
                (job_ids, seqs, counts, texts),
            ).fetchall()
            return [(str(job_id), bool(unsequenced), int(key)) for job_id, unsequenced, key in rows]

        inserted = await self._run(insert)
        seqd = {(job_id, key) for job_id, unsequenced, key in inserted if not unsequenced}
        for position, index in enumerate(wanted):
            seq = seqs[position]
            stored[index] = seq is None or (job_ids[position], seq) in seqd
        return stored

    async def output(self, job_id: str, *, tail: int | None = None) -> list[str]:
        if tail is not None and tail <= 0:
            return []

        def select(db: _Connection) -> list[str]:
            if tail is None:
                rows = db.execute(
                    "SELECT lines FROM output_batches WHERE job_id = %s ORDER BY unsequenced, seq_key",
                    (_column(job_id),),
                ).fetchall()
                return _lines(rows)
            # Only the newest batches that hold the last `tail` lines: `newer` counts the lines
            # after each batch, newest first, and a batch is needed while that is under `tail`.
            rows = db.execute(
                "WITH counted AS ("
                "  SELECT unsequenced, seq_key,"
                "   SUM(line_count) OVER (ORDER BY unsequenced DESC, seq_key DESC) - line_count AS newer"
                "  FROM output_batches WHERE job_id = %(job)s)"
                " SELECT o.lines FROM counted c JOIN output_batches o"
                "  ON o.job_id = %(job)s AND o.unsequenced = c.unsequenced AND o.seq_key = c.seq_key"
                " WHERE c.newer < %(tail)s ORDER BY c.unsequenced, c.seq_key",
                {"job": _column(job_id), "tail": tail},
            ).fetchall()
            return _lines(rows)[-tail:]

        return await self._run(select)

    async def output_range(self, job_id: str, start: int, limit: int | None = None) -> list[str]:
        if start < 0:
            raise ValueError(f"start must be 0 or more, not {start}")
        if limit is not None and limit <= 0:
            return []

        def select(db: _Connection) -> list[str]:
            # One statement (one snapshot): each batch's first line index from the line counts
            # alone (`lines` is read only for the batches that hold lines [start, start + limit)).
            rows = db.execute(
                "WITH counted AS ("
                "  SELECT unsequenced, seq_key, line_count,"
                "   SUM(line_count) OVER (ORDER BY unsequenced, seq_key) - line_count AS first"
                "  FROM output_batches WHERE job_id = %(job)s)"
                " SELECT o.lines, c.first FROM counted c JOIN output_batches o"
                "  ON o.job_id = %(job)s AND o.unsequenced = c.unsequenced AND o.seq_key = c.seq_key"
                " WHERE c.first + c.line_count > %(start)s AND (%(end)s::bigint IS NULL OR c.first < %(end)s::bigint)"
                " ORDER BY c.unsequenced, c.seq_key",
                {"job": _column(job_id), "start": start, "end": None if limit is None else start + limit},
            ).fetchall()
            if not rows:
                return []
            lines = _lines(rows)
            skip = start - int(rows[0][1])
            return lines[skip:] if limit is None else lines[skip : skip + limit]

        return await self._run(select)

    async def output_line_count(self, job_id: str) -> int:
        def count(db: _Connection) -> int:
            row = db.execute(
                "SELECT COALESCE(SUM(line_count), 0) FROM output_batches WHERE job_id = %s", (_column(job_id),)
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(count)

    async def last_seq(self, job_id: str) -> int | None:
        def highest(db: _Connection) -> int | None:
            row = db.execute(
                "SELECT MAX(seq_key) FROM output_batches WHERE job_id = %s AND NOT unsequenced", (_column(job_id),)
            ).fetchone()
            return None if row is None or row[0] is None else int(row[0])

        return await self._run(highest)

    async def append_transcript(self, job_id: str, part: int, lines: Sequence[str]) -> bool:
        text = _LINES.encode(list(lines))

        def insert(db: _Connection) -> bool:
            return (
                db.execute(
                    "INSERT INTO transcripts (job_id, part, lines) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    (_column(job_id), part, text),
                ).rowcount
                == 1
            )

        return await self._run(insert)

    async def transcript(self, job_id: str) -> list[str]:
        def select(db: _Connection) -> list[str]:
            rows = db.execute(
                "SELECT lines FROM transcripts WHERE job_id = %s ORDER BY part", (_column(job_id),)
            ).fetchall()
            return _lines(rows)

        return await self._run(select)

    async def keep_artifact_file(self, job_id: str, name: str, content: bytes) -> bool:
        def insert(db: _Connection) -> bool:
            return (
                db.execute(
                    "INSERT INTO artifact_files (job_id, name, content) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    (_column(job_id), _column(name), bytes(content)),
                ).rowcount
                == 1
            )

        return await self._run(insert)

    async def artifact_file(self, job_id: str, name: str) -> bytes | None:
        def select(db: _Connection) -> bytes | None:
            row = db.execute(
                "SELECT content FROM artifact_files WHERE job_id = %s AND name = %s", (_column(job_id), _column(name))
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(select)

    # --- SecretStore -----------------------------------------------------------------------------

    async def secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """Read; if missing, insert `create()` unless another caller (or dispatcher) got there
        first, then read what won. The insert waits for a concurrent one to commit, and the
        read after it is a new statement, so it sees the winner."""

        def get_or_create(db: _Connection) -> bytes:
            query = "SELECT value FROM secrets WHERE name = %s"
            row = db.execute(query, (_column(name),)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO secrets (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (_column(name), bytes(create())),
                )
                row = db.execute(query, (_column(name),)).fetchone()
            assert row is not None
            return bytes(row[0])

        return await self._run(get_or_create)

    # --- SessionStore ----------------------------------------------------------------------------

    async def add_session(self, session: Session) -> None:
        def insert(db: _Connection) -> int:
            return db.execute(
                "INSERT INTO sessions (id, created_at, state, body) VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (_column(session.id), session.created_at, session.state.value, _converter.dumps(session)),
            ).rowcount

        if await self._run(insert) == 0:
            raise ValueError(f"session {session.id} is already stored")

    async def save_session(self, session: Session) -> None:
        def update(db: _Connection) -> int:
            return db.execute(
                "UPDATE sessions SET state = %s, body = %s WHERE id = %s",
                (session.state.value, _converter.dumps(session), _column(session.id)),
            ).rowcount

        if await self._run(update) == 0:
            raise UnknownSession(session.id)

    async def get_session(self, session_id: str) -> Session:
        def select(db: _Connection) -> str | None:
            row = db.execute("SELECT body FROM sessions WHERE id = %s", (_column(session_id),)).fetchone()
            return None if row is None else str(row[0])

        body = await self._run(select)
        if body is None:
            raise UnknownSession(session_id)
        return _converter.loads(body, Session)

    async def live_sessions(self) -> list[Session]:
        def select(db: _Connection) -> list[str]:
            rows = db.execute(
                "SELECT body FROM sessions WHERE state <> %s ORDER BY created_at, position",
                (SessionState.STOPPED.value,),
            ).fetchall()
            return [str(row[0]) for row in rows]

        return [_converter.loads(body, Session) for body in await self._run(select)]

    # --- ChannelSettingsStore ----------------------------------------------------------------------

    async def channel_settings(self, channel: str) -> ChannelSettings:
        def select(db: _Connection) -> str | None:
            row = db.execute("SELECT body FROM channel_settings WHERE channel = %s", (_column(channel),)).fetchone()
            return None if row is None else str(row[0])

        body = await self._run(select)
        return ChannelSettings() if body is None else _converter.loads(body, ChannelSettings)

    async def save_channel_settings(self, channel: str, settings: ChannelSettings) -> None:
        body = _converter.dumps(settings)

        def upsert(db: _Connection) -> None:
            db.execute(
                "INSERT INTO channel_settings (channel, body) VALUES (%s, %s)"
                " ON CONFLICT (channel) DO UPDATE SET body = excluded.body",
                (_column(channel), body),
            )

        await self._run(upsert)

    # --- ApprovalStore -----------------------------------------------------------------------------

    async def save_approval(self, request: ApprovalRequest) -> None:
        body = _converter.dumps(request)

        def upsert(db: _Connection) -> None:
            db.execute(
                "INSERT INTO approvals (id, job_id, asked_at, state, body) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
                (_column(request.id), _column(request.job_id), request.asked_at, request.state.value, body),
            )

        await self._run(upsert)

    async def approval(self, request_id: str) -> ApprovalRequest | None:
        def select(db: _Connection) -> str | None:
            row = db.execute("SELECT body FROM approvals WHERE id = %s", (_column(request_id),)).fetchone()
            return None if row is None else str(row[0])

        body = await self._run(select)
        return None if body is None else _converter.loads(body, ApprovalRequest)

    async def pending_approvals(self) -> list[ApprovalRequest]:
        def select(db: _Connection) -> list[str]:
            rows = db.execute(
                "SELECT body FROM approvals WHERE state = %s ORDER BY asked_at, position",
                (ApprovalState.PENDING.value,),
            ).fetchall()
            return [str(row[0]) for row in rows]

        return [_converter.loads(body, ApprovalRequest) for body in await self._run(select)]

    async def approvals_of(self, job_id: str) -> list[ApprovalRequest]:
        def select(db: _Connection) -> list[str]:
            rows = db.execute(
                "SELECT body FROM approvals WHERE job_id = %s ORDER BY asked_at, position", (_column(job_id),)
            ).fetchall()
            return [str(row[0]) for row in rows]

        return [_converter.loads(body, ApprovalRequest) for body in await self._run(select)]


def _driver() -> tuple[Any, Any]:
    """psycopg and psycopg_pool, or a `ConfigError` naming the extra that brings them."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigError(
            f"OPENDISPATCH_DB is a PostgreSQL URL, but its driver is not installed ({exc.name}): "
            "pip install 'opendispatch[postgres]'."
        ) from None
    return psycopg, psycopg_pool


def _connect_and_migrate(url: str, connect_timeout_s: float) -> list[int]:
    """Apply the missing migrations on a connection of their own (its error is the clearest
    answer to a wrong URL); the versions applied."""
    psycopg, _ = _driver()
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(connect_timeout_s))) as db:
            return migrate(db)
    except psycopg.OperationalError as exc:
        reason = without_passwords(str(exc).strip(), url)
        raise ConfigError(
            f"cannot connect to the database {redact_url(url)}: {reason}; check OPENDISPATCH_DB."
        ) from None


def check_connection(url: str, *, connect_timeout_s: float = 5.0) -> str | None:
    """`doctor`'s check: None when a connection to `url` works, else why not (without the
    password). Nothing is created or migrated."""
    try:
        psycopg, _ = _driver()
    except ConfigError as exc:
        return str(exc)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(connect_timeout_s))) as db:
            db.execute("SELECT 1")
    except psycopg.Error as exc:
        return without_passwords(str(exc).strip() or type(exc).__name__, url)
    return None


@asynccontextmanager
async def open_postgres_store(
    url: str, *, pool_size: int = DEFAULT_POOL_SIZE, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> AsyncIterator[PostgresJobStore]:
    """Connect to the database at `url` (`postgresql://...`), migrate it, and keep a pool of
    `pool_size` connections open until exit."""
    if pool_size < 1:
        raise ValueError(f"pool_size must be 1 or more, not {pool_size}")
    _, psycopg_pool = _driver()
    applied = await trio.to_thread.run_sync(_connect_and_migrate, url, connect_timeout_s)
    if applied:
        log.info("migrated the job database to schema %d", applied[-1])
    pool = psycopg_pool.ConnectionPool(
        url,
        min_size=1,
        max_size=pool_size,
        open=False,
        name="opendispatch",
        kwargs={"autocommit": True, "application_name": "opendispatch"},
    )
    try:
        await trio.to_thread.run_sync(partial(pool.open, wait=True, timeout=connect_timeout_s))
    except psycopg_pool.PoolTimeout:
        await trio.to_thread.run_sync(pool.close)
        raise ConfigError(f"cannot open connections to the database {redact_url(url)}; check OPENDISPATCH_DB.") from None
    try:
        yield PostgresJobStore(pool, pool_size)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(pool.close)
