"""A loopback fake of Slack: the Web API over HTTP, Socket Mode over a WebSocket, real JSON.

Shapes and errors follow /work/shared/reference/slack.md (§2 slash commands, §3 signing,
§5 Socket Mode, §6 Web API, §9 what a faithful fake must do). It keeps channels and
messages (with every version of each), enforces rate limits with HTTP 429 + Retry-After,
and lets a test force a 429, drop the socket, or send `disconnect`.

One deliberate strictness beyond Slack: `thread_ts` must name an existing top-level
message in that channel (Slack says "never use a reply's ts"), so threading bugs fail loudly.

The agent surfaces (docs.slack.dev reference pages of each method and event; what could not be
confirmed is listed in docs/slack.md): `chat.startStream` / `chat.appendStream` /
`chat.stopStream` (a thread is required; `recipient_user_id` and `recipient_team_id` are
required outside DMs; `markdown_text` and each markdown chunk hold at most 12,000 characters;
`chunks` are markdown_text, task_update, plan_update or blocks chunks; stopStream's `blocks`
hold at most 50), `agents.sessions.setStatus` (active|processing|suspended|closed, a title of at
most 200 characters), `assistant.threads.setStatus` (at most 10 loading messages),
`conversations.history` / `conversations.replies` (with message metadata and a stream's
`streaming_state`), the `agent_session_stopped` and `assistant_thread_started` events. A test
can refuse any method (`refuse`), close a stream as Slack's timeouts do (`close_stream`),
press Slack's stop button (`session_stopped_payload`), and read the compact record of every
call (`timeline`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import attrs
import httpx
import trio
from quart import Response, request, websocket
from quart_trio import QuartTrio
from slack_sdk.signature import SignatureVerifier

from opendispatch.adapters.webhook import serve_webhooks

BOT_TOKEN = "xoxb-fake-bot-token-0001"
APP_TOKEN = "xapp-fake-app-token-0001"
SIGNING_SECRET = "fake-signing-secret-0123456789abcdef"
TEAM_ID = "T0001"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
TEXT_LIMIT = 40_000
SECTION_LIMIT = 3000
BLOCKS_CHARS_LIMIT = 12_000
MAX_BLOCKS = 50
RESPONSE_URL_USES = 5

_ZWSP_FENCE = "`\u200b`\u200b`"


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace(_ZWSP_FENCE, "```")


def block_text_chars(blocks: list[dict[str, Any]]) -> int:
    total = 0
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            total += len(text.get("text", ""))
        for item in [*block.get("fields", ()), *block.get("elements", ())]:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                total += len(item["text"])
    return total


BUTTON_TEXT_LIMIT = 75
ACTION_ID_LIMIT = 255
BUTTON_VALUE_LIMIT = 2000
MAX_ACTION_ELEMENTS = 25


def _valid_actions(block: dict[str, Any], action_ids: set[str]) -> bool:
    """Block Kit's rules for an actions block of buttons: 1-25 elements, plain-text labels of at
    most 75 characters, action ids (at most 255) unique in the message, values of at most 2,000
    characters, style `primary` or `danger` or none."""
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTION_ELEMENTS:
        return False
    for element in elements:
        if not isinstance(element, dict) or element.get("type") != "button":
            return False
        text = element.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text" or not 1 <= len(text.get("text", "")) <= BUTTON_TEXT_LIMIT:
            return False
        action_id = element.get("action_id", "")
        if not isinstance(action_id, str) or not 1 <= len(action_id) <= ACTION_ID_LIMIT or action_id in action_ids:
            return False
        action_ids.add(action_id)
        if len(str(element.get("value", ""))) > BUTTON_VALUE_LIMIT or element.get("style") not in (None, "primary", "danger"):
            return False
    return True


@attrs.define
class Version:
    text: str
    blocks: list[dict[str, Any]]
    at: float


MARKDOWN_LIMIT = 12_000
TITLE_LIMIT = 200
LOADING_MESSAGES_LIMIT = 10
SESSION_STATUSES = ("active", "processing", "suspended", "closed")
TASK_STATUSES = ("pending", "in_progress", "complete", "error")


@attrs.define
class FakeStream:
    """A streamed message: what was appended (markdown and chunks), in order, and its state."""

    recipient_user_id: str | None
    recipient_team_id: str | None
    task_display_mode: str
    chunks: list[dict[str, Any]] = attrs.Factory(list)
    state: str = "in_progress"  # in_progress → completed; or closed by Slack (timeout, stop button)
    stopped_by: str | None = None
    session_status: str | None = None

    @property
    def markdown(self) -> str:
        return "".join(str(c.get("text", "")) for c in self.chunks if c.get("type") == "markdown_text")

    def tasks(self) -> dict[str, list[str]]:
        """Each task id's statuses, in the order they were sent."""
        seen: dict[str, list[str]] = {}
        for chunk in self.chunks:
            if chunk.get("type") == "task_update":
                seen.setdefault(str(chunk["id"]), []).append(str(chunk["status"]))
        return seen

    def code_lines(self) -> list[str]:
        """The lines inside the streamed markdown's code blocks, as a reader sees them."""
        lines: list[str] = []
        inside = False
        for line in self.markdown.split("\n"):
            if line.startswith("```"):
                inside = not inside
                continue
            if inside:
                lines.append(line.replace("<\u200b", "<").replace("`\u200b", "`"))
        return lines


@attrs.define
class FakeMessage:
    channel: str
    ts: str
    thread_ts: str | None
    user: str
    versions: list[Version]
    metadata: dict[str, Any] | None = None
    stream: FakeStream | None = None

    @property
    def text(self) -> str:
        return self.versions[-1].text

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return self.versions[-1].blocks

    def block_texts(self) -> list[str]:
        texts: list[str] = []
        for block in self.blocks:
            if isinstance(block.get("text"), dict):
                texts.append(block["text"]["text"])
            for item in [*block.get("fields", ()), *block.get("elements", ())]:
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    texts.append(item["text"])
                elif isinstance(item, dict) and isinstance(item.get("text"), dict):
                    texts.append(item["text"]["text"])
        return texts

    def code_lines(self) -> list[str]:
        """The lines inside the code blocks of the newest version, as a reader sees them."""
        lines: list[str] = []
        for block in self.blocks:
            text = block.get("text", {}).get("text", "") if block.get("type") == "section" else ""
            if text.startswith("```\n") and text.endswith("\n```"):
                lines.extend(unescape(text[4:-4]).split("\n"))
        return lines

    def action_ids(self) -> list[str]:
        return [
            element.get("action_id", "")
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
        ]

    def all_text(self) -> str:
        """Every version's text and blocks, for "this never appeared" checks."""
        return "\n".join(v.text + json.dumps(v.blocks) for v in self.versions)


@attrs.define
class Call:
    method: str
    args: dict[str, Any]
    at: float
    status: int
    error: str | None = None


@attrs.define
class Envelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    retry_attempt: int = 0
    sends: int = 0
    sent_at: float | None = None
    acked_at: float | None = None
    acked: trio.Event = attrs.Factory(trio.Event)

    def frame(self) -> str:
        return json.dumps(
            {
                "type": self.type,
                "envelope_id": self.envelope_id,
                "payload": self.payload,
                "accepts_response_payload": self.type != "events_api",
                "retry_attempt": self.retry_attempt,
                "retry_reason": "" if self.retry_attempt == 0 else "timeout",
            }
        )


@attrs.define(eq=False)
class FakeSocket:
    number: int
    outgoing_send: trio.MemorySendChannel[str]
    outgoing_receive: trio.MemoryReceiveChannel[str]
    kill: trio.Event = attrs.Factory(trio.Event)
    closed: trio.Event = attrs.Factory(trio.Event)


@attrs.define
class RateLimit:
    """At most one call per `min_gap_s` per key (method, or method+channel); else 429."""

    min_gap_s: float
    retry_after_s: int = 1
    per_channel: bool = False


class FakeSlack:
    def __init__(self, *, rate_limits: dict[str, RateLimit] | None = None) -> None:
        self.base_url = ""
        self.calls: list[Call] = []
        self.messages: list[FakeMessage] = []
        self.ephemerals: list[dict[str, Any]] = []  # chat.postEphemeral and response_url posts
        self.files: dict[str, dict[str, Any]] = {}
        self.not_member: set[str] = set()
        self.rate_limits = rate_limits or {}
        self.forced_429: dict[str, list[int]] = {}
        self.sockets: list[FakeSocket] = []
        self.envelopes: dict[str, Envelope] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._last_call: dict[str, float] = {}
        self._response_urls: dict[str, int] = {}
        self._changed = trio.Event()
        self._last_ts = 0.0
        self.refusals: dict[str, list[str]] = {}  # method → errors for its next calls
        self.sessions: dict[tuple[str, str], list[str]] = {}  # (channel, thread_ts) → statuses set
        self.assistant_threads: set[tuple[str, str]] = set()
        self.assistant_statuses: dict[tuple[str, str], list[str]] = {}
        self.sent_events: list[tuple[float, str]] = []  # (trio time, what Slack sent us) for the timeline
        self.app = self._build_app()

    # --- test controls -------------------------------------------------------------------------

    def refuse(self, method: str, error: str, *, times: int = 1_000_000) -> None:
        """The next `times` calls of `method` get `{"ok": false, "error": error}` (an older
        workspace, a missing scope, a channel type without streams)."""
        self.refusals.setdefault(method, []).extend([error] * times)

    def close_stream(self, message: FakeMessage) -> None:
        """End a stream as Slack does after its (unpublished) timeouts: later appends and the
        stop get `message_not_in_streaming_state`; the message keeps what it showed."""
        assert message.stream is not None
        message.stream.state = "closed"
        self._notify()

    def streams(self, channel: str | None = None) -> list[FakeMessage]:
        return [m for m in self.messages if m.stream is not None and (channel is None or m.channel == channel)]

    def session_stopped_payload(self, channel: str, thread_ts: str, *, user_id: str) -> dict[str, Any]:
        """What Slack sends when `user_id` presses the stop button it draws on a processing
        session: it stops the thread's in-progress streams itself and lists them."""
        statuses = self.sessions.get((channel, thread_ts), [])
        assert statuses and statuses[-1] == "processing", f"no stop button: the session is {statuses}"
        stopped = []
        for message in self.thread_of(channel, thread_ts):
            if message.stream is not None and message.stream.state == "in_progress":
                message.stream.state, message.stream.stopped_by = "closed", user_id
                stopped.append(message.ts)
        self._notify()
        self.sent_events.append((trio.current_time(), f"<- event agent_session_stopped channel={channel} "
                                 f"thread_ts={thread_ts} user={user_id} streaming_message_ts={stopped}"))
        return self.event_payload({
            "type": "agent_session_stopped", "channel": channel, "thread_ts": thread_ts, "user": user_id,
            "streaming_message_ts": stopped, "event_ts": self._next_ts(),
        })

    def assistant_thread_payload(self, channel: str, *, user_id: str = "U0ALICE") -> tuple[str, dict[str, Any]]:
        """A user opened the assistant container: a new assistant thread (its ts, the event)."""
        thread_ts = self._next_ts()
        self.assistant_threads.add((channel, thread_ts))
        # Slack starts the thread with a root message of its own (subtype assistant_app_thread)
        root = FakeMessage(channel, thread_ts, None, BOT_USER_ID, [Version("New Assistant Thread", [], trio.current_time())])
        self.messages.append(root)
        return thread_ts, self.event_payload({
            "type": "assistant_thread_started",
            "assistant_thread": {"user_id": user_id, "context": {"channel_id": "C0DEV", "team_id": TEAM_ID},
                                 "channel_id": channel, "thread_ts": thread_ts},
            "event_ts": self._next_ts(),
        })

    def thread_of(self, channel: str, thread_ts: str) -> list[FakeMessage]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts]

    def timeline(self) -> str:
        """Every agent-surface call, one line each: the method and its key fields (no tokens)."""
        native = ("chat.startStream", "chat.appendStream", "chat.stopStream", "agents.sessions.setStatus",
                  "assistant.threads.setStatus", "chat.postMessage", "chat.update", "conversations.history",
                  "conversations.replies")
        start = self.calls[0].at if self.calls else 0.0
        rows = [(at, text) for at, text in self.sent_events]
        for call in self.calls:
            if call.method in native:
                rows.append((call.at, f"{call.method} {describe_call(call)}" + (f" -> {call.error}" if call.error else "")))
        rows.sort(key=lambda row: row[0])
        return "\n".join(f"{at - start:7.2f}s {text}" for at, text in rows) + "\n"

    def force_rate_limit(self, method: str, *, retry_after_s: int = 1, times: int = 1) -> None:
        """The next `times` calls of `method` get 429 with this Retry-After."""
        self.forced_429.setdefault(method, []).extend([retry_after_s] * times)

    async def drop_socket(self) -> None:
        """Close every open socket without a `disconnect` frame, as Slack sometimes does."""
        for sock in self.open_sockets():
            sock.kill.set()
        for sock in list(self.sockets):
            await sock.closed.wait()

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        for sock in self.open_sockets():
            await sock.outgoing_send.send(json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}))

    def open_sockets(self) -> list[FakeSocket]:
        return [s for s in self.sockets if not s.closed.is_set()]

    async def deliver(self, kind: str, payload: dict[str, Any]) -> Envelope:
        """Queue an envelope; it goes out on the open socket now, or on the next one."""
        envelope = Envelope(f"env-{next(self._ids):04d}-{'x' * 8}", kind, payload)
        self.envelopes[envelope.envelope_id] = envelope
        for sock in self.open_sockets()[-1:]:
            await self._send_envelope(sock, envelope)
        return envelope

    async def slash_command(self, command: str, text: str, **fields: str) -> Envelope:
        return await self.deliver("slash_commands", self.slash_payload(command, text, **fields))

    def slash_payload(
        self, command: str, text: str, *, user_id: str = "U0ALICE", user_name: str = "alice", channel_id: str = "C0DEV"
    ) -> dict[str, str]:
        number = next(self._ids)
        response_id = f"r{number}"
        self._response_urls[response_id] = 0
        return {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "acme",
            "channel_id": channel_id,
            "channel_name": "dev",
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": "A0FAKE",
            "is_enterprise_install": "false",
            "response_url": f"{self.base_url}/response/{response_id}",
            "trigger_id": f"{number}.{number}.trigger",
        }

    def stop_click_payload(self, message: FakeMessage, *, user_id: str = "U0BOB", username: str = "bob") -> dict[str, Any]:
        return self.click_payload(message, "od_stop", user_id=user_id, username=username)

    def click_payload(
        self, message: FakeMessage, action_id: str, *, user_id: str = "U0BOB", username: str = "bob"
    ) -> dict[str, Any]:
        """The `block_actions` payload of a click on the button `action_id` of `message`'s newest version."""
        action = next(
            element
            for block in message.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("action_id") == action_id
        )
        number = next(self._ids)
        message_json: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text, "user": BOT_USER_ID}
        if message.thread_ts:
            message_json["thread_ts"] = message.thread_ts
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": username, "name": username, "team_id": TEAM_ID},
            "api_app_id": "A0FAKE",
            "token": "deprecated-verification-token",
            "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel, "is_ephemeral": False},
            "trigger_id": f"{number}.{number}.trigger",
            "team": {"id": TEAM_ID, "domain": "acme"},
            "channel": {"id": message.channel, "name": "dev"},
            "message": message_json,
            "response_url": f"{self.base_url}/actions/{number}",
            "actions": [
                {
                    "action_id": action["action_id"],
                    "block_id": "b1",
                    "text": action["text"],
                    # A link button (`url`) may have no value: Slack then sends none.
                    **({"value": action["value"]} if "value" in action else {}),
                    "type": "button",
                    "action_ts": "1800000000.1",
                }
            ],
        }

    def event_payload(self, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "A0FAKE",
            "type": "event_callback",
            "event_id": f"Ev{next(self._ids):06d}",
            "event_time": 1_800_000_000,
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
            "event": event,
        }

    async def wait_connections(self, count: int) -> None:
        await self.wait_until(lambda: len(self.sockets) >= count)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def wait_change(self) -> None:
        """Until the next API call, socket event or ack."""
        await self._changed.wait()

    def channel_messages(self, channel: str = "C0DEV") -> list[FakeMessage]:
        return [m for m in self.messages if m.channel == channel and m.thread_ts is None]

    def thread(self, parent: FakeMessage) -> list[FakeMessage]:
        return [m for m in self.messages if m.channel == parent.channel and m.thread_ts == parent.ts]

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def everything_said(self) -> str:
        """All text we were sent, every version, ephemeral and files included."""
        parts = [m.all_text() for m in self.messages]
        parts += [json.dumps(e) for e in self.ephemerals]
        parts += [f.get("content", b"").decode("utf-8", "replace") + json.dumps(f.get("shared")) for f in self.files.values()]
        return "\n".join(parts)

    # --- internals -----------------------------------------------------------------------------

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def _next_ts(self) -> str:
        """Wall-clock timestamps, as Slack's are (a job's `created_at` finds its messages), each
        later than the one before."""
        next(self._ts)
        self._last_ts = max(round(time.time(), 6), round(self._last_ts + 0.000001, 6))
        return f"{self._last_ts:.6f}"

    async def _send_envelope(self, sock: FakeSocket, envelope: Envelope) -> None:
        if envelope.sends:
            envelope.retry_attempt += 1
        envelope.sends += 1
        envelope.sent_at = trio.current_time()
        try:
            await sock.outgoing_send.send(envelope.frame())
        except trio.ClosedResourceError:
            pass  # redelivered on the next socket

    def _find(self, channel: str, ts: str) -> FakeMessage | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def _rate_limited(self, method: str, args: dict[str, Any]) -> int | None:
        forced = self.forced_429.get(method)
        if forced:
            return forced.pop(0)
        limit = self.rate_limits.get(method)
        if limit is None:
            return None
        key = f"{method}:{args.get('channel', '')}" if limit.per_channel else method
        now = trio.current_time()
        last = self._last_call.get(key)
        if last is not None and now - last < limit.min_gap_s:
            return limit.retry_after_s
        self._last_call[key] = now
        return None

    def _check_content(self, args: dict[str, Any]) -> str | None:
        text = args.get("text")
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
            args["blocks"] = blocks
        if not text and not blocks:
            return "no_text"
        if text is not None and len(text) > TEXT_LIMIT:
            return "msg_too_long"
        if blocks:
            if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
                return "invalid_blocks"
            action_ids: set[str] = set()
            for block in blocks:
                section_text = block.get("text", {}).get("text", "") if isinstance(block.get("text"), dict) else ""
                if block.get("type") == "section" and len(section_text) > SECTION_LIMIT:
                    return "invalid_blocks"
                if block.get("type") == "header" and len(section_text) > 150:
                    return "invalid_blocks"
                if len(block.get("fields", [])) > 10:
                    return "invalid_blocks"
                if block.get("type") == "actions" and not _valid_actions(block, action_ids):
                    return "invalid_blocks"
            if block_text_chars(blocks) > BLOCKS_CHARS_LIMIT:
                return "msg_blocks_too_long"
        return None

    def _api(self, method: str, args: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != wanted:
            error = "not_allowed_token_type" if token in (APP_TOKEN, BOT_TOKEN) else "invalid_auth"
            return 200, {"ok": False, "error": error}, {}
        retry_after = self._rate_limited(method, args)
        if retry_after is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        refused = self.refusals.get(method)
        if refused:
            return 200, {"ok": False, "error": refused.pop(0)}, {}
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(args), {}

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://acme.slack.com/", "team": "Acme", "user": "open-dispatch",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID}

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ws_base = self.base_url.replace("http://", "ws://")
        return {"ok": True, "url": f"{ws_base}/link/?ticket=t{next(self._ids)}&app_id=A0FAKE"}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        error = self._check_content(args)
        if error:
            return {"ok": False, "error": error}
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            parent = self._find(channel, thread_ts)
            if parent is None or parent.thread_ts is not None:
                return {"ok": False, "error": "invalid_thread_ts"}
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if metadata is not None and (not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str)
                                     or not isinstance(metadata.get("event_payload"), dict)):
            return {"ok": False, "error": "invalid_metadata_format"}
        message = FakeMessage(channel, self._next_ts(), thread_ts, BOT_USER_ID,
                              [Version(args.get("text", ""), list(args.get("blocks") or []), trio.current_time())],
                              metadata=metadata)
        self.messages.append(message)
        self._notify()
        return {"ok": True, "channel": channel, "ts": message.ts,
                "message": {"type": "message", "text": message.text, "ts": message.ts, "bot_id": BOT_ID}}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.user != BOT_USER_ID:
            return {"ok": False, "error": "cant_update_message"}
        error = self._check_content(args)
        if error:
            return {"ok": False, "error": error}
        message.versions.append(Version(args.get("text", ""), list(args.get("blocks") or []), trio.current_time()))
        self._notify()
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}

    # --- streams -------------------------------------------------------------------------------

    def _check_chunks(self, args: dict[str, Any]) -> str | None:
        chunks = args.get("chunks")
        if isinstance(chunks, str):
            chunks = json.loads(chunks)
            args["chunks"] = chunks
        markdown = args.get("markdown_text")
        if markdown is not None and (not isinstance(markdown, str) or len(markdown) > MARKDOWN_LIMIT):
            return "msg_too_long"
        if chunks is None:
            return None
        if not isinstance(chunks, list):
            return "invalid_chunks"
        for chunk in chunks:
            kind = chunk.get("type") if isinstance(chunk, dict) else None
            if kind == "markdown_text":
                if not isinstance(chunk.get("text"), str) or len(chunk["text"]) > MARKDOWN_LIMIT:
                    return "invalid_chunks"
            elif kind == "task_update":
                if not chunk.get("id") or not isinstance(chunk.get("title"), str) or chunk.get("status") not in TASK_STATUSES:
                    return "invalid_chunks"
                for field in ("details", "output"):
                    if len(str(chunk.get(field) or "")) > 256:
                        return "invalid_chunks"
            elif kind == "plan_update":
                if not isinstance(chunk.get("title"), str):
                    return "invalid_chunks"
            elif kind == "blocks":
                if not isinstance(chunk.get("blocks"), list):
                    return "invalid_chunks"
            else:
                return "invalid_chunks"
        return None

    def _append_chunks(self, stream: FakeStream, args: dict[str, Any]) -> None:
        if args.get("markdown_text"):
            stream.chunks.append({"type": "markdown_text", "text": args["markdown_text"]})
        stream.chunks.extend(args.get("chunks") or [])

    def _stream_of(self, args: dict[str, Any]) -> FakeMessage | dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.stream is None or message.stream.state != "in_progress":
            return {"ok": False, "error": "message_not_in_streaming_state"}
        return message

    def _m_chat_startStream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        thread_ts = args.get("thread_ts")
        if not thread_ts:
            return {"ok": False, "error": "invalid_arguments"}  # streams are always replies
        parent = self._find(channel, thread_ts)
        if (parent is None or parent.thread_ts is not None) and (channel, thread_ts) not in self.assistant_threads:
            return {"ok": False, "error": "invalid_thread_ts"}
        if not channel.startswith("D"):  # required outside DMs
            if not args.get("recipient_user_id"):
                return {"ok": False, "error": "missing_recipient_user_id"}
            if not args.get("recipient_team_id"):
                return {"ok": False, "error": "missing_recipient_team_id"}
        mode = args.get("task_display_mode", "timeline")
        if mode not in ("timeline", "plan"):
            return {"ok": False, "error": "invalid_arguments"}
        error = self._check_chunks(args)
        if error:
            return {"ok": False, "error": error}
        stream = FakeStream(args.get("recipient_user_id"), args.get("recipient_team_id"), mode)
        self._append_chunks(stream, args)
        message = FakeMessage(channel, self._next_ts(), thread_ts, BOT_USER_ID, [Version("", [], trio.current_time())],
                              stream=stream)
        self.messages.append(message)
        self._notify()
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _m_chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self._stream_of(args)
        if isinstance(found, dict):
            return found
        if not args.get("markdown_text") and not args.get("chunks"):
            return {"ok": False, "error": "no_text"}
        error = self._check_chunks(args)
        if error:
            return {"ok": False, "error": error}
        assert found.stream is not None
        self._append_chunks(found.stream, args)
        found.versions.append(Version(found.stream.markdown, [], trio.current_time()))
        self._notify()
        return {"ok": True, "channel": found.channel, "ts": found.ts}

    def _m_chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        found = self._stream_of(args)
        if isinstance(found, dict):
            return found
        error = self._check_chunks(args)
        if error:
            return {"ok": False, "error": error}
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks is not None:
            if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
                return {"ok": False, "error": "invalid_blocks"}
            error = self._check_content({"blocks": blocks, "text": " "})
            if error:
                return {"ok": False, "error": error}
        status = args.get("session_status")
        if status is not None and status not in SESSION_STATUSES:
            return {"ok": False, "error": "invalid_arguments"}
        assert found.stream is not None
        self._append_chunks(found.stream, args)
        found.stream.state, found.stream.session_status = "completed", status
        found.versions.append(Version(found.stream.markdown, list(blocks or []), trio.current_time()))
        if status is not None and found.thread_ts is not None:
            self.sessions.setdefault((found.channel, found.thread_ts), []).append(status)
        self._notify()
        return {"ok": True, "channel": found.channel, "ts": found.ts,
                "message": {"type": "message", "ts": found.ts, "bot_id": BOT_ID, "streaming_state": "completed"}}

    # --- agent sessions and assistant threads ----------------------------------------------

    def _m_agents_sessions_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts, status = args.get("channel_id"), args.get("thread_ts"), args.get("status")
        if status not in SESSION_STATUSES:
            return {"ok": False, "error": "invalid_arguments"}
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not thread_ts:
            return {"ok": False, "error": "invalid_arguments"}  # thread-based sessions name their thread
        if self._find(channel, thread_ts) is None and (channel, thread_ts) not in self.assistant_threads:
            return {"ok": False, "error": "invalid_thread_ts"}
        if len(str(args.get("title") or "")) > TITLE_LIMIT:
            return {"ok": False, "error": "invalid_arguments"}
        self.sessions.setdefault((channel, thread_ts), []).append(status)
        self._notify()
        return {"ok": True, "status": status}

    def _m_assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts, status = args.get("channel_id"), args.get("thread_ts"), args.get("status")
        if not channel or not thread_ts or not isinstance(status, str):
            return {"ok": False, "error": "invalid_arguments"}
        if (channel, thread_ts) not in self.assistant_threads:
            return {"ok": False, "error": "invalid_thread_ts"}
        loading = args.get("loading_messages")
        if loading is not None and (not isinstance(loading, list) or len(loading) > LOADING_MESSAGES_LIMIT):
            return {"ok": False, "error": "invalid_arguments"}
        self.assistant_statuses.setdefault((channel, thread_ts), []).append(status)
        self._notify()
        return {"ok": True}

    def _message_json(self, message: FakeMessage, *, metadata: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text, "user": message.user,
                                "bot_id": BOT_ID}
        if message.thread_ts is not None:
            data["thread_ts"] = message.thread_ts
        if metadata and message.metadata is not None:
            data["metadata"] = message.metadata
        if message.stream is not None:
            data["streaming_state"] = "in_progress" if message.stream.state == "in_progress" else "completed"
        return data

    def _in_window(self, message: FakeMessage, args: dict[str, Any]) -> bool:
        ts = float(message.ts)
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 9e12)
        if _truthy(args.get("inclusive")):
            return oldest <= ts <= latest
        return oldest < ts < latest

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        found = [m for m in self.messages if m.channel == channel and m.thread_ts is None and self._in_window(m, args)]
        found.reverse()  # newest first, as Slack answers
        limit = int(args.get("limit") or 100)
        meta = _truthy(args.get("include_all_metadata"))
        return {"ok": True, "messages": [self._message_json(m, metadata=meta) for m in found[:limit]],
                "has_more": len(found) > limit}

    def _m_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        parent = self._find(channel, ts)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        found = [parent, *self.thread_of(channel, ts)]
        found = [m for m in found if self._in_window(m, args)]
        limit = int(args.get("limit") or 100)
        meta = _truthy(args.get("include_all_metadata"))
        return {"ok": True, "messages": [self._message_json(m, metadata=meta) for m in found[:limit]],
                "has_more": len(found) > limit}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("user") or not args.get("channel"):
            return {"ok": False, "error": "user_not_in_channel"}
        self.ephemerals.append({"via": "chat.postEphemeral", **args})
        self._notify()
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        self.messages.remove(message)
        self._notify()
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        filename, length = args.get("filename"), str(args.get("length", ""))
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):06d}"
        self.files[file_id] = {"filename": filename, "length": int(length)}
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        for item in files:
            record = self.files.get(item.get("id", ""))
            if record is None or "content" not in record:
                return {"ok": False, "error": "file_not_found"}
            if len(record["content"]) != record["length"]:
                return {"ok": False, "error": "file_upload_size_mismatch"}
            thread_ts = args.get("thread_ts")
            if thread_ts is not None:
                parent = self._find(str(args.get("channel_id")), thread_ts)
                if parent is None or parent.thread_ts is not None:
                    return {"ok": False, "error": "invalid_thread_ts"}
            record["shared"] = {"channel_id": args.get("channel_id"), "thread_ts": thread_ts,
                                "initial_comment": args.get("initial_comment"), "title": item.get("title")}
        self._notify()
        return {"ok": True, "files": [{"id": item["id"], "title": item.get("title")} for item in files]}

    def _build_app(self) -> QuartTrio:
        app = QuartTrio("fake-slack")
        fake = self

        @app.post("/api/<method>")
        async def api(method: str) -> Response:
            raw = await request.get_data(as_text=False)
            content_type = request.headers.get("Content-Type", "")
            if "application/json" in content_type:
                args = json.loads(raw or b"{}")
            else:
                args = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
            auth = request.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.pop("token", None)
            status, body, headers = fake._api(method, args, token)
            fake.calls.append(Call(method, args, trio.current_time(), status, None if body.get("ok") else body.get("error")))
            fake._notify()
            response = Response(json.dumps(body), status=status, mimetype="application/json")
            response.headers.update(headers)
            return response

        @app.post("/response/<response_id>")
        async def response_url(response_id: str) -> Response:
            uses = fake._response_urls.get(response_id)
            if uses is None or uses >= RESPONSE_URL_USES:
                return Response("used_url", status=404)
            fake._response_urls[response_id] = uses + 1
            if request.headers.get("Authorization"):
                return Response("no token expected", status=400)
            fake.ephemerals.append({"via": "response_url", "url_id": response_id, **json.loads(await request.get_data())})
            fake._notify()
            return Response("ok", status=200)

        @app.post("/upload/<file_id>")
        async def upload(file_id: str) -> Response:
            record = fake.files.get(file_id)
            if record is None or request.headers.get("Authorization"):
                return Response("bad upload", status=400)
            files = await request.files
            if files:
                record["content"] = next(iter(files.values())).read()
            else:
                record["content"] = await request.get_data(as_text=False)
            return Response(f"OK - {len(record['content'])}", status=200)

        @app.websocket("/link/")
        async def link() -> None:
            await websocket.accept()
            send, receive = trio.open_memory_channel[str](100)
            sock = FakeSocket(len(fake.sockets) + 1, send, receive)
            fake.sockets.append(sock)
            try:
                await websocket.send(json.dumps({
                    "type": "hello", "num_connections": len(fake.open_sockets()),
                    "debug_info": {"host": "fake", "build_number": 1, "approximate_connection_time": 18060},
                    "connection_info": {"app_id": "A0FAKE"},
                }))
                fake._notify()
                for envelope in list(fake.envelopes.values()):
                    if envelope.acked_at is None:
                        await fake._send_envelope(sock, envelope)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fake._read_acks, sock)
                    nursery.start_soon(fake._write_frames, sock)
                    await sock.kill.wait()
                    nursery.cancel_scope.cancel()
            finally:
                send.close()
                sock.closed.set()
                fake._notify()

        return app

    async def _read_acks(self, sock: FakeSocket) -> None:
        while True:
            frame = json.loads(await websocket.receive())
            envelope = self.envelopes.get(frame.get("envelope_id", ""))
            if envelope is not None and envelope.acked_at is None:
                envelope.acked_at = trio.current_time()
                envelope.acked.set()
                self._notify()

    async def _write_frames(self, sock: FakeSocket) -> None:
        async for frame in sock.outgoing_receive:
            await websocket.send(frame)


@asynccontextmanager
async def open_fake_slack(**kwargs: Any) -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(**kwargs)
    async with trio.open_nursery() as nursery:
        fake.base_url = await nursery.start(serve_webhooks, fake.app, "127.0.0.1:0")
        yield fake
        for sock in fake.sockets:
            sock.kill.set()
        nursery.cancel_scope.cancel()


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def describe_call(call: Call) -> str:
    """The key fields of one call, for the timeline (never a token: they travel in headers)."""
    args = call.args
    if call.method == "agents.sessions.setStatus":
        return f"status={args.get('status')} channel_id={args.get('channel_id')} thread_ts={args.get('thread_ts')}"
    if call.method == "assistant.threads.setStatus":
        return f"status={args.get('status')!r} thread_ts={args.get('thread_ts')}"
    if call.method.startswith("conversations."):
        return " ".join(f"{key}={args[key]}" for key in ("channel", "ts", "oldest", "latest") if args.get(key))
    parts = [f"channel={args.get('channel')}"]
    for key in ("thread_ts", "ts", "task_display_mode", "recipient_user_id", "recipient_team_id", "session_status"):
        if args.get(key):
            parts.append(f"{key}={args[key]}")
    chunks = args.get("chunks")
    if isinstance(chunks, list):
        for chunk in chunks:
            if chunk.get("type") == "task_update":
                parts.append(f"task_update({chunk.get('id')}:{chunk.get('status')} {chunk.get('title')!r})")
            elif chunk.get("type") == "markdown_text":
                parts.append(f"markdown_text({len(str(chunk.get('text', '')))} chars)")
            else:
                parts.append(str(chunk.get("type")))
    blocks = args.get("blocks")
    if isinstance(blocks, list):
        header = next((b["text"]["text"] for b in blocks if b.get("type") == "header"), None)
        parts.append(f"blocks={len(blocks)}" + (f" header={header!r}" if header else ""))
    return " ".join(parts)


def signed_headers(body: bytes, *, timestamp: int, secret: str = SIGNING_SECRET, content_type: str) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature, "Content-Type": content_type}


async def post_signed(
    http: httpx.AsyncClient, url: str, body: bytes, *, timestamp: int, content_type: str, secret: str = SIGNING_SECRET
) -> httpx.Response:
    """What Slack does in HTTP mode: POST the raw body with its signature headers."""
    return await http.post(url, content=body, headers=signed_headers(body, timestamp=timestamp, secret=secret, content_type=content_type))


def form_body(fields: dict[str, str]) -> bytes:
    return httpx.QueryParams(fields).__str__().encode()

