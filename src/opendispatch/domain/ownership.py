"""Whose work is whose: one rule for reading, stopping and talking to jobs and sessions.

A job or session belongs to the user who started it. Its owner and the operator's admins
may do anything with it; others may read it only when the operator says that members of the
channel it runs in may (`OPENDISPATCH_CHANNEL_MAY_READ=1`), and then only from that channel.
Nobody but its owner and the admins may stop it or send it a message: a message runs in the
owner's conversation, with the owner's agent and credentials.

Identity is the platform's user id, never a display name: names are chosen by users
themselves (on Slack and Discord anyone may call themselves "admin").
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import attrs

from .errors import NotAllowed
from .job import Conversation, Job, User


@attrs.frozen
class Ownership:
    #: Platform user ids (shell wildcards allowed) who may read and stop anyone's work.
    admins: frozenset[str] = frozenset()
    #: Members of the channel a job runs in may read it (its logs, `/od-jobs --all` there).
    channel_members_may_read: bool = False

    def is_admin(self, user: User) -> bool:
        return any(fnmatchcase(user.id, pattern) for pattern in self.admins)

    def may_read(self, user: User, owner: User, runs_in: Conversation, asked_in: Conversation) -> bool:
        if user.id == owner.id or self.is_admin(user):
            return True
        return self.channel_members_may_read and _same_channel(runs_in, asked_in)

    def check_may_read(self, user: User, job: Job, asked_in: Conversation) -> None:
        """`/od-logs` of another user's job: refused unless the rule above allows it."""
        if self.may_read(user, job.requested_by, job.conversation, asked_in):
            return
        where = " from the channel it ran in" if self.channel_members_may_read else ""
        raise NotAllowed(
            f"{job.id} is {job.requested_by.name}'s job: only they or an Open-Dispatch admin may read it{where}."
        )

    def check_may_act(self, user: User, owner: User, what: str, *, verb: str = "stop it") -> None:
        """Stop, cancel or send to someone's job or session: its owner or an admin only."""
        if user.id == owner.id or self.is_admin(user):
            return
        raise NotAllowed(
            f"Only {owner.name}, who started {what}, or an Open-Dispatch admin can {verb} "
            "(admins are listed by user id in OPENDISPATCH_ADMIN_USERS)."
        )

    def everyone_scope(self, user: User, asked_in: Conversation) -> Conversation | None:
        """What `--all` (`/od-jobs`, `/od-usage`) may show this user: everything (None), or the
        jobs of the channel asked from; `NotAllowed` when neither."""
        if self.is_admin(user):
            return None
        if self.channel_members_may_read:
            return asked_in
        raise NotAllowed(
            "--all shows everyone's jobs, which only Open-Dispatch admins may see here "
            "(without --all you see your own)."
        )


def _same_channel(a: Conversation, b: Conversation) -> bool:
    return a.platform == b.platform and a.channel == b.channel
