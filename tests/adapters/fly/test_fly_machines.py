"""FlySprites' wire behaviour (retries, error advice, create body) and the emulator's API edges."""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trio.testing

from opendispatch.testing.fly_emulator import MachinesEmulator, serve_emulator
from opendispatch.adapters.fly.machines import FlySettings, FlySprites, RetryPolicy
from opendispatch.adapters.fly.wire import META_DISPATCHER, META_JOB, Guest, exit_code_of
from opendispatch.domain.errors import SpawnFailed, SpriteProviderUnavailable
from opendispatch.ports.sprites import SpriteRequest

TOKEN = "fly-secret-token-8c1d"
APP = "od-test-sprites"
IMAGE = "registry.fly.io/od-test-sprites/agent:7"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(1000)"]
CEILING_S = 10.0
FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02)


def request(job_id: str = "j-0000000a", **env: str) -> SpriteRequest:
    return SpriteRequest(job_id=job_id, image=None, env={"JOB_ID": job_id, **env})


@attrs.define
class Fly:
    emulator: MachinesEmulator
    url: str
    http: httpx.AsyncClient

    def sprites(self, **settings: object) -> FlySprites:
        return FlySprites(self.http, attrs.evolve(FlySettings(app=APP, image=IMAGE, retry=FAST), **settings))


@pytest.fixture
async def fly(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Fly]:
    emulator = MachinesEmulator(token=TOKEN, apps={APP}, program=SLEEPER, workspace_root=tmp_path, kill_grace_s=0.2)
    url = await nursery.start(serve_emulator, emulator)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield Fly(emulator, url, http)
        for machine in emulator.live_machines():
            await http.delete(f"/v1/apps/{APP}/machines/{machine.id}", params={"force": "true"})


async def test_spawn_creates_a_one_shot_machine_marked_as_ours(fly: Fly) -> None:
    sprites = fly.sprites(region="ams", guest=Guest("performance", 2, 4096), instance="od-main")
    with trio.fail_after(CEILING_S):
        sprite = await sprites.spawn(request(GH_TOKEN="ghp_x"))
    machine = fly.emulator.machines[sprite.id]
    assert machine.state == "started"
    assert machine.region == "ams" and machine.name.startswith("od-j-0000000a-")
    assert machine.config["image"] == IMAGE
    assert machine.config["auto_destroy"] is True
    assert machine.config["restart"] == {"policy": "no"}
    assert machine.config["guest"] == {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}
    assert machine.config["metadata"] == {META_DISPATCHER: "od-main", META_JOB: "j-0000000a"}
    assert machine.config["env"] == {"JOB_ID": "j-0000000a", "GH_TOKEN": "ghp_x"}
    assert [s.id for s in await sprites.list_sprites()] == [sprite.id]
    assert await fly.sprites(instance="someone-else").list_sprites() == []


async def test_a_request_image_overrides_the_default(fly: Fly) -> None:
    with trio.fail_after(CEILING_S):
        sprite = await fly.sprites().spawn(SpriteRequest("j-0000000b", "registry.fly.io/x/other:2", {}))
    assert fly.emulator.machines[sprite.id].config["image"] == "registry.fly.io/x/other:2"


async def test_no_image_at_all_says_to_set_sprite_image(fly: Fly) -> None:
    with pytest.raises(SpawnFailed, match="SPRITE_IMAGE"):
        await fly.sprites(image=None).spawn(request())


async def test_a_bad_token_says_fly_auth_whoami_and_never_echoes_the_token(fly: Fly) -> None:
    async with httpx.AsyncClient(base_url=fly.url, headers={"Authorization": "Bearer wrong-token-123"}) as http:
        sprites = FlySprites(http, FlySettings(app=APP, image=IMAGE, retry=FAST))
        with pytest.raises(SpriteProviderUnavailable) as caught:
            await sprites.spawn(request())
    assert "fly auth whoami" in str(caught.value)
    assert "wrong-token-123" not in str(caught.value) and TOKEN not in str(caught.value)
    assert sum(1 for method, _ in fly.emulator.requests if method == "POST") == 1  # a 401 is not retried


async def test_an_unknown_app_says_fly_apps_create(fly: Fly) -> None:
    with pytest.raises(SpriteProviderUnavailable, match="fly apps create no-such-app"):
        await fly.sprites(app="no-such-app").spawn(request())


async def test_an_unknown_region_says_fly_platform_regions(fly: Fly) -> None:
    with pytest.raises(SpawnFailed, match="fly platform regions"):
        await fly.sprites(region="xyz").spawn(request())


async def test_a_missing_image_says_how_to_check_it_and_is_not_retried(fly: Fly) -> None:
    fly.emulator.missing_images.add(IMAGE)
    with pytest.raises(SpawnFailed) as caught:
        await fly.sprites().spawn(request())
    assert "fly image show" in str(caught.value) and IMAGE in str(caught.value)
    assert sum(1 for method, _ in fly.emulator.requests if method == "POST") == 1


async def test_a_bad_guest_size_names_the_variables(fly: Fly) -> None:
    with pytest.raises(SpawnFailed, match="OPENDISPATCH_SPRITE_MEMORY_MB"):
        await fly.sprites(guest=Guest("shared", 1, 300)).spawn(request())


async def test_rate_limits_and_5xx_are_retried_then_succeed(fly: Fly) -> None:
    fly.emulator.inject_fault(429, method="POST", retry_after="0")
    fly.emulator.inject_fault(503, method="GET")
    with trio.fail_after(CEILING_S):
        sprite = await fly.sprites().spawn(request())
    assert fly.emulator.machines[sprite.id].state == "started"
    assert len(fly.emulator.live_machines()) == 1


async def test_a_5xx_after_the_create_took_effect_does_not_make_a_second_machine(fly: Fly) -> None:
    fly.emulator.inject_fault(503, method="POST", after_effect=True)
    with trio.fail_after(CEILING_S):
        sprite = await fly.sprites().spawn(request())
    assert [m.id for m in fly.emulator.live_machines()] == [sprite.id]


async def test_fly_that_keeps_failing_is_reported_unavailable(fly: Fly) -> None:
    fly.emulator.inject_fault(503, times=FAST.attempts)
    with pytest.raises(SpriteProviderUnavailable, match=r"not answering \(HTTP 503\) after 3 tries"):
        await fly.sprites().list_sprites()


async def test_an_unreachable_api_is_reported_unavailable() -> None:
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9", headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        sprites = FlySprites(http, FlySettings(app=APP, image=IMAGE, retry=FAST))
        with pytest.raises(SpriteProviderUnavailable, match="connection error"):
            await sprites.spawn(request())


async def test_destroy_of_a_machine_that_exited_by_itself_is_fine(fly: Fly) -> None:
    fly.emulator.program = [sys.executable, "-c", "raise SystemExit(4)"]
    sprites = fly.sprites()
    with trio.fail_after(CEILING_S):
        sprite = await sprites.spawn(request())
        assert await sprites.wait_exited(sprite.id) == 4
        await fly.emulator.wait_until(lambda e: e.machines[sprite.id].state == "destroyed")  # auto_destroy
        await sprites.destroy(sprite.id)
        assert await FlySprites(fly.http, sprites.settings).wait_exited(sprite.id) is None  # gone, unknown here


# --- retry timing, exact under a mock clock (in-process transport, no sockets) -------------


def scripted(answers: list[httpx.Response], seen: list[float]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(trio.current_time())
        return answers.pop(0)

    return handle


async def test_retry_after_is_honoured_to_the_second(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[float] = []
    answers = [
        httpx.Response(429, json={"error": "rate limited"}, headers={"Retry-After": "7"}),
        httpx.Response(503, json={"error": "try again"}, headers={"Retry-After": "2"}),
        httpx.Response(200, json=[]),
    ]
    transport = httpx.MockTransport(scripted(answers, seen))
    async with httpx.AsyncClient(transport=transport, base_url="https://fly.test") as http:
        assert await FlySprites(http, FlySettings(app=APP)).list_sprites() == []
    assert seen == [0.0, 7.0, 9.0]


async def test_backoff_without_retry_after_grows_with_jitter(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[float] = []
    answers = [httpx.Response(502), httpx.Response(502), httpx.Response(502), httpx.Response(200, json=[])]
    policy = RetryPolicy(attempts=4, base_delay_s=1.0, max_delay_s=3.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(scripted(answers, seen)), base_url="https://fly.test") as http:
        await FlySprites(http, FlySettings(app=APP, retry=policy), rng=random.Random(1)).list_sprites()
    gaps = [b - a for a, b in zip(seen, seen[1:])]
    assert 0.5 <= gaps[0] <= 1.0 and 1.0 <= gaps[1] <= 2.0 and 1.5 <= gaps[2] <= 3.0


async def test_a_4xx_that_will_not_change_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[float] = []
    answers = [httpx.Response(400, json={"error": "bad metadata filter"})]
    async with httpx.AsyncClient(transport=httpx.MockTransport(scripted(answers, seen)), base_url="https://fly.test") as http:
        with pytest.raises(SpriteProviderUnavailable, match="bad metadata filter"):
            await FlySprites(http, FlySettings(app=APP)).list_sprites()
    assert len(seen) == 1


def test_exit_codes_are_read_from_fly_go_shaped_events() -> None:
    assert exit_code_of([{"type": "exit", "request": {"exit_event": {"exit_code": 3}}}]) == 3
    assert exit_code_of([{"type": "exit", "request": {"MonitorEvent": {"exit_event": {"exit_code": 9}}}}]) == 9
    assert exit_code_of([{"type": "exit", "request": {"exit_event": {"requested_stop": True}}}]) == 0  # omitempty
    assert exit_code_of([{"type": "start", "status": "started"}]) is None


# --- the emulator's API edges -------------------------------------------------------------


async def test_emulator_requires_the_bearer_token(fly: Fly) -> None:
    async with httpx.AsyncClient(base_url=fly.url) as anonymous:
        response = await anonymous.get(f"/v1/apps/{APP}/machines")
    assert response.status_code == 401 and "error" in response.json()


async def test_emulator_answers_404_for_unknown_apps_and_machines(fly: Fly) -> None:
    assert (await fly.http.get("/v1/apps/nope/machines")).status_code == 404
    missing = await fly.http.get(f"/v1/apps/{APP}/machines/0123456789abcd")
    assert missing.status_code == 404 and missing.json()["error"]


async def test_emulator_validates_create_with_422(fly: Fly) -> None:
    path = f"/v1/apps/{APP}/machines"
    assert (await fly.http.post(path, json={"config": {}})).status_code == 422
    reserved = await fly.http.post(path, json={"config": {"image": IMAGE, "env": {"FLY_APP_NAME": "x"}}})
    assert reserved.status_code == 422
    first = await fly.http.post(path, json={"name": "twin", "config": {"image": IMAGE}})
    second = await fly.http.post(path, json={"name": "twin", "config": {"image": IMAGE}})
    assert first.status_code == 200 and second.status_code == 422 and second.json()["status"] == "name_taken"


async def test_emulator_machine_lifecycle_wait_and_delete_rules(fly: Fly) -> None:
    path = f"/v1/apps/{APP}/machines"
    with trio.fail_after(CEILING_S):
        machine = (await fly.http.post(path, json={"config": {"image": IMAGE}})).json()
        assert len(machine["id"]) == 14 and len(machine["instance_id"]) == 26 and machine["state"] == "created"
        waited = await fly.http.get(f"{path}/{machine['id']}/wait", params={"state": "started", "timeout": "5"})
        assert waited.json() == {"ok": True, "state": "started"}
        assert (await fly.http.get(f"{path}/{machine['id']}/wait", params={"state": "bogus"})).status_code == 400
        assert (await fly.http.get(f"{path}/{machine['id']}/wait", params={"state": "stopped"})).status_code == 400
        timed_out = await fly.http.get(
            f"{path}/{machine['id']}/wait", params={"state": "stopped", "timeout": "1", "instance_id": machine["instance_id"]}
        )
        assert timed_out.status_code == 408
        assert (await fly.http.delete(f"{path}/{machine['id']}")).status_code == 412  # running, no force
        lease = await fly.http.post(f"{path}/{machine['id']}/lease", json={"ttl": 60})
        assert lease.status_code == 201
        assert (await fly.http.post(f"{path}/{machine['id']}/lease", json={"ttl": 60})).status_code == 409
        nonce = lease.json()["data"]["nonce"]
        assert (await fly.http.delete(f"{path}/{machine['id']}", params={"force": "true"})).status_code == 412
        gone = await fly.http.delete(
            f"{path}/{machine['id']}", params={"kill": "true"}, headers={"fly-machine-lease-nonce": nonce}
        )
        assert gone.json() == {"ok": True}
        assert (await fly.http.get(f"{path}/{machine['id']}")).status_code == 404
        listed = (await fly.http.get(path, params={"include_deleted": "true"})).json()
        assert [m["state"] for m in listed] == ["destroyed"]
        assert exit_code_of(listed[0]["events"]) == 143  # SIGTERM, as 128 + 15
        assert (await fly.http.get(path)).json() == []
