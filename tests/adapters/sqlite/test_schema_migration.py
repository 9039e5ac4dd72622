"""A job database written before output went one row per batch (schema 2) opens with all of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.adapters.sqlite.store import SCHEMA_VERSION

# The output tables as schema 1 and 2 made them, and rows as that version wrote them.
_VERSION_2_OUTPUT = """
CREATE TABLE batches (
    batch_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    seq INTEGER,
    line_count INTEGER NOT NULL,
    UNIQUE (job_id, seq)
);
CREATE TABLE output_lines (
    job_id TEXT NOT NULL,
    unsequenced INTEGER NOT NULL,
    seq_key INTEGER NOT NULL,
    batch_id INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job_id, unsequenced, seq_key, batch_id, line_no)
) WITHOUT ROWID;
"""


def _old_append(db: sqlite3.Connection, job_id: str, seq: int | None, lines: list[str]) -> None:
    cursor = db.execute("INSERT INTO batches (job_id, seq, line_count) VALUES (?, ?, ?)", (job_id, seq, len(lines)))
    unsequenced, seq_key = (1, 0) if seq is None else (0, seq)
    db.executemany(
        "INSERT INTO output_lines VALUES (?, ?, ?, ?, ?, ?)",
        [(job_id, unsequenced, seq_key, cursor.lastrowid, n, text) for n, text in enumerate(lines)],
    )


def _version_2_file(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(_VERSION_2_OUTPUT)
    _old_append(db, "a", None, ["a old 1", "a old 2"])  # an old sidecar's, before seq'd ones
    _old_append(db, "b", 1, ["b1"])
    _old_append(db, "a", 1, ["a1 x", "a1 y"])
    _old_append(db, "a", 0, ["a0", "a0 'quoted' \"line\" ✓ \\ \t"])
    _old_append(db, "a", 2, [])  # an empty batch still counts for the resume point
    _old_append(db, "a", None, ["a old 3"])
    _old_append(db, "b", 0, ["b0"])
    db.execute("PRAGMA user_version = 2")
    db.close()


async def test_a_version_2_file_keeps_every_line_in_order_and_the_resume_point(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    _version_2_file(path)
    async with open_sqlite_store(path) as store:
        a_lines = ["a0", "a0 'quoted' \"line\" ✓ \\ \t", "a1 x", "a1 y", "a old 1", "a old 2", "a old 3"]
        assert await store.output("a") == a_lines
        assert await store.output("b") == ["b0", "b1"]
        assert await store.output("a", tail=4) == a_lines[-4:]
        assert await store.output_line_count("a") == 7
        assert await store.last_seq("a") == 2
        assert await store.last_seq("b") == 1
        # Appends after the upgrade: a repeat is still refused, a seq-less one comes last.
        assert not await store.append_output("a", 1, ["again"])
        assert await store.append_output("a", None, ["a old 4"])
        assert await store.append_output("a", 3, ["a3"])
        assert await store.output("a") == ["a0", "a0 'quoted' \"line\" ✓ \\ \t", "a1 x", "a1 y", "a3", "a old 1", "a old 2", "a old 3", "a old 4"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "output_lines" not in tables and "batches" not in tables
    assert "transcripts" in tables  # version 4


async def test_tails_span_batches_and_stop_at_the_start(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        for seq in range(5):
            await store.append_output("j", seq, [f"{seq}.{n}" for n in range(3)])
        assert await store.output("j", tail=1) == ["4.2"]
        assert await store.output("j", tail=4) == ["3.2", "4.0", "4.1", "4.2"]
        assert await store.output("j", tail=100) == [f"{s}.{n}" for s in range(5) for n in range(3)]
        assert await store.output("j", tail=0) == []
        assert await store.output("nobody", tail=3) == []
