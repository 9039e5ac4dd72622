"""A job's repository token, end to end (issue #24): the dispatcher mints it from a GitHub App
(the loopback fake verifies the app's JWT as GitHub does), a sandboxed local sprite's real
sidecar fetches it with its job token through git's credential helper, and a real git server
(`git http-backend` behind Basic auth `x-access-token:<token>`) lets the clone in only with a
token minted for that repository. Tokens live 3 s here: the agent's `git fetch` after 4 s
needs a renewed one. No token is in the spawn request, any process's argv, the sidecar's
environment, the clone's git config, the stored output, chat or the server's log.
"""

from __future__ import annotations

import io
import logging
import shlex
import time
from collections.abc import Mapping
from pathlib import Path

import attrs
import trio

from fakes.github import APP_ID, open_fake_github
from opendispatch.adapters.local import LocalSprites
from opendispatch.adapters.memory.chat import MemoryChat
from opendispatch.adapters.sqlite import open_sqlite_store
from opendispatch.bootstrap import open_dispatcher
from opendispatch.config import Config
from opendispatch.domain.job import Conversation, JobState, User
from opendispatch.domain.messages import Inbound, JobCard, LiveOutput
from opendispatch.domain.redaction import Redactor
from opendispatch.logs import configure_logging
from opendispatch.ports.sprites import Sprite, SpritePort, SpriteRequest
from sidecar.git_http_server import GitHttpServer
from test_sandbox import require_sandbox

OPERATOR_GH_TOKEN = "ghp_OperatorTokenReachingEverything01"
TOKEN_LIFETIME_S = 3
AGENT = (
    "echo CLONED $(git log --format=%s -1); sleep 4; "
    "git fetch origin && echo FETCHED; "
    'echo "agent sees GH_TOKEN=$GH_TOKEN"'
)


@attrs.define
class RecordingSprites:
    """Sprites of another backend, with every spawn request kept for inspection."""

    inner: SpritePort
    requests: list[SpriteRequest] = attrs.Factory(list)
    spawned: trio.Event = attrs.Factory(trio.Event)

    async def spawn(self, request: SpriteRequest) -> Sprite:
        self.requests.append(request)
        sprite = await self.inner.spawn(request)
        self.spawned.set()
        return sprite

    async def wait_exited(self, sprite_id: str) -> int | None:
        return await self.inner.wait_exited(sprite_id)

    async def destroy(self, sprite_id: str) -> None:
        await self.inner.destroy(sprite_id)

    async def list_sprites(self) -> list[Sprite]:
        return await self.inner.list_sprites()


def processes() -> dict[int, tuple[str, bytes]]:
    """Every process's argv (joined) and, where readable, environment."""
    found: dict[int, tuple[str, bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        found[int(entry.name)] = (argv, environ)
    return found


def git_configs(root: Path) -> str:
    return "\n".join(path.read_text() for path in root.rglob(".git/config"))


async def test_the_job_clones_and_fetches_with_a_renewed_per_repository_token_found_nowhere_else(tmp_path: Path) -> None:
    require_sandbox()
    async with open_fake_github(token_lifetime_s=TOKEN_LIFETIME_S) as github:
        github.install("acme", ["api"])

        def check(username: str, password: str) -> bool:
            return username == "x-access-token" and github.token_allows(password, "acme", "api", time.time(), contents="read")

        with GitHttpServer(tmp_path / "git", check=check) as git:
            git.add_repo("acme/api", {"README.md": "hello\n"})
            git.add_repo("acme/other", {"README.md": "not yours\n"})
            port = git.url.rsplit(":", 1)[1]
            env: Mapping[str, str] = {
                "GITHUB_APP_ID": str(APP_ID),
                "GITHUB_APP_PRIVATE_KEY": github.private_key_pem,
                "GITHUB_API_URL": github.base_url,
                "GITHUB_SERVER_URL": git.url,
                "OPENDISPATCH_CREDENTIAL_RENEW_S": "1",
                "GH_TOKEN": OPERATOR_GH_TOKEN,  # the app replaces it: not passed to sprites
                "OPENDISPATCH_DB": str(tmp_path / "jobs.db"),
            }
            config = Config.from_env(env, dotenv=None)
            sprites = RecordingSprites(
                LocalSprites(
                    workspace_root=tmp_path / "sprites",
                    sandbox=True,
                    allow_network=(f"127.0.0.1:{port}",),
                    log_dir=tmp_path / "logs",
                )
            )
            log_stream = io.StringIO()
            handler = configure_logging(
                verbose=True, redactor=Redactor.of(config.secret_values), stream=log_stream, json_lines=True
            )
            logging.getLogger().setLevel(logging.DEBUG)
            chat = MemoryChat()
            seen_while_running: dict[int, tuple[str, bytes]] = {}
            configs_while_running = ""
            try:
                with trio.fail_after(90):
                    async with open_sqlite_store(tmp_path / "jobs.db") as store:
                        async with open_dispatcher(config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0") as od:
                            await od.dispatcher.handle(
                                Inbound(
                                    Conversation("memory", "c1"),
                                    User("u1", "alice"),
                                    f"/od-run -a shell -r acme/api -- {shlex.quote(AGENT)}",
                                )
                            )
                            await chat.wait_for(
                                lambda m: isinstance(m, LiveOutput) and any(line.startswith("CLONED") for line in m.lines)
                            )
                            seen_while_running = processes()  # the agent sleeps: the sidecar is up
                            configs_while_running = git_configs(tmp_path / "sprites")
                            card = await chat.wait_for(lambda m: isinstance(m, JobCard))
                            assert isinstance(card, JobCard)
                            job = await store.get(card.job.id)
                            stored = await store.output(job.id)
            finally:
                logging.getLogger().removeHandler(handler)

            assert job.state is JobState.SUCCEEDED, (job, stored)
            assert "CLONED initial" in stored, stored
            assert "FETCHED" in stored, stored

            minted = [token for token in github.tokens if token.repositories is not None and list(token.repositories) == ["api"]]
            assert len(minted) >= 2, "the fetch after the first token expired needed a renewed one"
            assert all(token.owner == "acme" for token in github.tokens)
            assert len(minted) == len(github.tokens), "a token for anything but acme/api"
            # The clone and the later fetch each got in with a token valid at that moment; the
            # fetch's was not the first (that one had expired).
            let_in = [request for request in git.requests if request.allowed]
            assert let_in and let_in[0].password == minted[0].token
            assert let_in[-1].password != minted[0].token
            assert not github.token_allows(minted[0].token, "acme", "api", time.time())  # expired by now
            assert not github.token_allows(minted[-1].token, "acme", "other", time.time())  # one repository only

            secrets = [token.token for token in github.tokens]
            request_env = "\n".join(f"{k}={v}" for request in sprites.requests for k, v in request.env.items())
            assert "OPENDISPATCH_GIT_CREDENTIALS" in request_env
            for secret in [*secrets, OPERATOR_GH_TOKEN]:
                assert secret not in request_env, "a token in the spawn request"
            everything = "\n".join([chat.transcript(), *stored, log_stream.getvalue(), repr(job)])
            for secret in secrets:
                assert secret not in everything, "a token in chat, the store or the log"
                assert secret not in configs_while_running, "a token in the clone's git config"
                for pid, (argv, environ) in seen_while_running.items():
                    assert secret not in argv, f"a token in the argv of process {pid}: {argv[:80]}"
                    if "sprite_reporter" in argv or "sprite-reporter" in argv:
                        assert secret.encode() not in environ, f"a token in the sidecar's environment ({pid})"
            assert any("sprite-reporter" in argv or "sprite_reporter" in argv for argv, _ in seen_while_running.values())
            assert configs_while_running and "x-access-token" not in configs_while_running
            assert any(line.startswith("agent sees GH_TOKEN=") and line != "agent sees GH_TOKEN=" for line in stored)
            assert OPERATOR_GH_TOKEN not in everything


async def test_the_fly_spawn_request_carries_no_token_but_the_job_token(tmp_path: Path) -> None:
    """With a GitHub App, the machine's configuration (readable by anyone with the sprite app's
    API token) holds the job token and nothing else secret: no operator GH_TOKEN, no minted token.
    (The model API key belongs in the sprite app's Fly secrets: docs/github.md.)"""
    import json
    import sys

    import httpx

    from opendispatch.testing.fly_emulator import MachinesEmulator, serve_emulator
    from opendispatch.adapters.fly.machines import FlySettings, FlySprites

    fly_token, app = "fly-api-token-0123456789", "od-sprites"
    async with open_fake_github() as github, trio.open_nursery() as nursery:
        github.install("acme", ["api"])
        emulator = MachinesEmulator(
            token=fly_token, apps={app}, program=[sys.executable, "-c", "import time; time.sleep(60)"],
            workspace_root=tmp_path / "machines", kill_grace_s=0.2,
        )
        url = await nursery.start(serve_emulator, emulator)
        env = {
            "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_APP_PRIVATE_KEY": github.private_key_pem,
            "GITHUB_API_URL": github.base_url,
            "GH_TOKEN": OPERATOR_GH_TOKEN,
        }
        config = Config.from_env(env, dotenv=None)
        chat = MemoryChat()
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {fly_token}"}) as http:
            sprites = RecordingSprites(FlySprites(http, FlySettings(app=app, image="registry.fly.io/od-sprites/agent:1")))
            with trio.fail_after(30):
                async with open_sqlite_store(tmp_path / "jobs.db") as store:
                    async with open_dispatcher(config, chat=chat, sprites=sprites, store=store, bind="127.0.0.1:0") as od:
                        await od.dispatcher.handle(
                            Inbound(Conversation("memory", "c1"), User("u1", "alice"), "/od-run -a shell -r acme/api -- true")
                        )
                        await sprites.spawned.wait()
                        machine = next(iter(emulator.machines.values()))
                        await od.dispatcher.handle(
                            Inbound(Conversation("memory", "c1"), User("u1", "alice"), f"/od-cancel {machine.config['env']['JOB_ID']}")
                        )
        nursery.cancel_scope.cancel()
    configuration = json.dumps(machine.config)
    minted = [token.token for token in github.tokens]
    assert len(minted) == 1  # minted for the job, kept by the dispatcher
    for secret in [*minted, OPERATOR_GH_TOKEN, github.private_key_pem.strip().splitlines()[1]]:
        assert secret not in configuration
    env_sent = machine.config["env"]
    secret_looking = {
        name for name in env_sent if any(word in name for word in ("TOKEN", "KEY", "SECRET", "PASSWORD"))
    }
    assert secret_looking == {"JOB_TOKEN"}, secret_looking
    assert env_sent["OPENDISPATCH_GIT_CREDENTIALS"] == "https://github.com"
