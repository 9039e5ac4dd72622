"""What the application counts. A Prometheus adapter implements it; the default counts nothing.

A port rather than a direct prometheus_client dependency keeps the application free of a
global registry and lets tests read exact numbers from an in-memory implementation.
"""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    def job_started(self) -> None: ...
    def job_finished(self, state: str) -> None: ...
    def live_sprites(self, count: int) -> None: ...
    def lines_relayed(self, count: int) -> None: ...
    def relay_latency(self, seconds: float) -> None: ...
    def webhook_request(self, endpoint: str, status: int) -> None: ...
    def chat_call(self, platform: str, method: str, outcome: str) -> None: ...


class NoMetrics:
    def job_started(self) -> None:
        pass

    def job_finished(self, state: str) -> None:
        pass

    def live_sprites(self, count: int) -> None:
        pass

    def lines_relayed(self, count: int) -> None:
        pass

    def relay_latency(self, seconds: float) -> None:
        pass

    def webhook_request(self, endpoint: str, status: int) -> None:
        pass

    def chat_call(self, platform: str, method: str, outcome: str) -> None:
        pass
