"""The composition root: configuration in, adapters chosen, one nursery running everything.

This is the only module that imports adapters. Tests and embedders call `open_dispatcher`
with their own adapters (fakes, memory chat) and get the same wiring as production.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio

from .adapters.prometheus import PrometheusMetrics
from .adapters.web import add_web_routes
from .adapters.webhook import bind_webhooks, build_webhook_app, serve_webhooks
from .app.approvals import ApprovalDesk
from .app.dispatcher import Dispatcher
from .app.job_runner import JobRunner, RunnerSettings
from .app.shared_timer import SharedTimer
from .app.job_events import JobEvents
from .app.job_watch import JobWatch
from .app.leadership import LeaderHeartbeat
from .app.live_jobs import LiveJobs
from .app.ledger import JobLedger
from .app.reconcile import StaleJobReaper, reconcile
from .app.relay import Relay
from .app.repo_credentials import JobCredentials
from .app.session_commands import SessionCommands
from .app.session_polls import SessionPolls
from .app.session_registry import LiveSessions
from .app.session_supervisor import SessionSpriteHooks, SessionSupervisor
from .app.sessions import SessionSettings
from .app.web_view import WebLinks, WebView, no_link
from .adapters.postgres.url import is_postgres_url, url_passwords
from .config import AVAILABLE_CHAT_PROVIDERS, DEFAULT_DB_PATH, TOKEN_SECRET_TOO_SHORT, Config
from .domain.commands import ParseSettings
from .domain.errors import ConfigError
from .domain.redaction import Redactor
from .domain.tokens import MIN_SECRET_BYTES, TokenIssuer
from .domain.web_grants import GrantIssuer
from .ports.approval_store import ApprovalStore
from .ports.channel_settings_store import ChannelSettingsStore
from .ports.chat import ChatLimits, ChatPort, ChatWithRoutes, DeclaresLimits
from .ports.cluster import Cluster, JobMessageStore
from .ports.job_store import JobStore
from .ports.repo_credentials import RepoTokenMinter
from .ports.secret_store import SecretStore
from .ports.session_store import SessionStore
from .ports.sprites import Sprite, SpritePort
from .validation import missing_extra

log = logging.getLogger(__name__)

TOKEN_SECRET_NAME = "job-token-key"
INSTANCE_SECRET_NAME = "local-sprites-instance"


@attrs.define
class Running:
    """What `open_dispatcher` hands back: the dispatcher and the facts an embedder needs."""

    dispatcher: Dispatcher
    webhook_url: str
    webhook_app: Any
    store: JobStore
    chat: ChatPort
    sprites: SpritePort
    #: Links into the web view (None when OPENDISPATCH_WEB=0): `web_links.for_list(...)`.
    web_links: WebLinks | None = None
    #: Wakes at every change of a job and every stored batch of its output (see `until`).
    watch: JobWatch = attrs.Factory(JobWatch)

    async def until(self, job_id: str, holds: Callable[[], Awaitable[bool]]) -> None:
        """Return once `holds()` is true, asking again at each change of the job or of its
        stored output: for embedders (and tests) that wait on what the store shows, without
        polling it."""
        while True:
            changed = self.watch.event_for(job_id)  # taken before asking: no change is missed
            if await holds():
                self.watch.forget(job_id, changed)
                return
            await changed.wait()


def _secrets(store: JobStore) -> SecretStore:
    """The store's secrets (both shipped stores keep them); an embedder's store may not."""
    if not isinstance(store, SecretStore):
        raise ConfigError(
            "The job store keeps no secrets (it has no `secret` method): set OPENDISPATCH_TOKEN_SECRET, "
            "or give open_dispatcher a store that implements ports.secret_store.SecretStore."
        )
    return store


async def _token_key(config: Config, store: JobStore) -> bytes:
    if config.token_secret:
        key = config.token_secret.encode()
        if len(key) < MIN_SECRET_BYTES:
            raise ConfigError(TOKEN_SECRET_TOO_SHORT)  # for embedders; `serve` refused it already
        return key
    return await _secrets(store).secret(TOKEN_SECRET_NAME, lambda: secrets.token_bytes(32))


def _local_state_dir(config: Config) -> Path:
    """The folder of this dispatcher's files: the SQLite file's, or the default one's when the
    store is a PostgreSQL server (never a folder named after its URL and password)."""
    return Path(DEFAULT_DB_PATH if is_postgres_url(config.database_path) else config.database_path).parent


async def _open_store(config: Config, stack: AsyncExitStack) -> JobStore:
    """PostgreSQL when OPENDISPATCH_DB is a postgresql:// (or postgres://) URL, else the SQLite file."""
    if is_postgres_url(config.database_path):
        from .adapters.postgres import open_postgres_store

        return await stack.enter_async_context(open_postgres_store(config.database_path))
    from .adapters.sqlite import open_sqlite_store

    path = Path(config.database_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return await stack.enter_async_context(open_sqlite_store(path))


async def _local_sprites(config: Config, store: JobStore) -> SpritePort:
    """Local sprites under a folder of this dispatcher's own (its id is kept in the store), so a
    restarted dispatcher finds its sprites again and never mistakes another's for orphans."""
    from .adapters.local import LocalSprites
    from .adapters.local.sprites import default_workspace_root

    instance = (await _secrets(store).secret(INSTANCE_SECRET_NAME, lambda: secrets.token_hex(8).encode())).decode()
    # Shared chat must be sandboxed (validation refused it otherwise, unless the operator opted
    # out loudly); the console sandboxes when it can and says so once when it cannot.
    shared = config.chat_provider != "console" and not config.unsandboxed_local_sprites
    try:
        return LocalSprites(
            workspace_root=default_workspace_root() / instance,
            log_dir=Path(config.local_sprite_log_dir) if config.local_sprite_log_dir else None,
            sandbox=True if shared else None,
            allow_network=config.sandbox_allow,
            read_only_paths=tuple(Path(p) for p in config.sandbox_read_only),
            private_paths=(_local_state_dir(config).resolve(),),
        )
    except ValueError as exc:
        raise ConfigError(f"OPENDISPATCH_SANDBOX_ALLOW: {exc}") from None


async def _open_github_app(config: Config, stack: AsyncExitStack) -> RepoTokenMinter | None:
    """The GitHub App that mints jobs' repository tokens, when the configuration names one."""
    from .adapters.github.settings import GitHubAppSettings

    if not GitHubAppSettings.configured(config.environ):
        return None
    import httpx

    settings = GitHubAppSettings.from_env(config.environ)
    http = await stack.enter_async_context(httpx.AsyncClient(timeout=30.0))
    return settings.tokens(http)


def _runs_images(sprites: SpritePort) -> bool:
    """Local sprites run this host's programs: `--image` would be shown on the card and ignored."""
    from .adapters.local import LocalSprites

    return not isinstance(sprites, LocalSprites)


async def _open_sprites(config: Config, stack: AsyncExitStack, store: JobStore) -> SpritePort:
    """OPENDISPATCH_SPRITES: local subprocesses, Fly Machines, or Fly Machines on the emulator."""
    if config.sprite_backend == "local":
        return await _local_sprites(config, store)
    import httpx

    from .adapters.fly.machines import FlySettings, FlySprites
    from .adapters.fly.wire import Guest

    fly = config.fly
    url, token, app, image = fly.api_url, fly.api_token or "", fly.sprite_app or "", config.sprite_image
    if config.sprite_backend == "fly-emulator":
        url, token, app, image = await _start_fly_emulator(config, stack)
    http = await stack.enter_async_context(
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
    )
    settings = FlySettings(
        app=app,
        region=fly.region,
        image=image,
        guest=Guest(cpu_kind=fly.cpu_kind, cpus=fly.cpus, memory_mb=fly.memory_mb),
        instance=fly.instance,
    )
    return FlySprites(http, settings)


async def _start_fly_emulator(config: Config, stack: AsyncExitStack) -> tuple[str, str, str, str]:
    """The Machines API emulator on loopback, alive until every job's sprite is destroyed."""
    from .testing.fly_emulator import DEFAULT_APP, MachinesEmulator, serve_emulator

    token, app = secrets.token_urlsafe(24), config.fly.sprite_app or DEFAULT_APP
    emulator = MachinesEmulator(token=token, apps={app}, log_dir=config.local_sprite_log_dir)
    nursery = await stack.enter_async_context(trio.open_nursery())
    stack.callback(nursery.cancel_scope.cancel)  # runs before the nursery's exit (LIFO)
    url = await nursery.start(serve_emulator, emulator)
    log.info("Fly Machines emulator at %s (app %s)", url, app)
    return url, token, app, config.sprite_image or f"registry.fly.io/{app}/agent:emulated"


def session_settings_for(config: Config) -> SessionSettings:
    return SessionSettings(
        idle_suspend_s=config.session_idle_s,
        max_idle_s=config.session_max_idle_s,
        allow_shell=config.allow_shell_sessions,
    )


#: Live output page size per platform: each page must fit one message with its header.
async def _open_chat(
    config: Config,
    stack: AsyncExitStack,
    fetch_log: Callable[[str], Awaitable[list[str]]],
    metrics: PrometheusMetrics,
) -> ChatPort:
    """The configured chat adapter, entered on the stack so it outlives job clean-up."""
    provider = config.chat_provider

    def count_calls(platform: str) -> Any:
        from .adapters.prometheus.chat_calls import count_chat_calls

        return count_chat_calls(metrics, platform)

    if provider not in AVAILABLE_CHAT_PROVIDERS:
        raise ConfigError(
            f"CHAT_PROVIDER={provider} is not available in this build yet; "
            f"use one of {', '.join(AVAILABLE_CHAT_PROVIDERS)}."
        )
    try:
        if provider == "slack":
            from .adapters.slack import SlackSettings, open_slack_chat

            return await stack.enter_async_context(
                open_slack_chat(
                    SlackSettings.from_env(config.environ), fetch_log=fetch_log, on_response=count_calls("slack")
                )
            )
        if provider == "teams":
            from .adapters.teams import TeamsSettings, open_teams_chat

            return await stack.enter_async_context(open_teams_chat(TeamsSettings.from_env(config.environ), on_response=count_calls("teams")))
        if provider == "discord":
            from .adapters.discord import DiscordSettings, open_discord_chat

            return await stack.enter_async_context(open_discord_chat(DiscordSettings.from_env(config.environ), on_response=count_calls("discord")))
    except ImportError as exc:
        raise ConfigError(missing_extra(provider, exc).message) from None  # doctor's words too
    from .adapters.console import ConsoleChat

    return ConsoleChat(files_dir=_local_state_dir(config) / "transcripts")


#: How often the JobRunner hands a job's live output to the chat port, per platform. The
#: platforms allow about one edit per second per message, but the Slack, Teams and Discord
#: outboxes already coalesce queued edits of the same message and pace to the platform's
#: limits, so handing over every 250 ms costs no extra API calls: whenever the platform is
#: ready, the newest page is sent. With the old 1 s, a line waited ~0.5 s on average for its
#: job's next edit; with 0.25 s, bench/relay shows chat p50/p99 at N = 100 go from 511/1031 ms
#: to 163/320 ms at the same server CPU (docs/performance.md). The console prints only new
#: lines per edit, so it is unaffected but for latency.
def runner_settings_for(config: Config, limits: ChatLimits = ChatLimits()) -> RunnerSettings:
    """The runner's settings: the chat adapter's limits (it declares them), the config's quotas."""
    return RunnerSettings(
        page_chars=limits.page_chars,
        edit_interval_s=limits.edit_interval_s,
        max_output_lines=config.max_output_lines,
        max_output_chars=config.max_output_mb * 1024 * 1024,
    )


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
    session_settings: SessionSettings | None = None,
    repo_token_minter: RepoTokenMinter | None = None,
    cluster: Cluster | None = None,
    on_leadership_lost: Callable[[str], None] | None = None,
) -> AsyncIterator[Running]:
    """Start the webhook server and the dispatcher; on exit, cancel all and destroy sprites.

    `repo_token_minter`: where jobs' short-lived repository tokens come from; by default a
    GitHub App when the configuration names one (docs/github.md), else none.

    `cluster`: dispatchers sharing the database (ports/cluster.py). This one first becomes
    the leader (waiting for the lock, then for the last leader's job leases to expire), then
    starts as a restarted dispatcher does, adopting the jobs whose sprites still run; its
    heartbeat keeps its leases. `on_leadership_lost` is called when the lock is gone and must
    not return (by default the process stops at once, leaving the sprites to the next leader).
    """
    async with AsyncExitStack() as stack:
        if cluster is not None:
            await cluster.lead()
            waited = await cluster.wait_for_expired_leases()
            log.info("cluster: %s leads (waited %.1fs for the last leader's leases)", cluster.member, waited)
        # The listening sockets first: their address is the callback URL sprites get, so
        # everything below is built once, complete; connections wait in the backlog until served.
        listeners = bind_webhooks(bind or config.webhook_bind)
        stack.callback(listeners.close)
        bound_url = listeners.url
        callback_url = config.open_dispatch_url or bound_url  # what sprites post to
        store = store if store is not None else await _open_store(config, stack)
        sprites = sprites if sprites is not None else await _open_sprites(config, stack, store)
        metrics = PrometheusMetrics()
        chat = chat if chat is not None else await _open_chat(config, stack, store.output, metrics)
        key = await _token_key(config, store)
        tokens = TokenIssuer(key)
        # The database URL's password too: `Config.from_env` adds it, an embedder's Config may not.
        redactor = Redactor.of([*config.secret_values, *url_passwords(config.database_path), key.decode("latin-1")])
        watch = JobWatch()
        ledger = JobLedger(store, JobEvents(LiveJobs(), watch))
        grants = GrantIssuer(key)
        if repo_token_minter is None:
            repo_token_minter = await _open_github_app(config, stack)
        credentials = (
            None
            if repo_token_minter is None
            else JobCredentials(
                repo_token_minter,
                wall_clock=wall_clock,
                server_url=config.github_server_url,
                renew_margin_s=config.credential_renew_s,
            )
        )
        relay = Relay(
            store=store,
            ledger=ledger,
            tokens=tokens,
            redactor=redactor,
            wall_clock=wall_clock,
            metrics=metrics,
            credentials=credentials,
        )
        session_store = store if isinstance(store, SessionStore) else None
        sessions_settings = session_settings or session_settings_for(config)
        # Sessions in three parts sharing one registry: the sidecars' long poll, the runner's
        # hooks and the supervisor with the commands (which hand sprites the callback URL).
        live_sessions = LiveSessions(session_store) if session_store is not None else None
        session_polls = None
        if live_sessions is not None:
            await live_sessions.load()
            session_polls = SessionPolls(
                sessions=live_sessions, jobs=store, auth=relay, poll_wait_s=sessions_settings.poll_wait_s
            )
        stored_sessions = list(live_sessions.ids()) if live_sessions is not None else []
        approvals = (
            ApprovalDesk(
                store=store, jobs=store, relay=relay, chat=chat, ownership=config.ownership, wall_clock=wall_clock
            )
            if isinstance(store, ApprovalStore)
            else None
        )
        webhook_app = build_webhook_app(
            relay,
            health=lambda: {"liveJobs": len(ledger.live)},
            extra_routes=[metrics.http_route(), *(chat.http_routes() if isinstance(chat, ChatWithRoutes) else ())],
            on_answer=metrics.webhook_request,
            sessions=session_polls,
            streams=relay,
            approvals=approvals,
        )
        if config.web_enabled:
            add_web_routes(
                webhook_app,
                WebView(
                    store=store,
                    sessions=session_store,
                    grants=grants,
                    ownership=config.ownership,
                    redactor=redactor,
                    wall_clock=wall_clock,
                    watch=watch,
                ),
            )
        web_links = (
            WebLinks(
                grants,
                base_url=config.web_url or bound_url,
                wall_clock=wall_clock,
                job_link_s=config.web_link_s,
                list_link_s=config.web_grant_s,
            )
            if config.web_enabled
            else None
        )
        job_link = web_links.for_job if web_links is not None else no_link
        heartbeat = (
            None
            if cluster is None
            else LeaderHeartbeat(
                cluster,
                url=config.peer_url or bound_url,
                jobs=lambda: list(ledger.live.keys()),
                on_lost=on_leadership_lost or stop_now,
            )
        )
        timer = SharedTimer()
        runner = JobRunner(
            store=store,
            ledger=ledger,
            relay=relay,
            sprites=sprites,
            chat=chat,
            tokens=tokens,
            redactor=redactor,
            callback_url=callback_url,
            passthrough=config.passthrough,
            wall_clock=wall_clock,
            settings=runner_settings
            or runner_settings_for(config, chat.limits if isinstance(chat, DeclaresLimits) else ChatLimits()),
            metrics=metrics,
            timer=timer,
            credentials=credentials,
            approvals=approvals,
            job_link=job_link,
            session_sprites=SessionSpriteHooks(live_sessions) if live_sessions is not None else None,
            messages=cluster if isinstance(cluster, JobMessageStore) else None,
        )
        supervisor = None
        sessions = None
        if live_sessions is not None:
            supervisor = SessionSupervisor(
                sessions=live_sessions,
                jobs=store,
                ledger=ledger,
                runner=runner,
                sprites=sprites,
                chat=chat,
                tokens=tokens,
                callback_url=callback_url,
                passthrough=config.passthrough,
                wall_clock=wall_clock,
                settings=sessions_settings,
                credentials=credentials,
            )
            sessions = SessionCommands(
                sessions=live_sessions,
                supervisor=supervisor,
                jobs=store,
                ledger=ledger,
                chat=chat,
                wall_clock=wall_clock,
                settings=sessions_settings,
                access=config.access,
                ownership=config.ownership,
                job_link=job_link,
            )
        dispatcher = Dispatcher(
            store=store,
            chat=chat,
            runner=runner,
            parse_settings=ParseSettings(
                images=dict(config.sprite_images),
                default_agent=config.agent_type,
                default_image=config.sprite_image,
                runs_images=_runs_images(sprites),
            ),
            wall_clock=wall_clock,
            access=config.access,
            ownership=config.ownership,
            sessions=sessions,
            channel_settings=store if isinstance(store, ChannelSettingsStore) else None,
            approvals=approvals,
            web_links=web_links,
        )
        reaper = StaleJobReaper(
            store=store,
            ledger=ledger,
            sprites=sprites,
            chat=chat,
            wall_clock=wall_clock,
            supervised=lambda: ledger.live.keys(),
            interrupt=lambda job_id: runner.cancel(job_id, by="the stale job reaper"),
            waiting=live_sessions.waiting_jobs if live_sessions is not None else lambda: (),
            period_s=config.reaper_period_s,
            silence_s=config.silence_s,
            job_link=job_link,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_webhooks, webhook_app, listeners, fast_ingest=config.fast_ingest))
            if heartbeat is not None:  # standbys pass requests on to this address from now on
                await nursery.start(heartbeat.run)
            # Once serving, as the sprites of jobs it keeps report again.
            reconciled = await reconcile(
                store=store,
                ledger=ledger,
                sprites=sprites,
                chat=chat,
                wall_clock=wall_clock,
                sessions=stored_sessions,
                job_link=job_link,
            )
            await nursery.start(timer.run)
            await nursery.start(relay.run_ingest)
            if supervisor is not None:
                await nursery.start(supervisor.run)  # owns the sessions' tasks before jobs are adopted
            await nursery.start(dispatcher.run)
            for job_id in reconciled.kept:  # sprites that outlived a restart: see their jobs through
                kept = await store.get(job_id)
                if kept.sprite_id is not None:
                    await dispatcher.adopt(kept, Sprite(id=kept.sprite_id, job_id=kept.id))
            if supervisor is not None:
                await supervisor.resume_all()
            if approvals is not None:
                await nursery.start(approvals.run)  # re-posts what waited when we stopped
            await nursery.start(reaper.run)
            log.info("Open-Dispatch ready: webhooks at %s", bound_url)
            yield Running(
                dispatcher=dispatcher,
                webhook_url=bound_url,
                webhook_app=webhook_app,
                store=store,
                chat=chat,
                sprites=sprites,
                web_links=web_links,
                watch=watch,
            )
            nursery.cancel_scope.cancel()


def raise_open_file_limit() -> int:
    """Let the server hold as many connections as the system allows; returns the new limit.

    Every sidecar connection, chat socket and stream holds a file descriptor, and the usual
    soft limit is 1,024: a thousand sprites, or a thousand slow clients, and the server could
    not even accept `/health`. The hard limit is the operator's (or the platform's) choice.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.info("could not raise the open-file limit above %d", soft)
    return soft


def stop_now(reason: str, *, status: int = 75) -> None:
    """Stop this process at once, without the shutdown that ends jobs and destroys their
    sprites: another dispatcher takes them over (ports/cluster.py). 75: try again later."""
    log.critical("cluster: stopping now: %s; the next leader takes the jobs over", reason)
    logging.shutdown()
    os._exit(status)


async def _serve_in_cluster(
    config: Config,
    signals: AsyncIterator[int],
    task_status: trio.TaskStatus[Running],
) -> None:
    """`serve` on PostgreSQL: stand by (passing requests on to the leader) until this process
    leads, then run everything. SIGTERM (a deploy, `fly machine stop`) hands the jobs over to
    the next leader with their sprites running; SIGINT (Ctrl-C) stops as a single dispatcher
    does, ending the jobs and destroying their sprites."""
    from .adapters.postgres.cluster import open_postgres_cluster
    from .adapters.webhook.standby import serve_standby

    async with open_postgres_cluster(config.database_path, lease_s=config.lease_s) as cluster:
        leader: list[str | None] = [None]
        signalled: list[int] = []

        async def follow_leader() -> None:
            while True:
                try:
                    leader[0] = await cluster.leader_url()
                except Exception as exc:
                    log.warning("standby: cannot read who leads: %s", exc)
                await trio.sleep(cluster.poll_s)

        async def stop_on_signal(scope: trio.CancelScope) -> None:
            async for signum in signals:
                signalled.append(signum)
                scope.cancel()
                return

        async with trio.open_nursery() as standby:
            leader[0] = await cluster.leader_url()  # known before the first request arrives
            url = await standby.start(serve_standby, config.webhook_bind, lambda: leader[0])
            standby.start_soon(follow_leader)
            standby.start_soon(stop_on_signal, standby.cancel_scope)
            log.info("cluster: %s stands by at %s, passing requests on to the leader", cluster.member, url)
            await cluster.lead()
            standby.cancel_scope.cancel()
        if signalled:
            log.info("received %s while standing by: stopping", signal.Signals(signalled[0]).name)
            return
        async with open_dispatcher(config, cluster=cluster) as running:
            async with trio.open_nursery() as nursery:
                await nursery.start(running.chat.listen, running.dispatcher.handle)
                task_status.started(running)
                async for signum in signals:
                    if signum == signal.SIGTERM:
                        log.info("received SIGTERM: handing the jobs over to the next leader (their sprites keep running)")
                        await cluster.hand_over()
                        stop_now("handed over", status=0)
                    log.info("received %s: stopping (live sprites are destroyed first)", signal.Signals(signum).name)
                    break
                nursery.cancel_scope.cancel()


async def serve(config: Config, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
    """`opendispatch serve`: run until SIGTERM/SIGINT, then tear everything down cleanly.

    On PostgreSQL, as one of the dispatchers sharing it (`_serve_in_cluster`)."""
    raise_open_file_limit()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        if is_postgres_url(config.database_path):
            await _serve_in_cluster(config, signals, task_status)
            return
        async with open_dispatcher(config) as running:
            async with trio.open_nursery() as nursery:
                await nursery.start(running.chat.listen, running.dispatcher.handle)
                task_status.started(running)
                async for signum in signals:
                    log.info("received %s: stopping (live sprites are destroyed first)", signal.Signals(signum).name)
                    break
                nursery.cancel_scope.cancel()
