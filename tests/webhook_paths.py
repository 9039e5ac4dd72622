"""The two webhook paths, for tests that must hold on both: the default (Quart on hypercorn)
and the fast path (OPENDISPATCH_FAST_INGEST=1: adapters/webhook/fast/).

`webhook_path` (import it into a test module) runs each test there on both; `use_fast_ingest`
makes every `Config.embedded()` of one test (the harness's) take the fast path.
"""

from __future__ import annotations

import pytest

from opendispatch.adapters.webhook.fast import AVAILABLE
from opendispatch.config import Config

PLAIN = "plain"
FAST = "fast"


def use_fast_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    if not AVAILABLE:
        pytest.skip("the fast ingest path needs epoll (Linux)")
    embedded = Config.embedded

    def with_fast_ingest(**overrides: object) -> Config:
        return embedded(**{"fast_ingest": True, **overrides})

    monkeypatch.setattr(Config, "embedded", with_fast_ingest)


@pytest.fixture(autouse=True, params=[PLAIN, FAST])
def webhook_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == FAST:
        use_fast_ingest(monkeypatch)
    return str(request.param)


@pytest.fixture(autouse=True)
def fast_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Import as `fast_ingest` into a module whose tests are all about the fast path."""
    use_fast_ingest(monkeypatch)
