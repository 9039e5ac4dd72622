"""Where a job's short-lived repository token comes from (a GitHub App in production)."""

from __future__ import annotations

from typing import Protocol

from ..domain.repo_credentials import GitHubRepo, RepoToken


class RepoTokenMinter(Protocol):
    async def mint(self, repo: GitHubRepo) -> RepoToken:
        """A new token for `repo` alone, with the configured permissions.

        Raises `CredentialsUnavailable` with a message the job's owner can act on (the app
        is not installed on that repository, its key is refused, the API is unreachable).
        """
        ...
