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
    """Tokens by holder: a job's id, or a persistent session's (its sprite outlives each job,
    and the session's messages share its token).

    A holder has a token from `prepare` until `forget`; a sprite asks with its job's token,
    so one sprite cannot fetch another's.
    """

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
        #: holder -> its repository and its token (None until minted: a holder expected again
        #: after a restart, whose token went with the old process).
        self._held: dict[str, tuple[GitHubRepo, RepoToken | None]] = {}
        self._minting: dict[str, trio.Lock] = {}

    def repo_of(self, repo: str | None) -> GitHubRepo | None:
        """The repository on the app's server that `--repo` names, if it is one."""
        return github_repo_of(repo, self.server_url)

    def sprite_environment(self, repo: str | None) -> dict[str, str]:
        """What tells the sidecar to ask for credentials (nothing secret)."""
        if self.repo_of(repo) is None:
            return {}
        return {GIT_CREDENTIALS_ENV: self.server_url, RENEW_ENV: f"{self.renew_margin_s:g}"}

    async def prepare(self, holder: str, repo: str | None) -> RepoToken | None:
        """Mint the holder's first token before a sprite is spent on it (None: it needs none).

        Raises `CredentialsUnavailable` (the job fails at the credentials stage). Whoever
        gets a token adds it to the job's redactor.
        """
        found = self.repo_of(repo)
        return None if found is None else await self._mint(holder, found)

    def expect(self, holder: str, repo: str | None) -> None:
        """A holder whose sprite may ask, minted for on its first request (a session found
        again after a restart: tokens are never stored)."""
        found = self.repo_of(repo)
        if found is not None and holder not in self._held:
            self._held[holder] = (found, None)

    async def current(self, holder: str, repo: str | None = None) -> RepoToken:
        """The holder's token, renewed near expiry (`NoRepoCredentials`, `CredentialsUnavailable`).

        `repo`: the holder's repository when the caller knows it (a job adopted after a
        restart has no token held yet).
        """
        if holder not in self._held:
            self.expect(holder, repo)
        held = self._held.get(holder)
        if held is None:
            raise NoRepoCredentials()
        found, token = held
        if token is not None and not token.needs_renewal(self.wall_clock(), self.renew_margin_s):
            return token
        return await self._mint(holder, found)

    def holds(self, holder: str) -> bool:
        """Whether the holder was prepared or expected (and not forgotten since)."""
        return holder in self._held

    def token_of(self, holder: str) -> str | None:
        """The holder's current token, to redact from a job that runs on its sprite."""
        held = self._held.get(holder)
        return None if held is None or held[1] is None else held[1].token

    def forget(self, holder: str) -> None:
        """The job or session ended: its sprite gets no more tokens."""
        self._held.pop(holder, None)
        self._minting.pop(holder, None)

    async def _mint(self, holder: str, repo: GitHubRepo) -> RepoToken:
        lock = self._minting.setdefault(holder, trio.Lock())
        async with lock:  # two git commands asking at once get one new token
            held = self._held.get(holder)
            fresh = held[1] if held is not None and held[0] == repo else None
            if fresh is not None and not fresh.needs_renewal(self.wall_clock(), self.renew_margin_s):
                return fresh
            token = await self.minter.mint(repo)
            if holder in self._minting:  # not forgotten while minting
                self._held[holder] = (repo, token)
            log.info(
                "minted a repository token for %s (%s), valid %d s",
                repo.full_name,
                holder,
                int(token.expires_at - self.wall_clock()),
            )
            return token


__all__ = ["CredentialsUnavailable", "GIT_CREDENTIALS_ENV", "JobCredentials", "NoRepoCredentials", "RENEW_ENV"]
