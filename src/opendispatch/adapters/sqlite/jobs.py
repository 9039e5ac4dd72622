"""Jobs and what they leave: the `JobStore` repository (jobs, output batches, transcripts,
kept artifact files) on the writer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from functools import partial

from ...domain.errors import UnknownJob
from ...domain.job import Conversation, Job, JobState
from .codec import LINES, job_from_json, job_to_json
from .writer import PendingWrite, SqliteWriter, transaction


class JobRepository(SqliteWriter):
    """The `JobStore` port: a job is a row (its JSON, beside the columns `recent` filters on);
    output a row per batch (`output_batches`, schema 3), written through the group commit."""

    async def add(self, job: Job) -> None:
        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO jobs (id, created_at, state, user_id, body) VALUES (?, ?, ?, ?, ?)",
                    (job.id, job.created_at, job.state.value, job.requested_by.id, job_to_json(job)),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"job {job.id} is already stored") from None

        await self._write(insert)

    async def get(self, job_id: str) -> Job:
        def select(db: sqlite3.Connection) -> str | None:
            rows = db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchall()
            return str(rows[0][0]) if rows else None

        body = await self._read(select)
        if body is None:
            raise UnknownJob(job_id)
        return job_from_json(body)

    async def save(self, job: Job) -> None:
        def update(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE jobs SET created_at = ?, state = ?, user_id = ?, body = ? WHERE id = ?",
                (job.created_at, job.state.value, job.requested_by.id, job_to_json(job), job.id),
            )
            return cursor.rowcount

        if await self._write(update) == 0:
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
            wanted = sorted({state.value for state in states})
            where.append(f"state IN ({', '.join('?' for _ in wanted)})")
            params.extend(wanted)
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        if created_after is not None:
            where.append("created_at >= ?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at < ?")
            params.append(created_before)
        if channel is not None:
            # No column of its own: asked for only by `--all` without admin rights, where a
            # scan of the job bodies is cheap next to a chat round trip.
            where.append("json_extract(body, '$.conversation.platform') = ? AND json_extract(body, '$.conversation.channel') = ?")
            params.extend((channel.platform, channel.channel))
        # The spec's repo and agent have no columns either (the web view's filters): the body
        # is `job_to_json`'s, where they are `spec.repo` and `spec.agent` (the kind's value).
        if repo is not None:
            where.append("json_extract(body, '$.spec.repo') = ?")
            params.append(repo)
        if agent is not None:
            where.append("json_extract(body, '$.spec.agent') = ?")
            params.append(agent)
        query = "SELECT body FROM jobs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
        params.extend((limit, offset))

        def select(db: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in db.execute(query, params)]

        return [job_from_json(body) for body in await self._run(select)]

    async def append_output(self, job_id: str, seq: int | None, lines: Sequence[str]) -> bool:
        """`append_many` of one batch: a convenience for tests and tools, not part of `JobStore`."""
        return (await self.append_many([(job_id, seq, lines)]))[0]

    async def append_many(self, appends: Sequence[tuple[str, int | None, Sequence[str]]]) -> list[bool]:
        items = [
            PendingWrite(partial(_insert_batch, job_id=job_id, seq=seq, lines=list(lines)))
            for job_id, seq, lines in appends
        ]
        await self._committed(items)
        return [bool(item.result) for item in items]

    async def output(self, job_id: str, *, tail: int | None = None) -> list[str]:
        if tail is not None and tail <= 0:
            return []

        def select(db: sqlite3.Connection) -> list[str]:
            if tail is None:
                rows = db.execute(
                    "SELECT lines FROM output_batches WHERE job_id = ? ORDER BY unsequenced, seq_key", (job_id,)
                )
                return [line for (text,) in rows for line in json.loads(text)]
            newest_first: list[str] = []
            count = 0
            for text, line_count in db.execute(
                "SELECT lines, line_count FROM output_batches WHERE job_id = ?"
                " ORDER BY unsequenced DESC, seq_key DESC",
                (job_id,),
            ):
                newest_first.append(text)
                count += line_count
                if count >= tail:
                    break
            lines = [line for text in reversed(newest_first) for line in json.loads(text)]
            return lines[-tail:]

        return await self._run(select)

    async def output_range(self, job_id: str, start: int, limit: int | None = None) -> list[str]:
        if start < 0:
            raise ValueError(f"start must be 0 or more, not {start}")
        if limit is not None and limit <= 0:
            return []

        def select(db: sqlite3.Connection) -> list[str]:
            # Two steps: each batch's key and line count in output order (no `lines` value is
            # loaded or decoded: 1,000 batches of 100 lines take ~4 ms a call, where `output()`
            # takes ~40), then only the batches that hold lines [start, start + limit), by a range
            # of the primary key. Both run on the write connection under its lock, so no
            # batch lands in between to shift the indexes.
            counts = db.execute(
                "SELECT unsequenced, seq_key, line_count FROM output_batches WHERE job_id = ?"
                " ORDER BY unsequenced, seq_key",
                (job_id,),
            ).fetchall()
            first = 0  # the index of the line that begins the batch at `low`
            low = 0
            while low < len(counts) and first + counts[low][2] <= start:
                first += counts[low][2]
                low += 1
            if low == len(counts):
                return []
            high, after = low, first + counts[low][2]
            if limit is not None:
                while high + 1 < len(counts) and after < start + limit:
                    high += 1
                    after += counts[high][2]
            else:
                high = len(counts) - 1
            rows = db.execute(
                "SELECT lines FROM output_batches WHERE job_id = ?"
                " AND (unsequenced, seq_key) >= (?, ?) AND (unsequenced, seq_key) <= (?, ?)"
                " ORDER BY unsequenced, seq_key",
                (job_id, *counts[low][:2], *counts[high][:2]),
            ).fetchall()
            lines = [line for (text,) in rows for line in json.loads(text)]
            skip = start - first
            return lines[skip:] if limit is None else lines[skip : skip + limit]

        return await self._run(select)

    async def output_line_count(self, job_id: str) -> int:
        def count(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT COALESCE(SUM(line_count), 0) FROM output_batches WHERE job_id = ?", (job_id,)
            ).fetchall()
            return int(rows[0][0])

        return await self._read(count)

    async def last_seq(self, job_id: str) -> int | None:
        def highest(db: sqlite3.Connection) -> int | None:
            rows = db.execute(
                "SELECT MAX(seq_key) FROM output_batches WHERE job_id = ? AND unsequenced = 0", (job_id,)
            ).fetchall()
            return None if rows[0][0] is None else int(rows[0][0])

        return await self._read(highest)

    async def append_transcript(self, job_id: str, part: int, lines: Sequence[str]) -> bool:
        text = LINES.encode(list(lines))

        def insert(db: sqlite3.Connection) -> bool:
            with transaction(db):
                cursor = db.execute(
                    "INSERT OR IGNORE INTO transcripts (job_id, part, lines) VALUES (?, ?, ?)", (job_id, part, text)
                )
                return cursor.rowcount == 1

        return await self._run(insert)

    async def transcript(self, job_id: str) -> list[str]:
        def select(db: sqlite3.Connection) -> list[str]:
            rows = db.execute("SELECT lines FROM transcripts WHERE job_id = ? ORDER BY part", (job_id,)).fetchall()
            return [line for (text,) in rows for line in json.loads(text)]

        return await self._read(select)

    async def keep_artifact_file(self, job_id: str, name: str, content: bytes) -> bool:
        def insert(db: sqlite3.Connection) -> bool:
            with transaction(db):
                cursor = db.execute(
                    "INSERT OR IGNORE INTO artifact_files (job_id, name, content) VALUES (?, ?, ?)",
                    (job_id, name, bytes(content)),
                )
                return cursor.rowcount == 1

        return await self._run(insert)

    async def artifact_file(self, job_id: str, name: str) -> bytes | None:
        def select(db: sqlite3.Connection) -> bytes | None:
            row = db.execute(
                "SELECT content FROM artifact_files WHERE job_id = ? AND name = ?", (job_id, name)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(select)


def _insert_batch(db: sqlite3.Connection, *, job_id: str, seq: int | None, lines: list[str]) -> bool:
    """One append's row, in the caller's transaction; False for a (job, seq) already stored."""
    if seq is None:  # numbered after the job's last seq-less batch
        db.execute(
            "INSERT INTO output_batches (job_id, unsequenced, seq_key, line_count, lines)"
            " SELECT ?, 1, COALESCE(MAX(seq_key), 0) + 1, ?, ? FROM output_batches"
            " WHERE job_id = ? AND unsequenced = 1",
            (job_id, len(lines), LINES.encode(lines), job_id),
        )
        return True
    cursor = db.execute(
        "INSERT OR IGNORE INTO output_batches (job_id, unsequenced, seq_key, line_count, lines) VALUES (?, 0, ?, ?, ?)",
        (job_id, seq, len(lines), LINES.encode(lines)),
    )
    return cursor.rowcount == 1
