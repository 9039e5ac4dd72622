"""Per-channel queues of posts and edits, so Discord's per-channel limits are met in order.

Each channel (a job's thread is a channel) has one queue and at most one worker draining it,
so calls to a channel are made one at a time and in the order the application asked for
them. A post waits for its message id; an edit is queued and returns at once. Consecutive
edits of the same message collapse into the newest (each carries the full content, so no
line is lost by skipping an intermediate version), while posts are never merged or dropped.
A rate limit only makes the queue wait (`DiscordRest` retries after `retry_after`).

One chat message can span several Discord messages ("parts", see payloads.py): a `_Group`
remembers the part ids, and an edit edits changed parts, posts new ones and deletes extras.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import attrs
import trio

from ...domain.messages import ChatMessage
from .payloads import Payload, message_parts
from .rest import DiscordApiError, DiscordRest

log = logging.getLogger(__name__)


@attrs.define
class _Group:
    channel_id: str
    part_ids: list[str]
    sent: list[Payload]


@attrs.define(eq=False)
class _Post:
    message: ChatMessage
    reference: str | None
    done: trio.Event = attrs.field(factory=trio.Event)
    group_key: str | None = None
    error: BaseException | None = None


@attrs.define(eq=False)
class _Edit:
    group_key: str
    message: ChatMessage


@attrs.define(eq=False)
class _File:
    """A message carrying one attached file (a raw transcript); posted in order like any post."""

    content: str
    filename: str
    data: bytes = attrs.field(repr=False)
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None


@attrs.frozen
class OutboxStatistics:
    posts: int
    edits_applied: int
    edits_coalesced: int
    queued: int


class Outbox:
    def __init__(self, rest: DiscordRest, nursery: trio.Nursery) -> None:
        self._rest = rest
        self._nursery = nursery
        self._queues: dict[str, deque[_Post | _Edit | _File]] = {}
        self._draining: set[str] = set()
        self._groups: dict[str, _Group] = {}
        self._idle = trio.Event()
        self._idle.set()
        self._posts = 0
        self._edits_applied = 0
        self._edits_coalesced = 0

    def statistics(self) -> OutboxStatistics:
        queued = sum(len(queue) for queue in self._queues.values())
        return OutboxStatistics(self._posts, self._edits_applied, self._edits_coalesced, queued)

    def knows(self, group_key: str) -> bool:
        return group_key in self._groups

    async def post(self, channel_id: str, message: ChatMessage, *, reference: str | None = None) -> str:
        """Post `message` in `channel_id` after everything queued there; returns its group key.

        `reference` makes the first part a reply to that message id.
        """
        item = _Post(message, reference)
        self._enqueue(channel_id, item)
        await item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.group_key is not None
        return item.group_key

    async def post_file(self, channel_id: str, content: str, filename: str, data: bytes) -> None:
        """Post `content` with `data` attached as `filename`, after everything queued there."""
        item = _File(content, filename, data)
        self._enqueue(channel_id, item)
        await item.done.wait()
        if item.error is not None:
            raise item.error

    async def edit(self, group_key: str, message: ChatMessage) -> None:
        """Queue an edit of a message posted through this outbox; returns once queued."""
        await trio.lowlevel.checkpoint()
        group = self._groups.get(group_key)
        if group is None:
            raise KeyError(f"no Discord message {group_key!r} was posted by this adapter")
        queue = self._queues.get(group.channel_id)
        if queue and isinstance(queue[-1], _Edit) and queue[-1].group_key == group_key:
            queue[-1].message = message
            self._edits_coalesced += 1
            return
        self._enqueue(group.channel_id, _Edit(group_key, message))

    async def wait_idle(self) -> None:
        """Return once every queue is empty (used to flush before shutdown)."""
        await self._idle.wait()

    def _enqueue(self, channel_id: str, item: _Post | _Edit | _File) -> None:
        self._queues.setdefault(channel_id, deque()).append(item)
        if self._idle.is_set():
            self._idle = trio.Event()
        if channel_id not in self._draining:
            self._draining.add(channel_id)
            self._nursery.start_soon(self._drain, channel_id)

    async def _drain(self, channel_id: str) -> None:
        queue = self._queues[channel_id]
        try:
            while queue:
                item = queue.popleft()
                if isinstance(item, _Post):
                    await self._do_post(channel_id, item)
                elif isinstance(item, _File):
                    await self._do_file(channel_id, item)
                else:
                    await self._do_edit(item)
        finally:
            self._draining.discard(channel_id)
            left = list(queue)
            queue.clear()
            del self._queues[channel_id]
            for item in left:  # only when cancelled: nobody may wait forever for a post
                if isinstance(item, (_Post, _File)):
                    item.error = RuntimeError("the Discord chat closed before this message was posted")
                    item.done.set()
            if not self._queues:
                self._idle.set()

    async def _do_post(self, channel_id: str, item: _Post) -> None:
        try:
            parts = message_parts(item.message)
            ids: list[str] = []
            for index, payload in enumerate(parts):
                body = dict(payload)
                if index == 0 and item.reference is not None:
                    body["message_reference"] = {"message_id": item.reference, "fail_if_not_exists": False}
                answer = await self._rest.request("POST", f"/channels/{channel_id}/messages", json_body=body)
                ids.append(str(answer["id"]))
            self._posts += 1
            key = group_key(channel_id, ids[0])
            self._groups[key] = _Group(channel_id, ids, parts)
            item.group_key = key
        except Exception as exc:
            item.error = exc
        finally:
            item.done.set()

    async def _do_file(self, channel_id: str, item: _File) -> None:
        body = {
            "content": item.content,
            "attachments": [{"id": 0, "filename": item.filename}],
            "allowed_mentions": {"parse": []},
        }
        try:
            await self._rest.request(
                "POST", f"/channels/{channel_id}/messages", json_body=body, files=[(item.filename, item.data)]
            )
            self._posts += 1
        except Exception as exc:
            item.error = exc
        finally:
            item.done.set()

    async def _do_edit(self, item: _Edit) -> None:
        group = self._groups[item.group_key]
        try:
            await self._reconcile(group, message_parts(item.message))
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
