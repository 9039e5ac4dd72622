"""discord.py's gateway connection, on its own asyncio loop, reduced to "hand me interactions".

This is the only module of Open-Dispatch that imports asyncio. discord.py keeps the
websocket (identify, heartbeats, resume, reconnects); we use nothing else of it: every
interaction payload is handed, as the raw JSON object, to `deliver` (called on the bot's
thread), and all answers go out through our own REST client on the Trio side.

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
Deliver = Callable[[dict[str, Any]], None]


def _ignore(_: Any) -> None:
    return None


class _InteractionClient(discord.Client):
    """A discord.Client that forwards raw INTERACTION_CREATE payloads and does nothing else."""

    def __init__(self, deliver: Deliver) -> None:
        # No intents: interactions arrive without any. Debug events give us the raw payloads.
        super().__init__(intents=discord.Intents.none(), enable_debug_events=True)
        self._deliver = deliver
        self.connected = threading.Event()

    async def setup_hook(self) -> None:
        # discord.py would also parse each interaction into its own objects, which we never
        # use; a payload it does not expect would then crash the whole connection. Skip it
        # (a private table, checked in discord.py 2.7.1; if it moves, parsing just stays on).
        parsers = getattr(self._connection, "parsers", None)
        if isinstance(parsers, dict) and "INTERACTION_CREATE" in parsers:
            parsers["INTERACTION_CREATE"] = _ignore

    async def on_connect(self) -> None:
        self.connected.set()

    async def on_socket_raw_receive(self, message: str) -> None:
        if "INTERACTION_CREATE" not in message:
            return
        event = json.loads(message)
        if event.get("t") == "INTERACTION_CREATE" and isinstance(event.get("d"), dict):
            self._deliver(event["d"])


class GatewayBot:
    def __init__(self, *, token: str, deliver: Deliver, api_base_url: str, gateway_url: str | None = None) -> None:
        self._token = token
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
        self.client = _InteractionClient(self._deliver)
        try:
            await self.client.start(self._token, reconnect=True)
        finally:
            try:
                await asyncio.wait_for(self.client.close(), CLOSE_TIMEOUT_S)
            except Exception:
                log.warning("the Discord gateway client did not close cleanly", exc_info=True)
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
