"""The durable job store on SQLite."""

from .store import SqliteJobStore, open_sqlite_store

__all__ = ["SqliteJobStore", "open_sqlite_store"]
