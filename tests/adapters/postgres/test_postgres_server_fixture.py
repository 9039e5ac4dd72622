"""tests/postgres_server.py without a server: a failure under CI=true (never a silent skip),
elsewhere a skip that says how to get one."""

from __future__ import annotations

import pytest

import postgres_server as server_module
from postgres_server import INSTALL_COMMAND, PostgresServer, require, start_server


def no_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "find_bin_dir", lambda: None)
    monkeypatch.setattr(server_module, "_install_under_ci", lambda: "")


def test_without_postgresql_the_reason_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    no_programs(monkeypatch)
    reason = start_server()
    assert isinstance(reason, str) and INSTALL_COMMAND in reason


def test_without_a_server_tests_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and no PostgreSQL server"):
        require(f"install it: {INSTALL_COMMAND}")


def test_without_a_server_tests_skip_elsewhere_saying_how_to_run_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y postgresql"):
        require(f"install it: {INSTALL_COMMAND}")


def test_the_session_server_listens_on_a_unix_socket_only(postgres_server: PostgresServer | str) -> None:
    import psycopg

    server = require(postgres_server)
    with psycopg.connect(server.url(), autocommit=True) as db:
        assert db.execute("SHOW listen_addresses").fetchone() == ("",)
        assert db.execute("SHOW fsync").fetchone() == ("off",)
        assert db.execute("SELECT current_user").fetchone() == ("postgres",)
    assert server.socket_dir.is_relative_to(server.root)
