"""discord.py's gateway connection, on its own asyncio loop, reduced to "hand me raw events".

This is the only module of Open-Dispatch that imports asyncio. discord.py keeps the
websocket (identify, heartbeats, resume, reconnects); we use nothing else of it: every
INTERACTION_CREATE and MESSAGE_CREATE payload is handed, as the raw JSON object, to
`deliver(kind, payload)` (called on the bot's thread; a message comes wrapped as
`{"message": ..., "bot_user_id": ...}`), and all answers go out through our
own REST client on the Trio side.

Plain messages (for sessions) need the GUILD_MESSAGES and DIRECT_MESSAGES intents and the
privileged MESSAGE_CONTENT intent. When the application has not been granted the latter
(Developer Portal > Bot > Privileged Gateway Intents), Discord closes with 4014; we then
reconnect without it, so slash commands keep working and overheard messages arrive empty.

`GatewayBot.run()` blocks the calling thread (a Trio worker thread) until the bot stops;
`stop()` may be called from any thread and makes `run()` return after closing the client.
discord.py builds REST URLs from the class attribute `discord.http.Route.BASE` and connects
to `discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY` (checked in discord.py 2.7.1), so a
non-default base URL or gateway (tests) is set there for the life of the bot and restored
afterwards: one bot per process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
INTERACTION = "interaction"
MESSAGE = "message"
Deliver = Callable[[str, dict[str, Any]], None]
#: Events discord.py would parse into its own objects, which we never use; a payload it does
#: not expect would then crash the whole connection (a private table, checked in discord.py
#: 2.7.1; if it moves, parsing just stays on).
_UNPARSED = ("INTERACTION_CREATE", "MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK")


def _ignore(_: Any) -> None:
    return None


def gateway_intents(*, message_content: bool) -> discord.Intents:
    """Interactions need no intent; plain messages need these (MESSAGE_CONTENT is privileged)."""
    intents = discord.Intents.none()
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = message_content
    return intents


class _InteractionClient(discord.Client):
    """A discord.Client that forwards raw interactions and messages and does nothing else."""

    def __init__(self, deliver: Deliver, *, message_content: bool) -> None:
        # Debug events give us the raw payloads.
        super().__init__(intents=gateway_intents(message_content=message_content), enable_debug_events=True)
        self._deliver = deliver
        self.connected = threading.Event()

    async def setup_hook(self) -> None:
        parsers = getattr(self._connection, "parsers", None)
        if isinstance(parsers, dict):
            for event in _UNPARSED:
                if event in parsers:
                    parsers[event] = _ignore

    async def on_connect(self) -> None:
        self.connected.set()

    async def on_socket_raw_receive(self, message: str) -> None:
        if "INTERACTION_CREATE" not in message and "MESSAGE_CREATE" not in message:
            return
        event = json.loads(message)
        payload = event.get("d")
        if not isinstance(payload, dict):
            return
        if event.get("t") == "INTERACTION_CREATE":
            self._deliver(INTERACTION, payload)
        elif event.get("t") == "MESSAGE_CREATE":
            # Who we are, so the receiving side can tell a mention of us and our own messages.
            me = self.user.id if self.user is not None else None
            self._deliver(MESSAGE, {"message": payload, "bot_user_id": str(me) if me is not None else None})


class GatewayBot:
    def __init__(
        self,
        *,
        token: str,
        deliver: Deliver,
        api_base_url: str,
        gateway_url: str | None = None,
        message_content: bool = True,
    ) -> None:
        self._token = token
        self.message_content = message_content
        self._deliver = deliver
        self._api_base_url = api_base_url
        self._gateway_url = gateway_url
        self._lock = threading.Lock()
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.client: _InteractionClient | None = None
        self.finished = threading.Event()

    def __repr__(self) -> str:
        return f"GatewayBot(finished={self.finished.is_set()})"

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected.is_set()

    def run(self) -> None:
        """Run the bot until it stops or `stop()` is called; raises what made it stop."""
        try:
            asyncio.run(self._main())
        except asyncio.CancelledError:
            if not self._stop_requested:
                raise RuntimeError("the gateway bot was cancelled from inside") from None
        finally:
            self.finished.set()

    def stop(self) -> None:
        """Thread-safe and idempotent: close the client and end `run()`."""
        with self._lock:
            self._stop_requested = True
            if self._loop is not None and self._task is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._task.cancel)

    async def _main(self) -> None:
        with self._lock:
            if self._stop_requested:
                return
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self._api_base_url
        if self._gateway_url is not None:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self._gateway_url)
        try:
            try:
                await self._connect()
            except discord.PrivilegedIntentsRequired:
                if not self.message_content:
                    raise
                log.error(
                    "Discord refused the MESSAGE CONTENT intent (close code 4014): enable it under "
                    "Developer Portal > your application > Bot > Privileged Gateway Intents. Continuing "
                    "without it: slash commands work, but plain messages arrive empty, so sessions only "
                    "receive messages sent with /od-send (or mentioning the bot)."
                )
                self.message_content = False
                await self._connect()
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved

    async def _connect(self) -> None:
        self.client = _InteractionClient(self._deliver, message_content=self.message_content)
        try:
            await self.client.start(self._token, reconnect=True)
        finally:
            try:
                await asyncio.wait_for(self.client.close(), CLOSE_TIMEOUT_S)
            except Exception:
                log.warning("the Discord gateway client did not close cleanly", exc_info=True)
