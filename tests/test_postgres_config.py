"""OPENDISPATCH_DB as a PostgreSQL URL: its password never reaches repr(config), logs or
`doctor`, and `doctor` checks the server takes a connection."""

from __future__ import annotations

import io
import logging

import pytest

from opendispatch.adapters.postgres.url import is_postgres_url, redact_url, url_passwords
from opendispatch.config import Config
from opendispatch.doctor import report
from opendispatch.domain.redaction import Redactor
from opendispatch.logs import configure_logging

URL = "postgresql://od:s3cret-pass@db.internal:5432/opendispatch?sslmode=require"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, "postgresql://od:***@db.internal:5432/opendispatch?sslmode=require"),
        ("postgres://od:p%40ss%2Fword@db/od", "postgres://od:***@db/od"),
        ("postgresql://od@db/od?password=qs-secret-1&sslmode=verify-full", "postgresql://od@db/od?password=***&sslmode=verify-full"),
        ("postgresql://db/od", "postgresql://db/od"),
        ("postgresql:///od?host=/run/postgresql", "postgresql:///od?host=/run/postgresql"),
        (".opendispatch/jobs.db", ".opendispatch/jobs.db"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_passwords_of_a_url_as_written_and_decoded() -> None:
    assert url_passwords(URL) == ("s3cret-pass",)
    assert url_passwords("postgres://od:p%40ss%2Fword@db/od") == ("p%40ss%2Fword", "p@ss/word")
    assert url_passwords("postgresql://od@db/od?sslmode=require&password=qs%2Bsecret") == ("qs%2Bsecret", "qs+secret")
    assert url_passwords("postgresql://od@db/od") == ()
    assert url_passwords("/var/lib/od/jobs.db") == ()
    assert is_postgres_url("PostgreSQL://x/y") and is_postgres_url("postgres://x") and not is_postgres_url("jobs.db")


def test_the_password_is_not_in_repr_and_is_redacted_from_logs() -> None:
    config = Config.from_env({"OPENDISPATCH_DB": URL}, dotenv=None)
    assert config.database_path == URL  # the store gets the real URL
    assert "s3cret-pass" not in repr(config)
    assert "postgresql://od:***@db.internal:5432/opendispatch" in repr(config)
    assert "s3cret-pass" in config.secret_values
    stream = io.StringIO()
    handler = configure_logging(verbose=True, redactor=Redactor.of(config.secret_values), stream=stream, json_lines=False)
    try:
        logging.getLogger("opendispatch.test").warning("cannot reach %s", URL)
    finally:
        logging.getLogger().removeHandler(handler)
    assert "s3cret-pass" not in stream.getvalue() and "od:***@db.internal" in stream.getvalue()


def test_a_sqlite_path_is_shown_as_before() -> None:
    config = Config.from_env({"OPENDISPATCH_DB": "/var/lib/od/jobs.db"}, dotenv=None)
    assert "database_path='/var/lib/od/jobs.db'" in repr(config)


def with_password(postgres_url: str, database: str | None = None) -> str:
    """The test server's URL with a password in it (the server trusts local connections, so a
    password is accepted and ignored)."""
    url = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:doctor-pw-9876@", 1)
    if database is not None:
        path, query = url.split("?", 1)
        url = f"{path.rsplit('/', 1)[0]}/{database}?{query}"
    return url


def test_doctor_connects_to_the_database_and_never_prints_its_password(postgres_url: str) -> None:
    lines, status = report({"WEBHOOK_PORT": "0", "OPENDISPATCH_DB": with_password(postgres_url)})
    text = "\n".join(lines)
    assert "doctor-pw-9876" not in text
    assert status == 0, text
    assert "✓ database postgresql://postgres:***@/" in text and "accepts connections" in text
    assert "OPENDISPATCH_DB" in text and "set: postgresql://postgres:***@/" in text
    assert "✓ dispatchers sharing this database: one leads" in text and "within 10s (OPENDISPATCH_LEASE_S)" in text


def test_doctor_says_why_it_cannot_connect_without_the_password(postgres_url: str) -> None:
    lines, status = report({"WEBHOOK_PORT": "0", "OPENDISPATCH_DB": with_password(postgres_url, "no_such_db")})
    text = "\n".join(lines)
    assert status == 1
    assert "doctor-pw-9876" not in text
    failed = [line for line in lines if line.startswith("✗ cannot connect to the database")]
    assert len(failed) == 1 and "no_such_db" in failed[0] and "does not exist" in failed[0], text


def test_a_password_with_unencoded_slashes_and_ats_is_still_hidden_whole() -> None:
    url = "postgresql://od:a/b@c@db.internal/od?sslmode=require#x"
    assert redact_url(url) == "postgresql://od:***@db.internal/od?sslmode=require#x"
    assert url_passwords(url) == ("a/b@c",)
