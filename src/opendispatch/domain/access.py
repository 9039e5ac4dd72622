"""Who may run what, where: the operator's allowlists and the per-user job limit.

Empty lists mean open, so the embedded default needs no configuration. Patterns use shell
wildcards (`owner/*`, `registry.fly.io/my-sprites/*`) because operators think in those.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import attrs

from .errors import NotAllowed
from .job import Conversation, User
from .job_spec import JobSpec, host_repo_path, is_path_pattern


def _matches(value: str, patterns: frozenset[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def host_repo_patterns(patterns: frozenset[str]) -> frozenset[str]:
    """The path patterns of an allowlist (`/srv/git/*`, `file:///srv/git/*`), for `host_repos`."""
    return frozenset(pattern for pattern in patterns if is_path_pattern(pattern))


@attrs.frozen
class AccessPolicy:
    users: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    repos: frozenset[str] = frozenset()
    images: frozenset[str] = frozenset()
    max_active_jobs_per_user: int | None = None
    #: Repositories on the dispatcher's own disk (`--repo /srv/git/x`, `file://...`, `./x`) that
    #: jobs may clone, as absolute path patterns (`/srv/git/*`). None: no rule of their own
    #: (embedders and the console, where the user is the operator; `repos` applies as to any
    #: repo). A set, even empty, refuses every other host path, whatever `repos` says.
    host_repos: frozenset[str] | None = None
    #: With no `images` allowlist, the images a job may still name: the default image and the
    #: SPRITE_IMAGES aliases' targets (shared chat), or None for any (the console). A job that
    #: names any image would run an attacker's image with the operator's secrets.
    known_images: frozenset[str] | None = None

    def check_user(self, user: User, conversation: Conversation) -> None:
        """Refuse a user or channel that is not on a non-empty allowlist (of platform ids).

        Never a display name: users choose those themselves, so anyone could call themselves
        like an allowed id (ownership.py says the same of admins).
        """
        if self.users and not _matches(user.id, self.users):
            raise NotAllowed(
                f"{user.name}, you are not on this Open-Dispatch's list of allowed users. "
                "Ask an operator to add you to OPENDISPATCH_ALLOWED_USERS."
            )
        if self.channels and not _matches(conversation.channel, self.channels):
            raise NotAllowed(
                "Open-Dispatch is not enabled in this channel. "
                "Ask an operator to add it to OPENDISPATCH_ALLOWED_CHANNELS, or use an allowed channel."
            )

    def check_spec(self, spec: JobSpec, *, default_image: str | None) -> None:
        self._check_repo(spec)
        image = spec.image or default_image
        if self.images and image is not None and not _matches(image, self.images):
            raise NotAllowed(f"Image {image} is not allowed here. Allowed: {', '.join(sorted(self.images))}.")
        if not self.images and self.known_images is not None and spec.image is not None:
            if spec.image not in self.known_images and spec.image != default_image:
                raise NotAllowed(
                    f"Image {spec.image} is not allowed here: use the default image or an alias from "
                    "SPRITE_IMAGES (/od-help run), or ask an operator to allow it in OPENDISPATCH_ALLOWED_IMAGES."
                )

    def _check_repo(self, spec: JobSpec) -> None:
        path = host_repo_path(spec.repo) if spec.repo is not None else None
        if path is not None and self.host_repos is not None:
            patterns = frozenset(p.removeprefix("file://") for p in self.host_repos)
            if path.startswith("/") and not path.startswith("//") and _matches(path, patterns):
                return
            allowed = f" Allowed: {', '.join(sorted(self.host_repos))}." if self.host_repos else ""
            raise NotAllowed(
                f"Repository {spec.repo} is a path on the dispatcher's own machine, and sprites may "
                "clone only the host paths the operator allows (path patterns such as /srv/git/* in "
                f"OPENDISPATCH_ALLOWED_REPOS).{allowed} Use owner/repo or a git URL."
            )
        if self.repos and spec.repo is not None and not _matches(spec.repo, self.repos):
            raise NotAllowed(
                f"Repository {spec.repo} is not allowed here. Allowed: {', '.join(sorted(self.repos))}."
            )
        if self.repos and spec.repo is None:
            raise NotAllowed(f"Jobs here must name a repository: --repo one of {', '.join(sorted(self.repos))}.")

    def check_active_jobs(self, user: User, active: int) -> None:
        limit = self.max_active_jobs_per_user
        if limit is not None and active >= limit:
            raise NotAllowed(
                f"You already have {active} job(s) running (the limit is {limit}). "
                "Wait for one to finish or /od-cancel one (/od-jobs --status running lists them)."
            )
