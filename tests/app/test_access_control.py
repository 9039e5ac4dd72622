"""Allowlists and the per-user job limit, through the Dispatcher and from configuration."""

from __future__ import annotations

import pytest

from harness import ALICE, BOB, open_harness
from opendispatch.config import Config
from opendispatch.domain.access import AccessPolicy
from opendispatch.domain.errors import ConfigError, NotAllowed
from opendispatch.domain.job import Conversation, User
from opendispatch.domain.job_spec import AgentKind, JobSpec
from opendispatch.domain.messages import JobAccepted


def config(**env: str) -> Config:
    return Config.from_env(env, dotenv=None)


async def test_users_not_on_the_list_are_refused_with_a_clear_message_and_nothing_runs() -> None:
    async with open_harness(config=config(OPENDISPATCH_ALLOWED_USERS=ALICE.id)) as h:  # ids, never names
        await h.say('/od-run -a shell "x"', BOB)
        assert "not on this Open-Dispatch's list of allowed users" in h.notices()[-1]
        assert h.sprites.spawned == []
        await h.say("/od-help", BOB)  # help stays open to everyone
        assert "od-run" in h.notices()[-1]
        await h.run('/od-run -a shell "x"', ALICE)


async def test_channels_repos_and_images_allowlists() -> None:
    env = config(
        OPENDISPATCH_ALLOWED_CHANNELS="c1",
        OPENDISPATCH_ALLOWED_REPOS="acme/*",
        OPENDISPATCH_ALLOWED_IMAGES="registry.fly.io/acme/*",
        SPRITE_IMAGES='{"py": "registry.fly.io/acme/py:1", "evil": "docker.io/evil/x:1"}',
    )
    async with open_harness(config=env) as h:
        await h.say('/od-run -a shell -r other/repo "x"')
        assert "Repository other/repo is not allowed" in h.notices()[-1]
        await h.say('/od-run -a shell -r acme/api -i evil "x"')
        assert "Image docker.io/evil/x:1 is not allowed" in h.notices()[-1]
        await h.say('/od-run -a shell -r acme/api -i py "x"', ALICE, Conversation("memory", "elsewhere"))
        assert "not enabled in this channel" in h.notices()[-1]
        job = await h.run('/od-run -a shell -r acme/api -i py "x"')
        assert job.spec.image == "registry.fly.io/acme/py:1"
        assert len(h.sprites.spawned) <= 1


async def test_a_user_cannot_exceed_the_active_job_limit_but_others_can_still_run() -> None:
    async with open_harness(config=config(OPENDISPATCH_MAX_JOBS_PER_USER="2")) as h:
        await h.run('/od-run -a shell "1"')
        await h.run('/od-run -a shell "2"')
        await h.say('/od-run -a shell "3"')
        assert "already have 2 job(s) running (the limit is 2)" in h.notices()[-1]
        await h.run('/od-run -a shell "b"', BOB)
        accepted = [s for s in h.chat.sent if isinstance(s.message, JobAccepted)]
        assert len(accepted) == 3


def test_policy_matches_ids_or_names_and_empty_lists_are_open() -> None:
    open_policy = AccessPolicy()
    open_policy.check_user(User("U1", "anyone"), Conversation("slack", "C1"))
    open_policy.check_spec(JobSpec(task="x", agent=AgentKind.SHELL, repo="a/b"), default_image=None)
    policy = AccessPolicy(users=frozenset({"U1"}), images=frozenset({"img:*"}))
    policy.check_user(User("U1", "someone"), Conversation("slack", "C1"))
    with pytest.raises(NotAllowed):
        policy.check_user(User("U2", "someone"), Conversation("slack", "C1"))
    with pytest.raises(NotAllowed):
        policy.check_spec(JobSpec(task="x", agent=AgentKind.SHELL), default_image="other:1")


def test_bad_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENDISPATCH_MAX_JOBS_PER_USER"):
        config(OPENDISPATCH_MAX_JOBS_PER_USER="lots")
    assert config(OPENDISPATCH_MAX_JOBS_PER_USER="0").access.max_active_jobs_per_user is None
    assert config().access.max_active_jobs_per_user == 5
