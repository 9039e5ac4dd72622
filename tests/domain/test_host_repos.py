"""Repositories on the dispatcher's own disk are refused unless the operator allows them by path.

A local sprite clones `--repo /path` or `file:///path` from the machine the dispatcher runs
on; the access policy's `host_repos` decides which paths (issue #20).
"""

from __future__ import annotations

import pytest

from opendispatch.domain.access import AccessPolicy, host_repo_patterns
from opendispatch.domain.errors import NotAllowed
from opendispatch.domain.job_spec import AgentKind, JobSpec, host_repo_path, validate_repo


def spec(repo: str | None) -> JobSpec:
    return JobSpec(task="t", agent=AgentKind.SHELL, repo=validate_repo(repo) if repo else None)


@pytest.mark.parametrize(
    ("repo", "path"),
    [
        ("/srv/git/api", "/srv/git/api"),
        ("/srv/git/../../etc/x", "/etc/x"),
        ("/srv/git/./api/", "/srv/git/api"),
        ("file:///srv/git/api", "/srv/git/api"),
        ("file://localhost/srv/git/api", "/srv/git/api"),
        ("file:///srv/git/%2e%2e/secret", "/srv/secret"),
        ("file://otherhost/srv/x", "//otherhost/srv/x"),
        ("./api", "./api"),
        ("../other-sprite", "../other-sprite"),
        ("~/api", "~/api"),
        ("acme/api", None),
        ("https://github.com/acme/api.git", None),
        ("git@github.com:acme/api.git", None),
    ],
)
def test_host_repo_path_names_the_path_a_local_clone_would_read(repo: str, path: str | None) -> None:
    assert host_repo_path(repo) == path


STRICT = AccessPolicy(host_repos=frozenset({"/srv/git/*", "file:///opt/mirrors/*"}))


@pytest.mark.parametrize("repo", ["/srv/git/api", "file:///srv/git/api", "/opt/mirrors/x", "file:///opt/mirrors/x"])
def test_allowed_host_paths_pass(repo: str) -> None:
    STRICT.check_spec(spec(repo), default_image=None)


@pytest.mark.parametrize(
    "repo",
    ["/etc", "/srv/git/../secret", "file:///srv/git/%2e%2e/secret", "./x", "../other", "~/x",
     "file://otherhost/srv/git/x", "//srv/git/x", "/srv/gitx/y"],
)
def test_other_host_paths_are_refused_even_with_dot_dot_or_escapes(repo: str) -> None:
    with pytest.raises(NotAllowed, match="path on the dispatcher's own machine"):
        STRICT.check_spec(spec(repo), default_image=None)


def test_an_empty_host_list_refuses_every_host_path_and_leaves_remote_repos_to_the_repo_list() -> None:
    policy = AccessPolicy(host_repos=frozenset(), repos=frozenset({"*"}))
    with pytest.raises(NotAllowed, match="Use owner/repo or a git URL"):
        policy.check_spec(spec("/srv/git/api"), default_image=None)  # `*` never admits a host path
    policy.check_spec(spec("acme/api"), default_image=None)
    policy.check_spec(spec("https://example.com/x.git"), default_image=None)


def test_without_a_host_rule_host_paths_count_as_any_repo() -> None:
    """Embedders and the console (the user is the operator) keep cloning local paths."""
    AccessPolicy().check_spec(spec("/tmp/project"), default_image=None)
    with pytest.raises(NotAllowed, match="is not allowed here"):
        AccessPolicy(repos=frozenset({"acme/*"})).check_spec(spec("/tmp/project"), default_image=None)


def test_the_path_patterns_of_an_allowlist_make_the_host_rule() -> None:
    patterns = frozenset({"acme/*", "*", "/srv/git/*", "file:///opt/*", "https://git.example.com/*"})
    assert host_repo_patterns(patterns) == frozenset({"/srv/git/*", "file:///opt/*"})
