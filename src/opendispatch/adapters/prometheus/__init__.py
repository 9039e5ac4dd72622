"""Prometheus metrics (prometheus-client) with their own registry, served at /metrics."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ...ports.http import HttpRequest, HttpResponse, HttpRoute

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _RelayFigures(Collector):
    """Lines relayed and the relay latency histogram: plain numbers, read when scraped.

    Why not prometheus-client's Counter and Histogram: they are updated per stored record
    and per chat update, thousands of times a second with a thousand sprites streaming, and
    each update takes a lock (and walks the buckets); that was ~2 % of the server's CPU
    (docs/performance.md, round 6). Every update and every scrape runs on the event loop's
    one thread, so plain numbers are enough.
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)  # the last is +Inf
        self.latency_sum = 0.0
        self.lines = 0

    def observe_latency(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # the first bucket whose bound >= seconds
        self.latency_sum += seconds

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("opendispatch_lines_relayed", "Output lines stored and relayed", value=self.lines)
        cumulative = list(accumulate(self.counts))
        labels = [str(floatToGoString(bound)) for bound in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(
            "opendispatch_relay_latency_seconds",
            "From a line reaching the webhook server to its chat update being sent",
            buckets=list(zip(labels, cumulative)),
            sum_value=self.latency_sum,
        )


class PrometheusMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._active = Gauge("opendispatch_jobs_active", "Jobs running in this dispatcher", registry=r)
        self._finished = Counter("opendispatch_jobs_finished", "Jobs ended, by final state", ["state"], registry=r)
        self._sprites = Gauge("opendispatch_live_sprites", "Sprites this dispatcher holds", registry=r)
        self._relay = _RelayFigures(LATENCY_BUCKETS)
        r.register(self._relay)
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
        self._relay.lines += count

    def relay_latency(self, seconds: float) -> None:
        self._relay.observe_latency(seconds)

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
