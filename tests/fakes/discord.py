"""A loopback fake of Discord: REST under /api/v10, interactions, and a zlib-stream gateway.

Shapes and errors follow /work/shared/reference/discord.md (§1 REST and error codes, §2
commands, §3-4 interactions and responses, §5 messages and threads, §6 rate limits, §7
gateway, §10 what a faithful fake must do). It keeps channels and messages with every
version of each message, enforces the 2,000-character and embed limits, "own messages
only" edits, one thread per message (thread id == message id), the 3-second first response
and 40060 on a second one, sends X-RateLimit-* headers and 429s (forced on demand), and
speaks enough of the gateway (Hello, Identify, READY, heartbeat ACK, dispatches, close codes)
for discord.py to connect through it.

`DiscordUser` plays Discord's side of HTTP-interactions mode: it signs interactions with a
real Ed25519 key and POSTs them to the adapter's endpoint.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio
from nacl.signing import SigningKey
from quart import Response, request, websocket
from quart_trio import QuartTrio

from opendispatch.adapters.webhook import serve_webhooks

BOT_TOKEN = "fake-discord-bot-token.0001.abcdef"
APPLICATION_ID = "1100000000000000001"
BOT_USER_ID = APPLICATION_ID  # modern bots share the application's id
GUILD_ID = "1200000000000000001"
CONTENT_LIMIT = 2000
ATTACHMENT_LIMIT = 10 * 2**20  # a server without boosts
LOADING = 1 << 7
EPHEMERAL = 1 << 6
MESSAGE_CONTENT_INTENT = 1 << 15
_NAME = re.compile(r"^[-_'\w]{1,32}$")
_OWN_MESSAGE_TYPES = {0, 19, 20}


def _error(status: int, code: int, message: str, errors: Any = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


class _Invalid(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@attrs.define
class RecordedCall:
    method: str
    route: str  # path with interaction tokens kept (tests may check them)
    status: int
    at: float


@attrs.define
class FakeInteraction:
    id: str
    token: str
    payload: dict[str, Any]
    created_at: float
    response_type: int | None = None
    responded_at: float | None = None
    original_id: str | None = None
    original_edited: bool = False


@attrs.define
class GatewaySession:
    number: int
    outgoing: trio.MemorySendChannel[dict[str, Any]]
    identified: trio.Event = attrs.field(factory=trio.Event)
    ended: trio.Event = attrs.field(factory=trio.Event)
    heartbeats: int = 0
    intents: int | None = None  # what the client asked for in Identify
    client_closed: bool = False
    kill: trio.Event = attrs.field(factory=trio.Event)


@attrs.define
class Forced429:
    matches: Callable[[str, str], bool]
    times: int
    retry_after: float
    is_global: bool = False


class FakeDiscord:
    def __init__(
        self,
        *,
        first_response_deadline_s: float = 3.0,
        token_lifetime_s: float = 900.0,
        edits_per_window: int = 5,
        window_s: float = 1.0,
    ) -> None:
        self.signing_key = SigningKey.generate()
        self.public_key = self.signing_key.verify_key.encode().hex()
        self.first_response_deadline_s = first_response_deadline_s
        self.token_lifetime_s = token_lifetime_s
        self.edits_per_window = edits_per_window
        self.window_s = window_s
        self.base_url = ""  # http://127.0.0.1:PORT, set when served
        self._ids = itertools.count(1_300_000_000_000_000_001)
        self.channels: dict[str, dict[str, Any]] = {}
        self.channel_messages: dict[str, list[str]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}  # every version of each message
        self.files: dict[str, dict[str, bytes]] = {}  # message id -> attached files
        self.deleted: set[str] = set()
        self.commands: dict[str, list[dict[str, Any]]] = {}  # "global" or guild id -> commands
        self.interactions: dict[str, FakeInteraction] = {}
        self.calls: list[RecordedCall] = []
        self.forced: list[Forced429] = []
        self.late_responses: list[str] = []  # interaction ids answered after the deadline
        self.double_responses: list[str] = []
        self.gateway_sessions: list[GatewaySession] = []
        self.reject_gateway_with: list[int] = []  # close codes for the next connections
        self.message_content_enabled = True  # the portal's MESSAGE CONTENT toggle
        self._windows: dict[str, tuple[float, int]] = {}
        self._changed = trio.Event()
        self.app = self._build_app()

    # --- test helpers ------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(next(self._ids))

    def add_channel(self, name: str = "general") -> str:
        channel_id = self.new_id()
        self.channels[channel_id] = {"id": channel_id, "type": 0, "guild_id": GUILD_ID, "name": name}
        self.channel_messages[channel_id] = []
        return channel_id

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/gateway"

    def force_429(
        self, method: str, path_contains: str, *, times: int = 1, retry_after: float = 0.3, is_global: bool = False
    ) -> None:
        """The next `times` calls matching method and path get a 429 with `retry_after`."""
        self.forced.append(
            Forced429(lambda m, p: m == method and path_contains in p, times, retry_after, is_global)
        )

    def in_channel(self, channel_id: str) -> list[dict[str, Any]]:
        """The current messages of a channel (or thread), oldest first."""
        return [self.messages[m] for m in self.channel_messages.get(channel_id, []) if m not in self.deleted]

    def open_thread_by_user(self, channel_id: str, message_id: str, name: str = "chat") -> str:
        """A person opens a thread on a message (its id is the message's id), as the client does."""
        thread = {
            "id": message_id, "type": 11, "guild_id": GUILD_ID, "parent_id": channel_id, "name": name,
            "owner_id": "530000000000000001",
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False},
        }
        self.channels[message_id] = thread
        self.channel_messages.setdefault(message_id, [])
        self.messages[message_id]["thread"] = thread
        return message_id

    def message_payload(
        self,
        content: str,
        *,
        channel_id: str,
        user_id: str = "530000000000000001",
        username: str = "alice",
        bot: bool = False,
        kind: int = 0,
        mentions_bot: bool = False,
        dm: bool = False,
    ) -> dict[str, Any]:
        """A real-shaped MESSAGE_CREATE payload written by someone else (stored in the channel)."""
        author = {"id": user_id, "username": username, "global_name": username.title(), "discriminator": "0", "avatar": None}
        if bot:
            author["bot"] = True
        message: dict[str, Any] = {
            "id": self.new_id(), "channel_id": channel_id, "author": author, "content": content, "embeds": [],
            "components": [], "attachments": [], "flags": 0, "type": kind, "pinned": False, "tts": False,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "edited_timestamp": None,
            "mention_everyone": False, "mention_roles": [],
            "mentions": [_bot_user()] if mentions_bot else [],
        }
        if not dm:
            message["guild_id"] = GUILD_ID
            message["member"] = {"roles": [], "nick": None, "joined_at": message["timestamp"]}
        self.messages[message["id"]] = message
        self.channel_messages.setdefault(channel_id, []).append(message["id"])
        self.versions[message["id"]] = [dict(message)]
        return message

    async def inject_message(self, message: dict[str, Any]) -> None:
        """Deliver a message over every identified gateway session (MESSAGE_CREATE), as Discord
        does for a client with the GUILD_MESSAGES / DIRECT_MESSAGES intents; without the
        MESSAGE_CONTENT intent the content is blanked unless the bot is mentioned or it is a DM."""
        for session in self.gateway_sessions:
            if session.identified.is_set() and not session.ended.is_set():
                seen = dict(message)
                privileged = (session.intents or 0) & MESSAGE_CONTENT_INTENT
                if not privileged and "guild_id" in seen and not any(m["id"] == BOT_USER_ID for m in seen["mentions"]):
                    seen["content"] = ""
                await session.outgoing.send({"op": 0, "t": "MESSAGE_CREATE", "d": seen})

    def thread_of(self, message_id: str) -> dict[str, Any] | None:
        return self.channels.get(message_id) if self.channels.get(message_id, {}).get("type") == 11 else None

    async def wait_for(self, predicate: Callable[[FakeDiscord], Any]) -> Any:
        """Wait until `predicate(self)` is truthy (checked after every change); returns it."""
        while True:
            result = predicate(self)
            if result:
                return result
            await self._changed.wait()

    def interaction_payload(
        self,
        command: str,
        options: list[dict[str, Any]] | None = None,
        *,
        channel_id: str,
        user_id: str = "530000000000000001",
        username: str = "alice",
        kind: int = 2,
        custom_id: str | None = None,
    ) -> dict[str, Any]:
        """A real-shaped interaction (slash command, or a button when `custom_id` is given)."""
        interaction_id, token = self.new_id(), f"aW50ZXJhY3Rpb246{self.new_id()}"
        data: dict[str, Any]
        if custom_id is not None:
            kind, data = 3, {"custom_id": custom_id, "component_type": 2}
        else:
            data = {"id": self.new_id(), "name": command, "type": 1}
            if options:
                data["options"] = options
        payload = {
            "id": interaction_id,
            "application_id": APPLICATION_ID,
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": GUILD_ID,
            "channel_id": channel_id,
            "channel": {
                key: value for key, value in self.channels.get(channel_id, {"type": 0}).items()
                if key in ("type", "parent_id", "name", "guild_id")
            } | {"id": channel_id},
            "member": {
                "user": {"id": user_id, "username": username, "global_name": username.title(), "discriminator": "0"},
                "roles": [],
                "permissions": "2147483647",
                "nick": None,
            },
            "app_permissions": "442368",
            "locale": "en-US",
            "guild_locale": "en-US",
            "context": 0,
            "authorizing_integration_owners": {"0": GUILD_ID},
            "entitlements": [],
            "attachment_size_limit": 8388608,
            "data": data,
        }
        self.interactions[interaction_id] = FakeInteraction(interaction_id, token, payload, trio.current_time())
        return payload

    async def inject_interaction(self, payload: dict[str, Any]) -> None:
        """Deliver an interaction over every identified gateway session (INTERACTION_CREATE)."""
        self.interactions[payload["id"]].created_at = trio.current_time()
        for session in self.gateway_sessions:
            if session.identified.is_set() and not session.ended.is_set():
                await session.outgoing.send({"op": 0, "t": "INTERACTION_CREATE", "d": payload})

    def notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    # --- the app -----------------------------------------------------------------------------

    def _build_app(self) -> QuartTrio:
        app = QuartTrio("fake-discord")
        fake = self

        @app.before_request
        async def rate_limits() -> Response | None:
            fake.calls.append(RecordedCall(request.method, request.path, 0, trio.current_time()))
            for forced in fake.forced:
                if forced.times > 0 and forced.matches(request.method, request.path):
                    forced.times -= 1
                    fake.calls[-1].status = 429
                    fake.notify()
                    headers = {"Retry-After": str(max(1, round(forced.retry_after)))}
                    if forced.is_global:
                        headers["X-RateLimit-Global"] = "true"
                        headers["X-RateLimit-Scope"] = "global"
                    else:
                        headers["X-RateLimit-Scope"] = "user"
                    return _ok(
                        {"message": "You are being rate limited.", "retry_after": forced.retry_after, "global": forced.is_global},
                        429,
                        headers,
                    )
            return None

        @app.after_request
        async def record(response: Response) -> Response:
            if fake.calls and fake.calls[-1].status == 0:
                fake.calls[-1].status = response.status_code
            fake.notify()
            return response

        def bot_only() -> None:
            if request.headers.get("Authorization") != f"Bot {BOT_TOKEN}":
                raise _Invalid(_error(401, 0, "401: Unauthorized"))

        @app.errorhandler(_Invalid)
        async def invalid(exc: _Invalid) -> Response:
            return exc.response

        @app.get("/api/v10/users/@me")
        async def me() -> Response:
            bot_only()
            return _ok(_bot_user())

        @app.get("/api/v10/oauth2/applications/@me")
        async def application() -> Response:
            bot_only()
            return _ok(
                {
                    "id": APPLICATION_ID, "name": "Open-Dispatch", "description": "", "icon": None,
                    "bot_public": False, "bot_require_code_grant": False, "owner": _owner(),
                    "verify_key": fake.public_key, "flags": 0, "team": None, "rpc_origins": [],
                    "interactions_endpoint_url": None,
                }
            )

        @app.get("/api/v10/gateway/bot")
        async def gateway_bot() -> Response:
            bot_only()
            return _ok(
                {"url": fake.gateway_url, "shards": 1,
                 "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}}
            )

        @app.put("/api/v10/applications/<app_id>/commands")
        @app.put("/api/v10/applications/<app_id>/guilds/<guild_id>/commands")
        async def overwrite_commands(app_id: str, guild_id: str | None = None) -> Response:
            bot_only()
            if app_id != APPLICATION_ID:
                return _error(403, 50001, "Missing Access")
            commands = await request.get_json()
            _check_commands(commands)
            stored = [{**command, "id": fake.new_id(), "application_id": app_id, "version": "1"} for command in commands]
            fake.commands[guild_id or "global"] = stored
            return _ok(stored)

        @app.get("/api/v10/channels/<channel_id>")
        async def get_channel(channel_id: str) -> Response:
            bot_only()
            if channel_id not in fake.channels:
                return _error(404, 10003, "Unknown Channel")
            return _ok(fake.channels[channel_id])

        @app.post("/api/v10/channels/<channel_id>/messages")
        async def create_message(channel_id: str) -> Response:
            bot_only()
            if channel_id not in fake.channels:
                return _error(404, 10003, "Unknown Channel")
            if (request.mimetype or "").startswith("multipart/form-data"):
                # Uploading files: the JSON as `payload_json`, each file as `files[n]`.
                form, files = await request.form, await request.files
                body = json.loads(form["payload_json"])
                declared = {f"files[{a['id']}]": a["filename"] for a in body.get("attachments", [])}
                uploads = {name: upload.read() for name, upload in files.items()}
                if set(uploads) != set(declared):
                    return _error(400, 50035, "Invalid Form Body", {"attachments": {"_errors": [{"code": "ATTACHMENT_NOT_FOUND"}]}})
                if any(len(data) > ATTACHMENT_LIMIT for data in uploads.values()):
                    return _error(413, 40005, "Request entity too large")
                _check_message({**body, "content": body.get("content") or "(attachment)"})
                message = fake._store(channel_id, body, kind=0)
                message["attachments"] = [
                    {"id": fake.new_id(), "filename": declared[name], "size": len(data)} for name, data in uploads.items()
                ]
                fake.files[message["id"]] = {declared[name]: data for name, data in uploads.items()}
                return _ok(message, headers=fake._bucket_headers(f"POST {channel_id}"))
            body = await request.get_json()
            _check_message(body)
            reference = body.get("message_reference")
            message = fake._store(channel_id, body, kind=19 if reference else 0)
            return _ok(message, headers=fake._bucket_headers(f"POST {channel_id}"))

        @app.patch("/api/v10/channels/<channel_id>/messages/<message_id>")
        async def edit_message(channel_id: str, message_id: str) -> Response:
            bot_only()
            message = fake.messages.get(message_id)
            if message is None or message["channel_id"] != channel_id or message_id in fake.deleted:
                return _error(404, 10008, "Unknown Message")
            if message["author"]["id"] != BOT_USER_ID or message["type"] not in _OWN_MESSAGE_TYPES:
                return _error(403, 50005, "Cannot edit a message authored by another user")
            limited = fake._spend(f"PATCH {channel_id}")
            if limited is not None:
                return limited
            body = await request.get_json()
            _check_message(body, editing=True)
            fake._edit(message, body)
            return _ok(message, headers=fake._bucket_headers(f"PATCH {channel_id}"))

        @app.delete("/api/v10/channels/<channel_id>/messages/<message_id>")
        async def delete_message(channel_id: str, message_id: str) -> Response:
            bot_only()
            if message_id not in fake.messages or message_id in fake.deleted:
                return _error(404, 10008, "Unknown Message")
            fake.deleted.add(message_id)
            return Response("", status=204)

        @app.post("/api/v10/channels/<channel_id>/messages/<message_id>/threads")
        async def start_thread(channel_id: str, message_id: str) -> Response:
            bot_only()
            message = fake.messages.get(message_id)
            if message is None or message["channel_id"] != channel_id:
                return _error(404, 10008, "Unknown Message")
            if message_id in fake.channels:
                return _error(400, 160004, "A thread has already been created for this message")
            body = await request.get_json()
            name = body.get("name", "")
            if not 1 <= len(name) <= 100:
                return _error(400, 50035, "Invalid Form Body", {"name": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH"}]}})
            thread = {
                "id": message_id, "type": 11, "guild_id": GUILD_ID, "parent_id": channel_id, "name": name,
                "owner_id": BOT_USER_ID, "thread_metadata": {"archived": False, "auto_archive_duration": body.get("auto_archive_duration", 1440), "locked": False},
            }
            fake.channels[message_id] = thread
            fake.channel_messages[message_id] = []
            message["thread"] = thread
            return _ok(thread, 201)

        @app.post("/api/v10/interactions/<interaction_id>/<token>/callback")
        async def callback(interaction_id: str, token: str) -> Response:
            interaction = fake.interactions.get(interaction_id)
            if interaction is None or interaction.token != token:
                return _error(404, 10062, "Unknown interaction")
            now = trio.current_time()
            if interaction.response_type is not None:
                fake.double_responses.append(interaction_id)
                return _error(400, 40060, "Interaction has already been acknowledged.")
            if now - interaction.created_at > fake.first_response_deadline_s:
                fake.late_responses.append(interaction_id)
                return _error(404, 10062, "Unknown interaction")
            body = await request.get_json()
            kind = body.get("type")
            data = body.get("data") or {}
            channel_id = interaction.payload["channel_id"]
            if kind == 4:
                _check_message(data)
                message = fake._store(channel_id, data, kind=20, interaction=interaction)
            elif kind == 5:
                if set(data) - {"flags"}:
                    return _error(400, 50035, "Invalid Form Body")
                message = fake._store(channel_id, {"content": "", "flags": LOADING | (data.get("flags", 0) & EPHEMERAL)}, kind=20, interaction=interaction, allow_empty=True)
            else:
                return _error(400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "BASE_TYPE_CHOICES"}]}})
            interaction.response_type = kind
            interaction.responded_at = now
            interaction.original_id = message["id"]
            if request.args.get("with_response") not in ("true", "1", "True"):
                return Response("", status=204)
            return _ok(
                {
                    "interaction": {
                        "id": interaction_id, "type": interaction.payload["type"], "response_message_id": message["id"],
                        "response_message_loading": kind == 5, "response_message_ephemeral": bool(message["flags"] & EPHEMERAL),
                    },
                    "resource": {"type": kind, **({"message": message} if kind == 4 else {})},
                }
            )

        def by_token(app_id: str, token: str) -> FakeInteraction:
            for interaction in fake.interactions.values():
                if interaction.token == token and app_id == APPLICATION_ID:
                    if trio.current_time() - interaction.created_at > fake.token_lifetime_s:
                        raise _Invalid(_error(401, 50027, "Invalid Webhook Token"))
                    if interaction.original_id is None:
                        raise _Invalid(_error(404, 10015, "Unknown Webhook"))
                    return interaction
            raise _Invalid(_error(404, 10015, "Unknown Webhook"))

        @app.patch("/api/v10/webhooks/<app_id>/<token>/messages/<message_id>")
        async def edit_webhook_message(app_id: str, token: str, message_id: str) -> Response:
            interaction = by_token(app_id, token)
            target = interaction.original_id if message_id == "@original" else message_id
            message = fake.messages.get(target or "")
            if message is None or message_id in fake.deleted or message.get("webhook_id") != APPLICATION_ID:
                return _error(404, 10008, "Unknown Message")
            body = await request.get_json()
            _check_message(body, editing=True)
            fake._edit(message, body)
            message["flags"] &= ~LOADING
            if message_id == "@original":
                interaction.original_edited = True
            return _ok(message)

        @app.delete("/api/v10/webhooks/<app_id>/<token>/messages/<message_id>")
        async def delete_webhook_message(app_id: str, token: str, message_id: str) -> Response:
            interaction = by_token(app_id, token)
            target = interaction.original_id if message_id == "@original" else message_id
            if target not in fake.messages or target in fake.deleted:
                return _error(404, 10008, "Unknown Message")
            fake.deleted.add(target or "")
            return Response("", status=204)

        @app.post("/api/v10/webhooks/<app_id>/<token>")
        async def follow_up(app_id: str, token: str) -> Response:
            interaction = by_token(app_id, token)
            body = await request.get_json()
            _check_message(body)
            original = fake.messages[interaction.original_id or ""]
            if interaction.response_type == 5 and not interaction.original_edited:
                # Documented backwards compatibility: the first follow-up after a deferral edits it.
                fake._edit(original, {k: v for k, v in body.items() if k != "flags"})
                original["flags"] &= ~LOADING
                interaction.original_edited = True
                return _ok(original)
            return _ok(fake._store(interaction.payload["channel_id"], body, kind=19, interaction=interaction))

        @app.websocket("/gateway")
        async def gateway() -> None:
            await fake._serve_gateway()

        return app

    # --- state changes -----------------------------------------------------------------------

    def _store(
        self,
        channel_id: str,
        body: dict[str, Any],
        *,
        kind: int,
        interaction: FakeInteraction | None = None,
        allow_empty: bool = False,
    ) -> dict[str, Any]:
        message_id = self.new_id()
        message: dict[str, Any] = {
            "id": message_id,
            "channel_id": channel_id,
            "author": _bot_user(),
            "content": body.get("content", ""),
            "embeds": body.get("embeds", []),
            "components": body.get("components", []),
            "flags": body.get("flags", 0),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "edited_timestamp": None,
            "type": kind,
            "mentions": [],
            "pinned": False,
            "tts": False,
        }
        if body.get("message_reference"):
            message["message_reference"] = {"message_id": body["message_reference"]["message_id"], "channel_id": channel_id}
        if interaction is not None:
            message["webhook_id"] = APPLICATION_ID
            message["application_id"] = APPLICATION_ID
            message["interaction_metadata"] = {"id": interaction.id, "type": interaction.payload["type"], "user": interaction.payload["member"]["user"]}
        self.messages[message_id] = message
        self.channel_messages.setdefault(channel_id, []).append(message_id)
        self.versions[message_id] = [dict(message)]
        return message

    def _edit(self, message: dict[str, Any], body: dict[str, Any]) -> None:
        for field in ("content", "embeds", "components", "flags"):
            if field in body:
                message[field] = body[field]
        message["edited_timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        self.versions[message["id"]].append(dict(message))

    def _spend(self, bucket: str) -> Response | None:
        """A real per-route bucket: `edits_per_window` calls per `window_s`, else a 429."""
        now = trio.current_time()
        start, used = self._windows.get(bucket, (now, 0))
        if now - start >= self.window_s:
            start, used = now, 0
        if used >= self.edits_per_window:
            retry_after = round(start + self.window_s - now, 3)
            self.calls[-1].status = 429
            return _ok({"message": "You are being rate limited.", "retry_after": retry_after, "global": False}, 429,
                       {"Retry-After": str(max(1, round(retry_after))), "X-RateLimit-Scope": "user"})
        self._windows[bucket] = (start, used + 1)
        return None

    def _bucket_headers(self, bucket: str) -> dict[str, str]:
        now = trio.current_time()
        start, used = self._windows.get(bucket, (now, 0))
        reset_after = max(0.0, start + self.window_s - now)
        return {
            "X-RateLimit-Limit": str(self.edits_per_window),
            "X-RateLimit-Remaining": str(max(0, self.edits_per_window - used)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"fake-{abs(hash(bucket.split()[0])) % 10_000:04d}",
        }

    # --- gateway -------------------------------------------------------------------------------

    async def _serve_gateway(self) -> None:
        await websocket.accept()
        send, receive = trio.open_memory_channel[dict[str, Any]](100)
        session = GatewaySession(len(self.gateway_sessions) + 1, send)
        self.gateway_sessions.append(session)
        compressor = zlib.compressobj()
        sequence = itertools.count(1)

        async def write(frame: dict[str, Any]) -> None:
            if frame.get("op") == 0:
                frame = {**frame, "s": next(sequence)}
            data = compressor.compress(json.dumps(frame).encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await websocket.send(data)

        try:
            await write({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
            async with trio.open_nursery() as nursery:

                async def pump() -> None:
                    async for frame in receive:
                        await write(frame)

                async def read() -> None:
                    while True:
                        frame = json.loads(await websocket.receive())
                        if frame["op"] == 1:
                            session.heartbeats += 1
                            await send.send({"op": 11, "d": None, "s": None, "t": None})
                        elif frame["op"] in (2, 6):
                            session.intents = frame["d"].get("intents")
                            if not self.message_content_enabled and (session.intents or 0) & MESSAGE_CONTENT_INTENT:
                                await websocket.close(4014)  # "Disallowed intent(s)"
                                return
                            if self.reject_gateway_with:
                                code = self.reject_gateway_with.pop(0)
                                await websocket.close(code)
                                return
                            if frame["d"].get("token") != BOT_TOKEN:
                                await websocket.close(4004)
                                return
                            session.identified.set()
                            self.notify()
                            await send.send({"op": 0, "t": "READY", "d": self._ready()})

                async def killed() -> None:
                    await session.kill.wait()
                    await websocket.close(4000)

                nursery.start_soon(pump)
                nursery.start_soon(killed)
                await read()
                nursery.cancel_scope.cancel()
        finally:
            session.client_closed = True
            session.ended.set()
            self.notify()

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10, "user": _bot_user(), "guilds": [], "session_id": f"fake-session-{self.new_id()}",
            "resume_gateway_url": self.gateway_url, "shard": [0, 1],
            "application": {"id": APPLICATION_ID, "flags": 0},
        }


def _bot_user() -> dict[str, Any]:
    return {"id": BOT_USER_ID, "username": "open-dispatch", "discriminator": "0", "global_name": None,
            "avatar": None, "bot": True, "flags": 0, "public_flags": 0}


def _owner() -> dict[str, Any]:
    return {"id": "530000000000000009", "username": "owner", "discriminator": "0", "global_name": "Owner", "avatar": None}


def _check_message(body: dict[str, Any], *, editing: bool = False) -> None:
    """Discord's message limits: 2,000 characters, 10 embeds, embed text limits."""
    content = body.get("content")
    if content is not None and len(content) > CONTENT_LIMIT:
        raise _Invalid(_error(400, 50035, "Invalid Form Body", {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}))
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        raise _Invalid(_error(400, 50035, "Invalid Form Body", {"embeds": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}))
    total = 0
    for embed in embeds:
        parts = [embed.get("title", ""), embed.get("description", ""), embed.get("footer", {}).get("text", "")]
        parts += [f.get("name", "") + f.get("value", "") for f in embed.get("fields", [])]
        if len(embed.get("description", "")) > 4096 or len(embed.get("title", "")) > 256:
            raise _Invalid(_error(400, 50035, "Invalid Form Body", {"embeds": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}))
        if any(len(f.get("value", "")) > 1024 or not f.get("value") for f in embed.get("fields", [])):
            raise _Invalid(_error(400, 50035, "Invalid Form Body", {"embeds": {"_errors": [{"code": "BASE_TYPE_REQUIRED"}]}}))
        total += sum(len(p) for p in parts)
    if total > 6000:
        raise _Invalid(_error(400, 50035, "Invalid Form Body", {"embeds": {"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED"}]}}))
    if not editing and not content and not embeds and not body.get("components"):
        raise _Invalid(_error(400, 50006, "Cannot send an empty message"))
    _check_components(body.get("components"))
    if body.get("allowed_mentions") not in (None, {"parse": []}) and "parse" not in (body.get("allowed_mentions") or {}):
        raise _Invalid(_error(400, 50035, "Invalid Form Body"))


def _check_components(components: Any) -> None:
    """Message components as Discord checks them: at most 5 action rows (type 1) of 1-5 buttons
    (type 2); a button has a style 1-5, a label of at most 80 characters, and (styles 1-4) a
    custom_id of 1-100 characters unique in the message, or (style 5) a url instead."""
    if components is None:
        return

    def bad(code: str) -> _Invalid:
        return _Invalid(_error(400, 50035, "Invalid Form Body", {"components": {"_errors": [{"code": code}]}}))

    if not isinstance(components, list) or len(components) > 5:
        raise bad("BASE_TYPE_MAX_LENGTH")
    custom_ids: set[str] = set()
    for row in components:
        buttons = row.get("components") if isinstance(row, dict) and row.get("type") == 1 else None
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 5:
            raise bad("COMPONENT_LAYOUT_WIDTH_EXCEEDED")
        for button in buttons:
            if not isinstance(button, dict) or button.get("type") != 2 or button.get("style") not in (1, 2, 3, 4, 5):
                raise bad("COMPONENT_TYPE_INVALID")
            if len(button.get("label", "")) > 80:
                raise bad("BASE_TYPE_MAX_LENGTH")
            if button["style"] == 5:
                if not button.get("url") or "custom_id" in button:
                    raise bad("BUTTON_COMPONENT_INVALID_URL")
                continue
            custom_id = button.get("custom_id")
            if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
                raise bad("BASE_TYPE_BAD_LENGTH")
            if custom_id in custom_ids:
                raise bad("COMPONENT_CUSTOM_ID_DUPLICATED")
            custom_ids.add(custom_id)


def _check_commands(commands: Any) -> None:
    def bad(where: str) -> _Invalid:
        return _Invalid(_error(400, 50035, "Invalid Form Body", {where: {"_errors": [{"code": "INVALID"}]}}))

    if not isinstance(commands, list) or len(commands) > 100:
        raise bad("commands")
    for index, command in enumerate(commands):
        if not _NAME.match(command.get("name", "")) or command["name"] != command["name"].lower():
            raise bad(f"{index}.name")
        if not 1 <= len(command.get("description", "")) <= 100:
            raise bad(f"{index}.description")
        options = command.get("options", [])
        if len(options) > 25:
            raise bad(f"{index}.options")
        seen_optional = False
        for option in options:
            if not _NAME.match(option.get("name", "")) or not 1 <= len(option.get("description", "")) <= 100:
                raise bad(f"{index}.options.name")
            if option.get("required"):
                if seen_optional:
                    raise bad(f"{index}.options.required")
            else:
                seen_optional = True
            if len(option.get("choices", [])) > 25:
                raise bad(f"{index}.options.choices")


class DiscordUser:
    """Discord's side of HTTP-interactions mode: signed POSTs to the adapter's endpoint."""

    def __init__(self, fake: FakeDiscord, http: httpx.AsyncClient, endpoint: str) -> None:
        self.fake = fake
        self.http = http
        self.endpoint = endpoint

    def signed_headers(self, body: bytes, *, key: SigningKey | None = None) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = (key or self.fake.signing_key).sign(timestamp.encode() + body).signature.hex()
        return {"X-Signature-Ed25519": signature, "X-Signature-Timestamp": timestamp, "Content-Type": "application/json"}

    async def post(self, payload: dict[str, Any], *, key: SigningKey | None = None) -> httpx.Response:
        body = json.dumps(payload).encode()
        if payload.get("id") in self.fake.interactions:
            self.fake.interactions[payload["id"]].created_at = trio.current_time()
        return await self.http.post(self.endpoint, content=body, headers=self.signed_headers(body, key=key))


@asynccontextmanager
async def open_fake_discord(**kwargs: Any) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(**kwargs)
    async with trio.open_nursery() as nursery:
        fake.base_url = await nursery.start(serve_webhooks, fake.app, "127.0.0.1:0")
        yield fake
        for session in fake.gateway_sessions:
            session.kill.set()
        nursery.cancel_scope.cancel()
