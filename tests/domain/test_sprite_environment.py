"""What a sprite is told: `--max-cost` reaches it as MAX_COST_USD (Claude Code's own budget)."""

from __future__ import annotations

from opendispatch.domain.job import Conversation, Job, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.sidecar import session_sprite_environment, sprite_environment


def test_a_cost_cap_reaches_the_sprite_of_a_job_and_of_a_persistent_session() -> None:
    spec = JobSpec(task="fix it", agent=AgentKind.CLAUDE, max_cost_usd=2.5)
    job = Job.queued("j-00000001", spec, Conversation("memory", "c"), User("u", "alice"), at=0.0)
    env = sprite_environment(job, token="t", callback_url="http://127.0.0.1:1/", passthrough={})
    assert env["MAX_COST_USD"] == "2.5"
    uncapped = Job.queued("j-00000002", JobSpec(task="x", agent=AgentKind.CLAUDE), job.conversation, job.requested_by, at=0.0)
    assert "MAX_COST_USD" not in sprite_environment(uncapped, token="t", callback_url="http://x", passthrough={})
    session = session_sprite_environment(
        session_id="s-1", token="t", agent="claude", agent_session_id="a", repo=None, branch="main",
        callback_url="http://x", passthrough={}, max_cost_usd=0.75,
    )
    assert session["MAX_COST_USD"] == "0.75"


def test_the_sidecar_is_told_the_names_of_every_passed_through_secret_never_their_values() -> None:
    job = Job.queued("j-00000001", JobSpec(task="x", agent=AgentKind.CLAUDE), Conversation("memory", "c"), User("u", "a"), at=0.0)
    passthrough = {"DATABASE_URL": "postgres://u:pw@db/x", "MY_API_KEY": "k-123456", "ANTHROPIC_MODEL": "m", "EMPTY": ""}
    env = sprite_environment(job, token="t", callback_url="http://x", passthrough=passthrough)
    assert env["OPENDISPATCH_SECRET_NAMES"] == "DATABASE_URL,MY_API_KEY"  # the model's name is no secret
    session = session_sprite_environment(
        session_id="s-1", token="t", agent="claude", agent_session_id="a", repo=None, branch="main",
        callback_url="http://x", passthrough=passthrough,
    )
    assert session["OPENDISPATCH_SECRET_NAMES"] == "DATABASE_URL,MY_API_KEY"
    assert "OPENDISPATCH_SECRET_NAMES" not in sprite_environment(job, token="t", callback_url="http://x", passthrough={})
