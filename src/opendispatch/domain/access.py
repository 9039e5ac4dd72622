"""Who may run what, where: the operator's allowlists and the per-user job limit.

Empty lists mean open, so the embedded default needs no configuration. Patterns use shell
wildcards (`owner/*`, `registry.fly.io/my-sprites/*`) because operators think in those.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import attrs

from .errors import NotAllowed
from .job import Conversation, User
from .job_spec import JobSpec


def _matches(value: str, patterns: frozenset[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


@attrs.frozen
class AccessPolicy:
    users: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    repos: frozenset[str] = frozenset()
    images: frozenset[str] = frozenset()
    max_active_jobs_per_user: int | None = None
    #: users (ids or names) who may stop anyone's job; everyone else may stop only their own
    admins: frozenset[str] = frozenset()

    def check_user(self, user: User, conversation: Conversation) -> None:
        """Refuse a user or channel that is not on a non-empty allowlist (ids or names)."""
        if self.users and not (_matches(user.id, self.users) or _matches(user.name, self.users)):
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
        if self.repos and spec.repo is not None and not _matches(spec.repo, self.repos):
            raise NotAllowed(
                f"Repository {spec.repo} is not allowed here. Allowed: {', '.join(sorted(self.repos))}."
            )
        if self.repos and spec.repo is None:
            raise NotAllowed(f"Jobs here must name a repository: --repo one of {', '.join(sorted(self.repos))}.")
        image = spec.image or default_image
        if self.images and image is not None and not _matches(image, self.images):
            raise NotAllowed(f"Image {image} is not allowed here. Allowed: {', '.join(sorted(self.images))}.")

    def check_may_cancel(self, user: User, owner: User, job_id: str) -> None:
        if user.id == owner.id or _matches(user.id, self.admins) or _matches(user.name, self.admins):
            return
        raise NotAllowed(
            f"Only {owner.name}, who started {job_id}, or an Open-Dispatch admin can stop it "
            "(admins are listed in OPENDISPATCH_ADMIN_USERS)."
        )

    def check_active_jobs(self, user: User, active: int) -> None:
        limit = self.max_active_jobs_per_user
        if limit is not None and active >= limit:
            raise NotAllowed(
                f"You already have {active} job(s) running (the limit is {limit}). "
                "Wait for one to finish or /od-cancel one (/od-jobs --status running lists them)."
            )
