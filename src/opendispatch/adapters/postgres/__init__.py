"""The job store on PostgreSQL (`OPENDISPATCH_DB=postgresql://...`).

Importing this package does not import psycopg: opening a store does (the `postgres` extra).
"""

from .store import PostgresJobStore, check_connection, open_postgres_store
from .url import is_postgres_url, redact_url, url_passwords

__all__ = ["PostgresJobStore", "check_connection", "is_postgres_url", "open_postgres_store", "redact_url", "url_passwords"]
