"""Fly settings are validated at start-up; the demo runs through FlySprites, the emulator and the real sidecar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opendispatch.config import Config
from opendispatch.doctor import report
from opendispatch.domain.errors import ConfigError

OPENDISPATCH = Path(sys.executable).with_name("opendispatch")
FLY = {
    "OPENDISPATCH_SPRITES": "fly",
    "FLY_API_TOKEN": "fo1_secret_token_abc",
    "FLY_SPRITE_APP": "my-sprites",
    "SPRITE_IMAGE": "registry.fly.io/my-sprites/agent:latest",
}


def parse(**env: str) -> Config:
    return Config.from_env(env, dotenv=None)


def test_fly_backend_with_defaults() -> None:
    config = parse(**FLY)
    assert config.sprite_backend == "fly"
    assert config.fly.region == "iad" and config.fly.api_url == "https://api.machines.dev"
    assert (config.fly.cpu_kind, config.fly.cpus, config.fly.memory_mb) == ("shared", 1, 1024)
    assert config.open_dispatch_url == "http://open-dispatch.internal:8080"  # the seed's default, over 6PN
    assert "fo1_secret_token_abc" not in repr(config)
    assert "fo1_secret_token_abc" in config.secret_values  # redacted from chat and logs


def test_inside_fly_the_callback_and_instance_follow_the_app_name() -> None:
    config = parse(**FLY, FLY_APP_NAME="od-prod", WEBHOOK_PORT="9090")
    assert config.open_dispatch_url == "http://od-prod.internal:9090"
    assert config.fly.instance == "od-prod"


@pytest.mark.parametrize(
    ("missing", "named"),
    [("FLY_API_TOKEN", "FLY_API_TOKEN"), ("FLY_SPRITE_APP", "FLY_SPRITE_APP"), ("SPRITE_IMAGE", "SPRITE_IMAGE")],
)
def test_each_missing_fly_variable_is_named_with_how_to_get_it(missing: str, named: str) -> None:
    env = {k: v for k, v in FLY.items() if k != missing}
    with pytest.raises(ConfigError, match=named) as caught:
        parse(**env)
    assert "docs/deploy-fly.md" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "advice"),
    [
        ("FLY_REGION", "frankfurt", "fly platform regions"),
        ("FLY_API_URL", "api.machines.dev", "http"),
        ("OPENDISPATCH_SPRITE_CPU_KIND", "gpu", "shared or performance"),
        ("OPENDISPATCH_SPRITE_CPUS", "two", "whole number"),
        ("OPENDISPATCH_SPRITE_MEMORY_MB", "300", "multiple of 256"),
        ("OPENDISPATCH_SPRITE_MEMORY_MB", "4096", "256-2048 MB"),
        ("FLY_SPRITE_APP", "My Sprites", "Fly app name"),
        ("OPENDISPATCH_PASSTHROUGH_ENV", "FLY_SECRET", "FLY_"),
        ("OPENDISPATCH_SPRITES", "kubernetes", "local, fly, fly-emulator"),
    ],
)
def test_bad_fly_settings_are_refused_with_advice(variable: str, value: str, advice: str) -> None:
    with pytest.raises(ConfigError, match=variable) as caught:
        parse(**{**FLY, variable: value})
    assert advice in str(caught.value)


def test_doctor_lists_fly_variables_without_printing_the_token() -> None:
    lines, status = report({**FLY, "FLY_SPRITE_APP": ""})
    text = "\n".join(lines)
    assert status == 1
    assert "FLY_SPRITE_APP" in text and "fly apps create" in text and "fly auth whoami" in text
    assert "fo1_secret_token_abc" not in text
    ok_lines, ok_status = report(FLY)
    assert ok_status == 0, ok_lines


def test_demo_on_the_fly_emulator_runs_a_job_to_success(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [str(OPENDISPATCH), "demo", "--sprites", "fly-emulator", "--script"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "succeeded · exit code 0" in result.stdout, result.stdout
    assert "4 passed, 0 failed" in result.stdout
    assert "Failed at agent exit: agent exited with code 1" in result.stdout
    assert not list((tmp_path / "opendispatch-fly-emulator").glob("*/repo"))  # machines destroyed, workspaces gone
