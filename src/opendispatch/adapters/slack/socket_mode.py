"""Socket Mode under Trio: we open a WebSocket to Slack and receive envelopes on it.

Slack refreshes sockets every few hours (a `disconnect` frame first) and also drops them
without notice, so the loop always has a way back: ask `apps.connections.open` for a fresh
URL, connect, wait for `hello`, and only then retire the old socket (Slack's advice: open
the new one first). Every envelope is acknowledged before it is handled, well inside
Slack's 3 s; Slack redelivers what was not acknowledged, and the adapter drops repeats.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket_url

from ...domain.errors import ConfigError
from ...support.retry_after import exponential_s
from .settings import SlackSettings
from .web import SlackApiError, SlackWeb

log = logging.getLogger(__name__)

FATAL_ERRORS = {"invalid_auth", "not_authed", "not_allowed_token_type", "account_inactive", "token_revoked"}
CONNECT_TIMEOUT_S = 15.0

EnvelopeSink = Callable[[dict[str, Any]], None]


@attrs.define(eq=False)
class _Connection:
    number: int
    started: bool = False
    replace: trio.Event = attrs.Factory(trio.Event)  # set: time to open the next socket
    retire: trio.Event = attrs.Factory(trio.Event)  # set: the next socket is up, close this one


class SocketModeClient:
    def __init__(self, web: SlackWeb, settings: SlackSettings, on_envelope: EnvelopeSink) -> None:
        if not settings.app_token:
            raise ConfigError("Slack Socket Mode needs SLACK_APP_TOKEN (xapp-…).")
        self._web = web
        self._settings = settings
        self._app_token = settings.app_token
        self._on_envelope = on_envelope
        self.connections_opened = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected until cancelled; `started()` once the first socket said hello."""
        ready = False
        failures = 0
        previous: _Connection | None = None
        async with trio.open_nursery() as nursery:
            while True:
                connection = _Connection(self.connections_opened + 1)
                try:
                    with trio.fail_after(CONNECT_TIMEOUT_S):
                        await nursery.start(self._serve_connection, connection)
                except (HandshakeError, ConnectionClosed, OSError, trio.TooSlowError, ValueError) as exc:
                    failures += 1
                    await self._back_off(failures, f"{type(exc).__name__}")
                    continue
                except SlackApiError as exc:
                    if exc.error in FATAL_ERRORS:
                        raise ConfigError(
                            f"Slack refused SLACK_APP_TOKEN ({exc.error}): create an app-level token with the "
                            "connections:write scope under Basic Information → App-Level Tokens."
                        ) from None
                    failures += 1
                    await self._back_off(failures, exc.error)
                    continue
                self.connections_opened += 1
                failures = 0
                if previous is not None:
                    previous.retire.set()
                previous = connection
                if not ready:
                    ready = True
                    task_status.started()
                await connection.replace.wait()

    async def _back_off(self, failures: int, why: str) -> None:
        delay = exponential_s(failures - 1, base_s=self._settings.reconnect_backoff_s, max_s=self._settings.reconnect_backoff_max_s)
        log.warning("Slack Socket Mode: could not connect (%s); retrying in %.1fs", why, delay)
        await trio.sleep(delay)

    async def _serve_connection(self, connection: _Connection, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            answer = await self._web.call("apps.connections.open", token=self._app_token)
            url = answer.get("url")
            if not isinstance(url, str):
                raise ValueError("apps.connections.open gave no url")
            async with open_websocket_url(url, connect_timeout=CONNECT_TIMEOUT_S) as ws:
                hello = json.loads(await ws.get_message())
                if not isinstance(hello, dict) or hello.get("type") != "hello":
                    raise ValueError("Slack did not say hello first")
                connection.started = True
                task_status.started()
                log.info("Slack Socket Mode connected (connection %d)", connection.number)
                await self._read(ws, connection)
        except (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError, ValueError) as exc:
            if not connection.started:
                raise
            log.info("Slack socket %d closed (%s); reconnecting", connection.number, type(exc).__name__)
        finally:
            connection.replace.set()

    async def _read(self, ws: WebSocketConnection, connection: _Connection) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_alive, ws)
            nursery.start_soon(self._close_when_retired, ws, connection)
            try:
                await self._read_frames(ws, connection)
            except (ConnectionClosed, trio.BrokenResourceError, ValueError) as exc:
                log.info("Slack socket %d closed (%s); reconnecting", connection.number, type(exc).__name__)
            finally:
                nursery.cancel_scope.cancel()

    async def _read_frames(self, ws: WebSocketConnection, connection: _Connection) -> None:
        while True:
            frame = json.loads(await ws.get_message())
            if not isinstance(frame, dict):
                continue
            if frame.get("type") == "disconnect":
                reason = frame.get("reason")
                if reason == "link_disabled":
                    log.error("Slack turned Socket Mode off for this app (link_disabled); still retrying")
                log.info("Slack asked socket %d to reconnect (%s)", connection.number, reason)
                connection.replace.set()  # keep reading here until the new socket is up
                continue
            envelope_id = frame.get("envelope_id")
            if isinstance(envelope_id, str):
                await ws.send_message(json.dumps({"envelope_id": envelope_id}))  # ack first
                self._on_envelope(frame)

    async def _keep_alive(self, ws: WebSocketConnection) -> None:
        """Slack drops sockets silently; a ping that gets no pong in time closes ours."""
        while True:
            await trio.sleep(self._settings.ping_interval_s)
            with trio.move_on_after(self._settings.ping_timeout_s) as waited:
                try:
                    await ws.ping()
                except ConnectionClosed:
                    return
            if waited.cancelled_caught:
                log.info("Slack socket missed a pong; reconnecting")
                await ws.aclose()
                return

    async def _close_when_retired(self, ws: WebSocketConnection, connection: _Connection) -> None:
        await connection.retire.wait()
        await ws.aclose()
