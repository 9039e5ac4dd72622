"""The composition root: configuration in, adapters chosen, one nursery running everything.

This is the only module that imports adapters. Tests and embedders call `open_dispatcher`
with their own adapters (fakes, memory chat) and get the same wiring as production.
"""

from __future__ import annotations

import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import attrs
import trio

from .adapters.webhook import build_webhook_app, serve_webhooks
from .app.dispatcher import Dispatcher
from .app.job_runner import JobRunner, RunnerSettings
from .app.ledger import JobLedger
from .app.relay import Relay
from .config import Config
from .domain.commands import ParseSettings
from .domain.errors import ConfigError
from .domain.redaction import Redactor
from .domain.tokens import MIN_SECRET_BYTES, TokenIssuer
from .ports.chat import ChatPort
from .ports.job_store import JobStore
from .ports.sprites import SpritePort

log = logging.getLogger(__name__)

TOKEN_SECRET_NAME = "job-token-key"


@attrs.define
class Running:
    """What `open_dispatcher` hands back: the dispatcher and the facts an embedder needs."""

    dispatcher: Dispatcher
    webhook_url: str
    store: JobStore
    chat: ChatPort
    sprites: SpritePort


async def _token_key(config: Config, store: JobStore) -> bytes:
    if config.token_secret:
        key = config.token_secret.encode()
        if len(key) < MIN_SECRET_BYTES:
            raise ConfigError(f"OPENDISPATCH_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} characters.")
        return key
    return await store.secret(TOKEN_SECRET_NAME, lambda: secrets.token_bytes(32))


async def _open_store(config: Config, stack: AsyncExitStack) -> JobStore:
    from .adapters.sqlite import open_sqlite_store

    path = Path(config.database_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return await stack.enter_async_context(open_sqlite_store(path))


def _default_sprites(config: Config) -> SpritePort:
    from .adapters.local import LocalSprites

    return LocalSprites(log_dir=Path(config.local_sprite_log_dir) if config.local_sprite_log_dir else None)


def _default_chat(config: Config) -> ChatPort:
    if config.chat_provider != "console":
        raise ConfigError(
            f"CHAT_PROVIDER={config.chat_provider} is not available in this build yet; use CHAT_PROVIDER=console."
        )
    from .adapters.console import ConsoleChat

    return ConsoleChat()


@asynccontextmanager
async def open_dispatcher(
    config: Config,
    *,
    chat: ChatPort | None = None,
    sprites: SpritePort | None = None,
    store: JobStore | None = None,
    bind: str | None = None,
    runner_settings: RunnerSettings | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> AsyncIterator[Running]:
    """Start the webhook server and the dispatcher; on exit, cancel all and destroy sprites."""
    async with AsyncExitStack() as stack:
        store = store if store is not None else await _open_store(config, stack)
        sprites = sprites if sprites is not None else _default_sprites(config)
        chat = chat if chat is not None else _default_chat(config)
        key = await _token_key(config, store)
        tokens = TokenIssuer(key)
        redactor = Redactor.of([*config.secret_values, key.decode("latin-1")])
        ledger = JobLedger(store)
        relay = Relay(store=store, ledger=ledger, tokens=tokens, redactor=redactor, wall_clock=wall_clock)
        async with trio.open_nursery() as nursery:
            bound_url = await nursery.start(
                serve_webhooks,
                build_webhook_app(
                    relay,
                    health=lambda: {"liveJobs": len(relay.live)},
                    extra_routes=chat.http_routes() if hasattr(chat, "http_routes") else (),
                ),
                bind or config.webhook_bind,
            )
            runner = JobRunner(
                store=store,
                ledger=ledger,
                relay=relay,
                sprites=sprites,
                chat=chat,
                tokens=tokens,
                redactor=redactor,
                callback_url=config.open_dispatch_url or bound_url,
                passthrough=config.passthrough,
                wall_clock=wall_clock,
                settings=runner_settings or RunnerSettings(),
            )
            dispatcher = Dispatcher(
                store=store,
                chat=chat,
                runner=runner,
                parse_settings=ParseSettings(
                    images=dict(config.sprite_images),
                    default_agent=config.agent_type,
                    default_image=config.sprite_image,
                ),
                wall_clock=wall_clock,
                access=config.access,
            )
            await nursery.start(dispatcher.run)
            log.info("Open-Dispatch ready: webhooks at %s", bound_url)
            yield Running(dispatcher=dispatcher, webhook_url=bound_url, store=store, chat=chat, sprites=sprites)
            nursery.cancel_scope.cancel()


async def serve(config: Config, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
    """`opendispatch serve`: run until SIGTERM/SIGINT, then tear everything down cleanly."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_dispatcher(config) as running:
            async with trio.open_nursery() as nursery:
                await nursery.start(running.chat.listen, running.dispatcher.handle)
                task_status.started(running)
                async for signum in signals:
                    log.info("received %s: stopping (live sprites are destroyed first)", signal.Signals(signum).name)
                    break
                nursery.cancel_scope.cancel()
