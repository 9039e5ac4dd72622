"""A channel's defaults (`/od-config`, issue #22): anyone reads them, admins change them, they
survive a restart, flags win, and the first reply says which values came from the channel."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ALICE, BOB, CHANNEL, open_harness
from opendispatch.config import Config
from opendispatch.domain.channel_settings import ChannelSettings, check_value
from opendispatch.domain.commands import ParseSettings, RunJob, parse_command, with_channel_defaults
from opendispatch.domain.errors import UsageError
from opendispatch.domain.job import Conversation
from opendispatch.domain.job_spec import AgentKind
from opendispatch.domain.messages import JobAccepted

ADMIN_IS_ALICE = Config.from_env({"OPENDISPATCH_ADMIN_USERS": ALICE.id}, dotenv=None)


def test_flags_win_and_the_spec_says_what_came_from_the_channel() -> None:
    settings = ParseSettings(default_agent=AgentKind.CLAUDE, images={"py": "registry.fly.io/a/py:1"})
    channel = ChannelSettings(
        {"repo": "acme/api", "agent": "opencode", "timeout": "30m", "model": "anthropic/claude-sonnet-4-5", "image": "py"}
    )
    text = '/od-run --agent shell "run the tests"'
    command = parse_command(text, settings)
    assert isinstance(command, RunJob)
    resolved = with_channel_defaults(text, command, settings, channel)
    spec = resolved.spec
    assert (spec.repo, spec.agent, spec.timeout_s, spec.model) == ("acme/api", AgentKind.SHELL, 1800.0, "anthropic/claude-sonnet-4-5")
    assert spec.image == "registry.fly.io/a/py:1"
    assert spec.from_channel == ("repo acme/api", "image py", "model anthropic/claude-sonnet-4-5", "timeout 30m")
    assert "channel defaults: repo acme/api" in spec.summary()
    typed = with_channel_defaults('/od-run -r acme/web --timeout 5m "x"', parse_command('/od-run -r acme/web --timeout 5m "x"', settings), settings, channel)
    assert typed.spec.repo == "acme/web" and typed.spec.timeout_s == 300.0
    assert not any(item.startswith(("repo", "timeout")) for item in typed.spec.from_channel)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("repo", "--upload-pack=x", "Bad repository"),
        ("agent", "gpt", "agent"),
        ("timeout", "3 days", "Bad timeout"),
        ("max-cost", "-1", "Bad cost cap"),
        ("model", "-rf", "Bad model"),
        ("colour", "blue", "Unknown setting"),
        ("approvals", "maybe", "Bad approvals"),
        ("approvals", "ask Bash(git push*", "Bad rule"),
        ("approval-timeout", "forever", "Bad timeout"),
    ],
)
def test_a_bad_setting_gets_a_one_line_error(key: str, value: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as caught:
        check_value(key, value)
    assert "\n" not in str(caught.value)


async def test_admins_set_anyone_reads_and_jobs_take_the_defaults() -> None:
    async with open_harness(config=ADMIN_IS_ALICE) as h:
        await h.say("/od-config set repo acme/api", BOB)
        assert h.notices()[-1].startswith("Only an Open-Dispatch admin")
        await h.say("/od-config set repo acme/api", ALICE)
        await h.say("/od-config set agent shell", ALICE)
        await h.say("/od-config set max-cost $2.50", ALICE)
        assert h.notices()[-1] == "This channel's max-cost is now 2.5. Flags on a command still win."
        await h.say("/od-config", BOB)
        shown = h.notices()[-1]
        rows = {line.split()[0]: " ".join(line.split()[1:]) for line in shown.splitlines()[1:] if line.strip()}
        assert rows["repo"] == "acme/api" and rows["agent"] == "shell" and rows["model"] == "(not set)"
        assert "Last changed by alice." in shown

        job = await h.run('/od-run "make test"', BOB)
        assert (job.spec.repo, job.spec.agent, job.spec.max_cost_usd) == ("acme/api", AgentKind.SHELL, 2.5)
        accepted = next(s.message for s in h.chat.sent if isinstance(s.message, JobAccepted))
        assert "channel defaults: repo acme/api, agent shell, max-cost 2.5" in h.chat.transcript()
        assert accepted.job.spec.from_channel == ("repo acme/api", "agent shell", "max-cost 2.5")

        flagged = await h.run('/od-run -r acme/web -a shell "x"', BOB)
        assert flagged.spec.repo == "acme/web"

        elsewhere = await h.run('/od-run -a shell "x"', BOB, Conversation("memory", "another-channel"))
        assert elsewhere.spec.repo is None and elsewhere.spec.from_channel == ()

        await h.say("/od-config unset repo", ALICE)
        job = await h.run('/od-run "x"', BOB)
        assert job.spec.repo is None and job.spec.agent is AgentKind.SHELL


async def test_settings_survive_a_restart(tmp_path: Path) -> None:
    from opendispatch.adapters.sqlite import open_sqlite_store

    async with open_sqlite_store(tmp_path / "jobs.db") as store, open_harness(config=ADMIN_IS_ALICE, store=store) as h:
        await h.say("/od-config set branch develop", ALICE)
    async with open_sqlite_store(tmp_path / "jobs.db") as store:
        assert (await store.channel_settings(f"{CHANNEL.platform}:{CHANNEL.channel}")).values == {"branch": "develop"}
        async with open_harness(config=ADMIN_IS_ALICE, store=store) as h:
            job = await h.run('/od-run -a shell "x"', BOB)
            assert job.spec.branch == "develop" and job.spec.from_channel == ("branch develop",)


async def test_the_model_reaches_the_sprite_from_the_flag_or_the_channel() -> None:
    async with open_harness(config=ADMIN_IS_ALICE) as h:
        job = await h.run('/od-run -a claude --model claude-sonnet-4-5 "x"', BOB)
        _, request = await h.sprites.wait_for_spawn()
        assert job.spec.model == "claude-sonnet-4-5" and request.env["AGENT_MODEL"] == "claude-sonnet-4-5"
        assert "claude (claude-sonnet-4-5)" in job.spec.summary()
        await h.say("/od-run --model -rf x", BOB)
        assert h.notices()[-1].startswith("Bad model")
        await h.say("/od-config set model anthropic/claude-haiku-4-5", ALICE)
        await h.say("/od-start work --agent opencode --persistent", BOB)
        _, request = await h.sprites.wait_for_spawn()
        assert request.env["AGENT_MODEL"] == "anthropic/claude-haiku-4-5"
