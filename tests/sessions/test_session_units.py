"""The session value, its stores, the sidecar's session argv and state handover, and reconciliation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import harness  # noqa: F401  (puts sidecar/src on sys.path)
from sprite_reporter import agent_state, agents
from opendispatch.adapters.memory.sprites import FakeSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.memory.store import MemoryJobStore
from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.domain.session import UnknownSession
from opendispatch.adapters.sqlite.store import SCHEMA_VERSION
from opendispatch.app.ledger import JobLedger
from opendispatch.app.reconcile import reconcile
from opendispatch.domain.errors import UsageError
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.session import (
    InvalidSessionMove,
    Session,
    SessionState,
    UnknownSession,
    validate_session_agent,
)
from opendispatch.ports.session_store import SessionStore
from opendispatch.ports.sprites import SpriteRequest

UUID = "123e4567-e89b-12d3-a456-426614174000"
ROOM = Conversation("slack", "C1")


def new_session(persistent: bool = True, session_id: str = "s-0000000a") -> Session:
    return Session.begin(
        session_id=session_id,
        name="work",
        spec=JobSpec(task="", agent=AgentKind.CLAUDE),
        persistent=persistent,
        conversation=ROOM,
        owner=User("u1", "alice"),
        agent_session_id=UUID,
        at=100.0,
    )




# --- the state machine ------------------------------------------------------------------------


def test_messages_run_one_at_a_time_in_order_and_the_rest_queue() -> None:
    session = new_session()
    assert session.state is SessionState.STARTING
    session, ahead = session.submit("j-00000001", at=101.0)
    assert ahead == 0 and session.next_job() is None  # its sprite is not up yet
    session = session.ready("sprite-1", at=102.0)
    session, ahead = session.submit("j-00000002", at=103.0)
    assert ahead == 1 and session.message_count == 2
    session = session.begin_next(at=104.0)
    assert session.state is SessionState.BUSY and session.current_job == "j-00000001"
    assert session.next_job() is None and session.waiting == 2
    session = session.finished("j-00000002", at=105.0)  # not the running one: nothing changes
    assert session.current_job == "j-00000001"
    session = session.finished("j-00000001", at=106.0).begin_next(at=106.0)
    assert session.current_job == "j-00000002" and session.queue == ()
    session = session.finished("j-00000002", at=107.0)
    assert session.state is SessionState.IDLE and session.idle_for(110.0) == 3.0


def test_suspend_wake_and_stop() -> None:
    session = new_session().ready("sprite-1", at=100.0).suspended()
    assert session.state is SessionState.SUSPENDED
    with pytest.raises(InvalidSessionMove):
        session.suspended()
    session, _ = session.submit("j-00000001", at=101.0)
    assert session.next_job() == "j-00000001"  # the supervisor wakes the sprite first
    assert session.woken().state is SessionState.IDLE
    running = session.woken().begin_next(at=102.0)
    running, _ = running.submit("j-00000002", at=103.0)
    stopped, unfinished = running.stopped("stopped by alice", at=104.0)
    assert unfinished == ("j-00000001", "j-00000002") and stopped.state is SessionState.STOPPED
    assert stopped.queue == () and stopped.stopped_reason == "stopped by alice"
    with pytest.raises(UnknownSession):
        stopped.submit("j-00000003", at=105.0)
    with pytest.raises(InvalidSessionMove):
        stopped.stopped("again", at=106.0)


def test_routing_is_by_conversation_or_the_started_message_thread() -> None:
    session = new_session().with_thread("1700.01")
    assert session.routes(ROOM)
    assert session.routes(Conversation("slack", "C1", "1700.01"))
    assert not session.routes(Conversation("slack", "C1", "1700.99"))
    assert not session.routes(Conversation("slack", "C2"))


def test_shell_sessions_need_the_operator() -> None:
    shell = JobSpec(task="", agent=AgentKind.SHELL)
    with pytest.raises(UsageError, match="OPENDISPATCH_ALLOW_SHELL_SESSIONS"):
        validate_session_agent(shell, allow_shell=False)
    validate_session_agent(shell, allow_shell=True)
    validate_session_agent(JobSpec(task="", agent=AgentKind.CLAUDE), allow_shell=False)


# --- stores (the SessionStore contract over every store: tests/contracts/test_session_store.py) ---


async def test_the_sqlite_store_migrates_a_version_1_file_and_keeps_sessions_in_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE jobs (id TEXT PRIMARY KEY, created_at REAL, state TEXT, user_id TEXT, body TEXT);")
    old.execute("PRAGMA user_version = 1")
    old.close()
    session = new_session(session_id="s-00000001")
    async with open_sqlite_store(path) as store:
        assert isinstance(store, SessionStore)
        await store.add_session(session)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    async with open_sqlite_store(path) as store:
        assert await store.get_session(session.id) == session
        assert [s.id for s in await store.live_sessions()] == [session.id]


# --- the sidecar's side -------------------------------------------------------------------------


def test_session_argv_follows_the_documented_flags() -> None:
    claude = ["claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
    opencode = ["opencode", "run", "--format", "json"]
    assert agents.session_agent_argv("claude", "fix it", UUID, False) == [*claude, "--session-id", UUID, "--", "fix it"]
    assert agents.session_agent_argv("claude", "go on", UUID, True) == [*claude, "--resume", UUID, "--", "go on"]
    assert agents.session_agent_argv("claude", "go", UUID, True, "2.5")[-6:-4] == ["--max-budget-usd", "2.5"]
    assert agents.session_agent_argv("opencode", "fix it", UUID, False) == [*opencode, "--", "fix it"]
    assert agents.session_agent_argv("opencode", "$(x)", UUID, True) == [*opencode, "--continue", "--", "$(x)"]
    # the id OpenCode reported, not a guess
    assert agents.session_agent_argv("opencode", "go", "ses_9", True) == [*opencode, "--session", "ses_9", "--", "go"]
    assert agents.session_agent_argv("shell", "ls -la", UUID, True)[-2:] == ["--", "ls -la"]


def test_the_claude_conversation_moves_to_the_new_sprites_working_directory(tmp_path: Path) -> None:
    old_home, new_home = tmp_path / "a", tmp_path / "b"
    folder = old_home / ".claude" / "projects" / agent_state.claude_project_dir("/old/work/repo")
    folder.mkdir(parents=True)
    (folder / f"{UUID}.jsonl").write_text('{"prompt": "one"}\n')
    (old_home / ".claude" / ".credentials.json").write_text("secret")
    blob = agent_state.pack_agent_state("claude", str(old_home))
    assert blob is not None
    assert not agent_state.has_conversation("claude", str(new_home), UUID)
    agent_state.restore_agent_state(blob, "claude", str(new_home), "/new/work/repo", UUID)
    moved = new_home / ".claude" / "projects" / agent_state.claude_project_dir("/new/work/repo") / f"{UUID}.jsonl"
    assert moved.read_text() == '{"prompt": "one"}\n'
    assert agent_state.has_conversation("claude", str(new_home), UUID)
    assert not (new_home / ".claude" / ".credentials.json").exists()  # credentials never travel


# --- reconciliation -----------------------------------------------------------------------------


async def test_reconcile_keeps_live_session_sprites_and_destroys_ended_ones() -> None:
    store, sprites = MemoryJobStore(), FakeSprites()
    live = await sprites.spawn(SpriteRequest(job_id="s-00000001", image=None, env={}))
    ended = await sprites.spawn(SpriteRequest(job_id="s-00000002", image=None, env={}))
    report = await reconcile(
        store=store, ledger=JobLedger(store), sprites=sprites, chat=MemoryChat(), wall_clock=lambda: 0.0,
        sessions=["s-00000001"],
    )
    assert report.destroyed == (ended.id,)
    assert sprites.destroyed == [ended.id] and live.id in sprites.live
