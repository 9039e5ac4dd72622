"""Per-job repository credentials: which repositories get one, what it may do, when to renew it.

Why per job: the operator's `GH_TOKEN` reaches every repository its owner can, so an agent
told to fix one repository could push to all of them. With a GitHub App each job gets an
installation token for its own repository only, for at most an hour, fetched by the sprite
from the dispatcher (never in a URL, the sprite's environment or machine configuration).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs

from .errors import DispatchError

GITHUB_SERVER_URL = "https://github.com"
DEFAULT_PERMISSIONS: Mapping[str, str] = {"contents": "write", "pull_requests": "write"}
#: A token is renewed when it has less than this left (GitHub's last an hour): a git command
#: started with it must not see it expire halfway.
DEFAULT_RENEW_MARGIN_S = 300.0
#: What git sends as the user name with an installation token (GitHub's documented form).
TOKEN_USERNAME = "x-access-token"

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_NAME = r"[A-Za-z0-9._-]{1,100}"
_SLUG = re.compile(rf"({_OWNER})/({_NAME})")
_PERMISSION = re.compile(r"[a-z][a-z_]{0,63}")
_LEVELS = ("read", "write", "admin")


class CredentialsUnavailable(DispatchError):
    """No token could be had for the job's repository; the message says what to do."""


class NoRepoCredentials(Exception):
    """This job has no repository token (no app configured, or not a repository on its server)."""

    def __init__(self) -> None:
        super().__init__("this job has no repository credentials (no GitHub App, or not a GitHub repository)")


@attrs.frozen
class GitHubRepo:
    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@attrs.frozen
class RepoToken:
    """A short-lived token for one repository. Held in memory only; never stored or shown."""

    token: str = attrs.field(repr=False)
    #: Unix time.
    expires_at: float

    def needs_renewal(self, now: float, margin_s: float = DEFAULT_RENEW_MARGIN_S) -> bool:
        return now >= self.expires_at - margin_s


def github_repo_of(repo: str | None, server_url: str = GITHUB_SERVER_URL) -> GitHubRepo | None:
    """The GitHub repository a job's `--repo` names, or None (a local path, another host, ssh).

    `owner/repo` means `server_url` (github.com, or the operator's GitHub Enterprise), as
    the sidecar reads it; an https URL counts when it is on that server. Ssh URLs get no
    token: a token works over https only.
    """
    if not repo:
        return None
    text = repo.strip()
    match = _SLUG.fullmatch(text)
    if match is None:
        server = urlsplit(server_url.rstrip("/"))
        url = urlsplit(text)
        if (url.scheme, url.netloc.lower()) != (server.scheme, server.netloc.lower()) or url.query or url.fragment:
            return None
        prefix = server.path.rstrip("/")
        if not url.path.startswith(prefix + "/"):
            return None
        match = _SLUG.fullmatch(url.path[len(prefix) + 1 :].rstrip("/"))
        if match is None:
            return None
    owner, name = match.groups()
    if name.endswith(".git"):
        name = name[: -len(".git")]
    if not name or name in (".", ".."):
        return None
    return GitHubRepo(owner, name)


def parse_permissions(text: str) -> dict[str, str]:
    """`contents:write,pull_requests:write` -> {"contents": "write", ...}; ValueError says why."""
    permissions: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, level = item.partition(":")
        name, level = name.strip(), level.strip()
        if not _PERMISSION.fullmatch(name) or level not in _LEVELS:
            raise ValueError(
                f"{item!r} is not a permission: write name:level, level one of {', '.join(_LEVELS)}"
                " (e.g. contents:write,pull_requests:write)"
            )
        permissions[name] = level
    if not permissions:
        raise ValueError("name at least one permission, e.g. contents:write")
    return permissions
