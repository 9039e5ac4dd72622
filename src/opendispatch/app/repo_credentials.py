"""Each job's short-lived repository token: minted before its sprite starts, handed to the sprite
on request, renewed near expiry, forgotten when the job ends.

Where the token is at each moment: minted here (the GitHub App's key never leaves the
dispatcher), kept in this object's memory only, sent in the body of the answer to the
sprite's authenticated `POST /webhooks/credentials`, kept by the sidecar's credential broker
and given to git through a credential helper. Never in the store, a URL, the sprite's
environment or machine configuration, a log line or chat (each token is added to the job's
redactor as it is minted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from ..domain.job import Job
from ..domain.repo_credentials import (
    DEFAULT_RENEW_MARGIN_S,
    GITHUB_SERVER_URL,
    CredentialsUnavailable,
    GitHubRepo,
    NoRepoCredentials,
    RepoToken,
    github_repo_of,
)
from ..ports.repo_credentials import RepoTokenMinter

log = logging.getLogger(__name__)

#: Sprite environment: the git server whose credentials the sidecar asks the dispatcher for
#: (not a secret; its presence says "ask", the sidecar's contract in sprite_reporter/__init__.py).
GIT_CREDENTIALS_ENV = "OPENDISPATCH_GIT_CREDENTIALS"
RENEW_ENV = "OPENDISPATCH_CREDENTIAL_RENEW_S"


class JobCredentials:
    def __init__(
        self,
        minter: RepoTokenMinter,
        *,
        wall_clock: Callable[[], float],
        server_url: str = GITHUB_SERVER_URL,
        renew_margin_s: float = DEFAULT_RENEW_MARGIN_S,
    ) -> None:
        self.minter = minter
        self.wall_clock = wall_clock
        self.server_url = server_url.rstrip("/")
        self.renew_margin_s = renew_margin_s
        self._tokens: dict[str, tuple[GitHubRepo, RepoToken]] = {}
        self._minting: dict[str, trio.Lock] = {}

    def repo_of(self, job: Job) -> GitHubRepo | None:
        return github_repo_of(job.spec.repo, self.server_url)

    def sprite_environment(self, job: Job) -> dict[str, str]:
        """What tells the sidecar to ask for credentials (nothing secret)."""
        if self.repo_of(job) is None:
            return {}
        return {GIT_CREDENTIALS_ENV: self.server_url, RENEW_ENV: f"{self.renew_margin_s:g}"}

    async def prepare(self, job: Job) -> RepoToken | None:
        """Mint the job's first token before a sprite is spent on it (None: it needs none).

        Raises `CredentialsUnavailable` (the job fails at the credentials stage). Whoever
        gets a token adds it to the job's redactor.
        """
        repo = self.repo_of(job)
        return None if repo is None else await self._mint(job.id, repo)

    async def current(self, job: Job) -> RepoToken:
        """The job's token, renewed when it is near expiry (`NoRepoCredentials`, `CredentialsUnavailable`)."""
        repo = self.repo_of(job)
        if repo is None:
            raise NoRepoCredentials()
        held = self._tokens.get(job.id)
        if held is not None and not held[1].needs_renewal(self.wall_clock(), self.renew_margin_s):
            return held[1]
        return await self._mint(job.id, repo)

    def forget(self, job_id: str) -> None:
        self._tokens.pop(job_id, None)
        self._minting.pop(job_id, None)

    async def _mint(self, job_id: str, repo: GitHubRepo) -> RepoToken:
        lock = self._minting.setdefault(job_id, trio.Lock())
        async with lock:  # two git commands asking at once get one new token
            held = self._tokens.get(job_id)
            if held is not None and not held[1].needs_renewal(self.wall_clock(), self.renew_margin_s):
                return held[1]
            token = await self.minter.mint(repo)
            self._tokens[job_id] = (repo, token)
            log.info(
                "minted a repository token for %s (job %s), valid %d s",
                repo.full_name,
                job_id,
                int(token.expires_at - self.wall_clock()),
            )
            return token


__all__ = ["CredentialsUnavailable", "GIT_CREDENTIALS_ENV", "JobCredentials", "NoRepoCredentials", "RENEW_ENV"]
