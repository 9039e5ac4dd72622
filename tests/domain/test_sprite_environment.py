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
