"""Per-channel lanes of posts and edits, so Discord's per-channel limits are met in order.

The lanes are the shared outbox (`support/paced_lanes.py`): each channel (a job's thread is a
channel) has one lane and one worker draining it, so calls to a channel are made one at a time
and in the order the application asked for them. A post waits for its message id; an edit is
queued and returns at once. A queued edit of a message takes the newer version's place (each
carries the full content, so no line is lost by skipping an intermediate version), while posts
are never merged or dropped. Discord's pace is its REST client's: `DiscordRest` follows the
`X-RateLimit-*` buckets and retries after a 429's `retry_after`, inside each call, so the lanes
add no pacing of their own (`Unpaced`) and a rate limit only makes the lane wait.

One chat message can span several Discord messages ("parts", see payloads.py): a `_Group`
remembers the part ids, and an edit edits changed parts, posts new ones and deletes extras.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from ...domain.messages import ChatMessage
from ...support.paced_lanes import PacedLanes, Unpaced, Write
from .payloads import Payload, message_parts
from .rest import DiscordApiError, DiscordRest

log = logging.getLogger(__name__)


@attrs.define
class _Group:
    channel_id: str
    part_ids: list[str]
    sent: list[Payload]


@attrs.frozen
class OutboxStatistics:
    posts: int
    edits_applied: int
    edits_coalesced: int
    queued: int


class Outbox:
    def __init__(self, rest: DiscordRest, nursery: trio.Nursery) -> None:
        self._rest = rest
        self._lanes = PacedLanes[str](nursery, Unpaced(), name="Discord")
        self._groups: dict[str, _Group] = {}
        self._posts = 0
        self._edits_applied = 0
        self._edits_coalesced = 0

    def statistics(self) -> OutboxStatistics:
        return OutboxStatistics(self._posts, self._edits_applied, self._edits_coalesced, self._lanes.queued())

    def knows(self, group_key: str) -> bool:
        return group_key in self._groups

    async def post(self, channel_id: str, message: ChatMessage, *, reference: str | None = None) -> str:
        """Post `message` in `channel_id` after everything queued there; returns its group key.

        `reference` makes the first part a reply to that message id.
        """
        write = Write(lambda: self._do_post(channel_id, message, reference), describe="post")
        return await self._lanes.put(channel_id, write).wait()

    async def post_file(self, channel_id: str, content: str, filename: str, data: bytes) -> None:
        """Post `content` with `data` attached as `filename`, after everything queued there."""
        write = Write(lambda: self._do_file(channel_id, content, filename, data), describe="file")
        await self._lanes.put(channel_id, write).wait()

    async def edit(self, group_key: str, message: ChatMessage) -> None:
        """Queue an edit of a message posted through this outbox; returns once queued."""
        await trio.lowlevel.checkpoint()
        group = self._groups.get(group_key)
        if group is None:
            raise KeyError(f"no Discord message {group_key!r} was posted by this adapter")
        write = Write(lambda: self._do_edit(group, message), key=group_key, describe="edit", awaited=False)
        if self._lanes.put(group.channel_id, write) is not write:
            self._edits_coalesced += 1

    async def wait_idle(self) -> None:
        """Return once every queue is empty (used to flush before shutdown)."""
        await self._lanes.drained()

    async def _do_post(self, channel_id: str, message: ChatMessage, reference: str | None) -> str:
        parts = message_parts(message)
        ids: list[str] = []
        for index, payload in enumerate(parts):
            body = dict(payload)
            if index == 0 and reference is not None:
                body["message_reference"] = {"message_id": reference, "fail_if_not_exists": False}
            answer = await self._rest.request("POST", f"/channels/{channel_id}/messages", json_body=body)
            ids.append(str(answer["id"]))
        self._posts += 1
        key = group_key(channel_id, ids[0])
        self._groups[key] = _Group(channel_id, ids, parts)
        return key

    async def _do_file(self, channel_id: str, content: str, filename: str, data: bytes) -> None:
        body = {
            "content": content,
            "attachments": [{"id": 0, "filename": filename}],
            "allowed_mentions": {"parse": []},
        }
        await self._rest.request("POST", f"/channels/{channel_id}/messages", json_body=body, files=[(filename, data)])
        self._posts += 1

    async def _do_edit(self, group: _Group, message: ChatMessage) -> None:
        try:
            await self._reconcile(group, message_parts(message))
            self._edits_applied += 1
        except Exception:
            # The application does not wait for edits; the store keeps every line for /od-logs.
            log.warning("could not edit a Discord message in channel %s", group.channel_id, exc_info=True)

    async def _reconcile(self, group: _Group, parts: list[Payload]) -> None:
        channel = group.channel_id
        for index, payload in enumerate(parts):
            if index < len(group.part_ids):
                if group.sent[index] != payload:
                    await self._patch(channel, group.part_ids[index], payload)
                    group.sent[index] = payload
            else:
                answer = await self._rest.request("POST", f"/channels/{channel}/messages", json_body=payload)
                group.part_ids.append(str(answer["id"]))
                group.sent.append(payload)
        while len(group.part_ids) > len(parts):
            extra = group.part_ids.pop()
            group.sent.pop()
            await self._rest.request("DELETE", f"/channels/{channel}/messages/{extra}")

    async def _patch(self, channel: str, message_id: str, payload: Payload) -> Any:
        try:
            return await self._rest.request("PATCH", f"/channels/{channel}/messages/{message_id}", json_body=payload)
        except DiscordApiError as exc:
            if exc.code == 10008:  # someone deleted it: nothing left to update
                log.info("Discord message %s was deleted; not editing it", message_id)
                return None
            raise


def group_key(channel_id: str, message_id: str) -> str:
    """The adapter's message reference: the channel and the id of the message's first part."""
    return f"{channel_id}:{message_id}"


def split_group_key(key: str) -> tuple[str, str]:
    channel_id, _, message_id = key.partition(":")
    return channel_id, message_id
