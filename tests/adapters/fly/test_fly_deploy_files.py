"""The deployment files agree with the server: port, health path, sidecar location."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx
import trio

from harness import open_harness
from opendispatch.config import Config

ROOT = Path(__file__).resolve().parents[3]


def fly_toml() -> dict[str, object]:
    return tomllib.loads((ROOT / "fly.toml").read_text())


async def test_fly_toml_checks_the_servers_port_and_health_path() -> None:
    toml = fly_toml()
    env = toml["env"]
    assert isinstance(env, dict)
    config = Config.from_env({**{k: str(v) for k, v in env.items()}, "FLY_API_TOKEN": "t", "FLY_SPRITE_APP": "my-sprites",
                              "SPRITE_IMAGE": "registry.fly.io/my-sprites/agent:1"}, dotenv=None)
    assert config.webhook_port == Config().webhook_port == 8080
    check = toml["checks"]["health"]  # type: ignore[index]
    assert check["port"] == config.webhook_port and check["type"] == "http"
    assert toml["kill_signal"] == "SIGTERM"
    assert "services" not in toml and "http_service" not in toml  # no public port by default
    with trio.fail_after(10):
        async with open_harness() as harness:
            async with httpx.AsyncClient(base_url=harness.running.webhook_url) as http:
                answer = await http.get(check["path"])
    assert answer.status_code == 200


def test_dockerfile_exposes_the_port_runs_serve_as_non_root_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert '"opendispatch", "serve"' in text
    assert "HEALTHCHECK" in text and "/health" in text


def test_sidecar_image_puts_sprite_reporter_in_slash_sidecar() -> None:
    text = (ROOT / "sidecar" / "Dockerfile").read_text()
    assert "/sidecar/sprite-reporter" in text
    assert (ROOT / "sidecar" / "sprite-reporter").is_file()


def test_agent_images_install_python_and_use_sprite_reporter() -> None:
    images = sorted((ROOT / "examples" / "agents").glob("*/Dockerfile"))
    assert [p.parent.name for p in images] == ["claude-code", "dotnet", "opencode"]
    for path in images:
        text = path.read_text()
        assert "COPY --from=sidecar /sidecar/ /usr/local/bin/" in text, path
        assert "python3" in text, path
        assert 'ENTRYPOINT ["/usr/local/bin/sprite-reporter"]' in text, path
