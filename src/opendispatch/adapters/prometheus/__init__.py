"""Prometheus metrics (prometheus-client) with their own registry, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ...ports.http import HttpRequest, HttpResponse, HttpRoute

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._active = Gauge("opendispatch_jobs_active", "Jobs running in this dispatcher", registry=r)
        self._finished = Counter("opendispatch_jobs_finished", "Jobs ended, by final state", ["state"], registry=r)
        self._sprites = Gauge("opendispatch_live_sprites", "Sprites this dispatcher holds", registry=r)
        self._lines = Counter("opendispatch_lines_relayed", "Output lines stored and relayed", registry=r)
        self._latency = Histogram(
            "opendispatch_relay_latency_seconds",
            "From a line reaching the webhook server to its chat update being sent",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._requests = Counter(
            "opendispatch_webhook_requests", "Webhook requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self._chat = Counter(
            "opendispatch_chat_calls", "Chat API calls by platform, method and outcome (ok, retry, error)",
            ["platform", "method", "outcome"], registry=r,
        )

    def job_started(self) -> None:
        self._active.inc()

    def job_finished(self, state: str) -> None:
        self._active.dec()
        self._finished.labels(state=state).inc()

    def live_sprites(self, count: int) -> None:
        self._sprites.set(count)

    def lines_relayed(self, count: int) -> None:
        self._lines.inc(count)

    def relay_latency(self, seconds: float) -> None:
        self._latency.observe(seconds)

    def webhook_request(self, endpoint: str, status: int) -> None:
        self._requests.labels(endpoint=endpoint, status=str(status)).inc()

    def chat_call(self, platform: str, method: str, outcome: str) -> None:
        self._chat.labels(platform=platform, method=method, outcome=outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def http_route(self) -> HttpRoute:
        async def serve(_: HttpRequest) -> HttpResponse:
            return HttpResponse(200, self.exposition(), content_type=CONTENT_TYPE_LATEST)

        return HttpRoute("/metrics", serve, methods=("GET",))
