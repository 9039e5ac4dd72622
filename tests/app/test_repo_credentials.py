"""Per-job repository tokens through the dispatcher: minted before the sprite, fetched by the
sprite with its job token, renewed near expiry, never in the spawn request (issue #24).

The minter here is an in-memory one (the port's contract with a real GitHub App is in
tests/adapters/github/); the end-to-end run with the real sidecar and git is in
tests/e2e/test_github_credentials.py.
"""

from __future__ import annotations

import attrs
import trio
import trio.testing

from harness import Harness, open_harness, trio_wall_clock
from opendispatch.config import Config
from opendispatch.domain.job import FailureStage, JobState
from opendispatch.domain.repo_credentials import CredentialsUnavailable, GitHubRepo, RepoToken


@attrs.define
class MemoryMinter:
    """Mints `tok-N` tokens living `lifetime_s`; `refusal` makes the next mints fail."""

    lifetime_s: float = 3600.0
    refusal: str | None = None
    minted: list[tuple[GitHubRepo, str]] = attrs.Factory(list)

    async def mint(self, repo: GitHubRepo) -> RepoToken:
        if self.refusal is not None:
            raise CredentialsUnavailable(self.refusal)
        token = f"ghs_memoryToken{len(self.minted):04d}XYZ"
        self.minted.append((repo, token))
        return RepoToken(token, trio_wall_clock() + self.lifetime_s)


def config(**env: str) -> Config:
    return Config.from_env(env, dotenv=None)


async def ask(h: Harness, job_id: str, token: str) -> tuple[int, dict[str, object]]:
    answer = await h.http.post(
        "/webhooks/credentials", json={"jobId": job_id}, headers={"Authorization": f"Bearer {token}"}
    )
    return answer.status_code, answer.json()


async def test_a_github_job_gets_a_token_for_its_repository_only_from_the_webhook_never_in_its_environment() -> None:
    minter = MemoryMinter()
    async with open_harness(repo_token_minter=minter) as h:
        job = await h.run('/od-run -a shell -r acme/api "x"')
        sidecar = await h.sidecar()
        assert minter.minted == [(GitHubRepo("acme", "api"), "ghs_memoryToken0000XYZ")]  # before the sprite
        env = sidecar.request.env
        assert env["OPENDISPATCH_GIT_CREDENTIALS"] == "https://github.com"
        assert not any("ghs_" in value for value in env.values()), "a token in the spawn request"
        assert "GH_TOKEN" not in env

        status, body = await ask(h, job.id, sidecar.token)
        assert status == 200
        assert body == {
            "ok": True,
            "username": "x-access-token",
            "password": "ghs_memoryToken0000XYZ",
            "expiresAt": body["expiresAt"],
            "server": "https://github.com",
        }
        assert len(minter.minted) == 1  # the fresh one is reused

        # The agent prints it: chat and the store show ***.
        await sidecar.logs(["token is ghs_memoryToken0000XYZ"], seq=0)
        await sidecar.status("completed", exit_code=0)
        await h.card(job.id)
        assert "ghs_memoryToken0000XYZ" not in "\n".join(await h.store.output(job.id))
        assert "ghs_memoryToken0000XYZ" not in h.chat.transcript()

        status, body = await ask(h, job.id, sidecar.token)
        assert status == 409  # the job is over: no more tokens for its sprite


async def test_a_token_near_expiry_is_renewed_and_the_new_one_is_redacted_too() -> None:
    minter = MemoryMinter(lifetime_s=200.0)  # already inside the 300 s renewal margin
    async with open_harness(repo_token_minter=minter) as h:
        job = await h.run('/od-run -a shell -r https://github.com/acme/api.git "x"')
        sidecar = await h.sidecar()
        assert len(minter.minted) == 1  # the one minted before the sprite
        minter.lifetime_s = 3600.0
        status, body = await ask(h, job.id, sidecar.token)
        assert (status, body["password"]) == (200, "ghs_memoryToken0001XYZ")
        await sidecar.logs(["renewed ghs_memoryToken0001XYZ"], seq=0)
        await sidecar.status("completed", exit_code=0)
        await h.card(job.id)
        assert (await h.store.output(job.id))[-1] == "renewed ***"


async def test_when_minting_fails_the_job_fails_at_the_credentials_stage_before_any_sprite() -> None:
    refusal = "the GitHub App is not installed on acme/api: install it at https://github.com/apps/od/installations/new"
    minter = MemoryMinter(refusal=refusal)
    async with open_harness(repo_token_minter=minter) as h:
        job = await h.run('/od-run -a shell -r acme/api "x"')
        card = await h.card(job.id)
        stored = await h.store.get(job.id)
        assert stored.state is JobState.FAILED
        assert stored.failure is not None and stored.failure.stage is FailureStage.CREDENTIALS
        assert stored.failure.reason == refusal
        assert h.sprites.spawned == []
        assert "credentials" in h.chat.transcript() and "install it at" in h.chat.transcript()
        assert card.job.id == job.id


async def test_jobs_without_a_github_repository_get_no_token_and_no_mint() -> None:
    minter = MemoryMinter()
    async with open_harness(repo_token_minter=minter) as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        assert "OPENDISPATCH_GIT_CREDENTIALS" not in sidecar.request.env
        status, body = await ask(h, job.id, sidecar.token)
        assert status == 404 and "no repository credentials" in str(body["error"])
        job2 = await h.run('/od-run -a shell -r https://gitlab.com/acme/api.git "x"')
        sidecar2 = await h.sidecar()
        assert (await ask(h, job2.id, sidecar2.token))[0] == 404
        assert minter.minted == []


async def test_a_wrong_token_gets_nothing() -> None:
    minter = MemoryMinter()
    async with open_harness(repo_token_minter=minter) as h:
        first = await h.run('/od-run -a shell -r acme/api "x"')
        first_sidecar = await h.sidecar()
        second = await h.run('/od-run -a shell -r acme/web "x"')
        await h.sidecar()
        status, body = await ask(h, second.id, first_sidecar.token)  # another job's token
        assert status == 401 and "password" not in body
        assert (await ask(h, first.id, "odj1.0.forged"))[0] == 401


async def test_the_repository_allowlist_is_checked_before_anything_is_minted() -> None:
    minter = MemoryMinter()
    async with open_harness(config=config(OPENDISPATCH_ALLOWED_REPOS="acme/*"), repo_token_minter=minter) as h:
        await h.say('/od-run -a shell -r other/secret "x"')
        assert "Repository other/secret is not allowed" in h.notices()[-1]
        assert minter.minted == [] and h.sprites.spawned == []


def test_doctor_warns_that_gh_token_reaches_every_repository_and_an_app_replaces_it() -> None:
    from opendispatch.doctor import report

    lines, status = report({"GH_TOKEN": "ghp_0123456789abcdefghij"})
    assert status == 0
    assert any("GH_TOKEN gives every job every repository the token reaches" in line for line in lines)
    assert not any("ghp_0123456789abcdefghij" in line for line in lines)
    lines, status = report({"GITHUB_APP_ID": "42", "GITHUB_APP_PRIVATE_KEY": "not a key"})
    assert status == 1 and any(line.startswith("✗ GITHUB_APP_PRIVATE_KEY") for line in lines)


def test_with_an_app_the_operators_gh_token_is_not_passed_to_sprites() -> None:
    without_app = config(GH_TOKEN="ghp_0123456789abcdefghij")
    with_app = config(GH_TOKEN="ghp_0123456789abcdefghij", GITHUB_APP_ID="42", GITHUB_APP_PRIVATE_KEY_PATH="/x.pem")
    assert without_app.passthrough["GH_TOKEN"] == "ghp_0123456789abcdefghij"
    assert "GH_TOKEN" not in with_app.passthrough


async def test_a_persistent_sessions_messages_share_its_token_until_the_session_ends() -> None:
    minter = MemoryMinter()
    async with open_harness(repo_token_minter=minter) as h:
        await h.say("/od-start work --repo acme/api --agent opencode --persistent")
        _, request = await h.sprites.wait_for_spawn()
        env = request.env
        assert env.get("OPENDISPATCH_SESSION_MODE") == "persistent"
        assert env["OPENDISPATCH_GIT_CREDENTIALS"] == "https://github.com"
        assert not any("ghs_" in value for value in env.values())
        assert len(minter.minted) == 1  # before the sprite: a session without credentials does not start
        messages = []
        for text in ("first", "second"):
            job = await h.run(f"/od-send work {text}")
            offer = await h.http.get(  # what the session's sidecar asks for its next message
                "/webhooks/session/next",
                params={"sessionId": env["SESSION_ID"], "waitS": "5"},
                headers={"Authorization": f"Bearer {env['SESSION_TOKEN']}"},
            )
            assert offer.status_code == 200 and offer.json()["jobId"] == job.id
            token = offer.json()["jobToken"]
            messages.append((job, token))
            status, body = await ask(h, job.id, token)
            assert (status, body["password"]) == (200, "ghs_memoryToken0000XYZ")
            await h.http.post(
                "/webhooks/status",
                json={"jobId": job.id, "status": "completed", "exitCode": 0},
                headers={"Authorization": f"Bearer {token}"},
            )
            await h.card(job.id)
        assert len(minter.minted) == 1  # one token for the session, not one per message
        await h.say("/od-stop work")
        job = await h.run("/od-run -a shell -r acme/api x")
        assert job.session is None


async def test_a_session_whose_repository_has_no_credentials_does_not_start() -> None:
    minter = MemoryMinter(refusal="the GitHub App is not installed on acme/api: install it at https://x/installations/new")
    async with open_harness(repo_token_minter=minter) as h:
        await h.say("/od-start work --repo acme/api --agent opencode --persistent")
        await trio.testing.wait_all_tasks_blocked()
        assert h.sprites.spawned == []
        assert any("not installed on acme/api" in notice for notice in h.notices())
