"""Issue #20: what a chat user may name as a repository or an image."""

from __future__ import annotations

import pytest

from opendispatch.config import Config
from opendispatch.domain.access import AccessPolicy
from opendispatch.domain.errors import NotAllowed, UsageError
from opendispatch.domain.job_spec import AgentKind, JobSpec, validate_repo

SLACK = {"CHAT_PROVIDER": "slack", "SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_APP_TOKEN": "xapp-1-abc"}


@pytest.mark.parametrize(
    "url", ["https://ghp_SECRET0123456789@github.com/acme/api.git", "https://x-access-token:SECRETTOKEN@github.com/a/b", "ssh://me:SECRETPW@host/x.git"]
)
def test_a_repository_url_with_credentials_is_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(UsageError) as refused:
        validate_repo(url)
    assert "SECRET" not in str(refused.value) and "carries credentials" in str(refused.value)


@pytest.mark.parametrize("url", ["ssh://git@github.com/acme/api.git", "git@github.com:acme/api.git", "https://github.com/acme/a..b.git"])
def test_ssh_user_names_and_dots_inside_names_are_fine(url: str) -> None:
    assert validate_repo(url) == url


@pytest.mark.parametrize(
    "url", ["https://github.com/acme/../other/x.git", "https://github.com/acme/%2E%2e/other/x.git", "git@github.com:acme/../x.git"]
)
def test_dot_dot_segments_cannot_walk_out_of_an_allowlisted_owner(url: str) -> None:
    with pytest.raises(UsageError, match=r"may not contain '\.\.' segments"):
        validate_repo(url)


def test_shared_chat_without_an_image_allowlist_takes_only_the_default_and_the_aliases() -> None:
    config = Config.from_env({**SLACK, "SPRITE_IMAGES": '{"py": "registry.fly.io/acme/py:1"}'}, dotenv=None)
    policy = config.access
    assert policy.known_images == frozenset({"registry.fly.io/acme/py:1"})
    policy.check_spec(JobSpec(task="x", agent=AgentKind.SHELL, image="registry.fly.io/acme/py:1"), default_image="d:1")
    policy.check_spec(JobSpec(task="x", agent=AgentKind.SHELL, image=None), default_image="d:1")
    policy.check_spec(JobSpec(task="x", agent=AgentKind.SHELL, image="d:1"), default_image="d:1")
    with pytest.raises(NotAllowed, match="Image docker.io/evil/x:1 is not allowed here: use the default image or an alias"):
        policy.check_spec(JobSpec(task="x", agent=AgentKind.SHELL, image="docker.io/evil/x:1"), default_image="d:1")
    assert Config.from_env({}, dotenv=None).access.known_images is None  # the console: any image
    allowlisted = AccessPolicy(images=frozenset({"docker.io/evil/*"}), known_images=frozenset())
    allowlisted.check_spec(JobSpec(task="x", agent=AgentKind.SHELL, image="docker.io/evil/x:1"), default_image=None)
