"""Structured logs carry the job id and never a secret; Prometheus metrics count what happened."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from opendispatch.adapters.prometheus import LATENCY_BUCKETS, PrometheusMetrics
from opendispatch.app.log_context import current_job_id
from opendispatch.domain.redaction import Redactor
from opendispatch.domain.tokens import TokenIssuer
from opendispatch.logs import configure_logging


def test_json_log_lines_carry_the_job_id_and_redact_secrets_and_tokens() -> None:
    stream = io.StringIO()
    token = TokenIssuer(b"k" * 32).issue("j-0000abcd", expires_at=10**9)
    handler = configure_logging(verbose=True, redactor=Redactor.of(["ghp_secretvalue42"]), stream=stream, json_lines=True)
    try:
        reset = current_job_id.set("j-0000abcd")
        logging.getLogger("opendispatch.test").info("clone with %s and %s", "ghp_secretvalue42", token)
        try:
            raise RuntimeError("boom ghp_secretvalue42")
        except RuntimeError:
            logging.getLogger("opendispatch.test").exception("failed")
        current_job_id.reset(reset)
        logging.getLogger("opendispatch.test").warning("no job here")
    finally:
        logging.getLogger().removeHandler(handler)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["job_id"] for e in entries] == ["j-0000abcd", "j-0000abcd", None]
    assert entries[0]["msg"] == "clone with *** and ***"
    assert "RuntimeError: boom ***" in entries[1]["exc"]
    assert "ghp_secretvalue42" not in stream.getvalue() and token not in stream.getvalue()
    assert entries[2]["level"] == "warning"


def test_prometheus_exposition_counts_jobs_lines_requests_chat_calls_and_latency() -> None:
    metrics = PrometheusMetrics()
    metrics.job_started()
    metrics.job_started()
    metrics.job_finished("succeeded")
    metrics.lines_relayed(7)
    metrics.relay_latency(0.03)
    metrics.webhook_request("/webhooks/logs", 200)
    metrics.webhook_request("/webhooks/logs", 401)
    metrics.chat_call("slack", "chat.update", "retry")
    metrics.live_sprites(1)
    text = metrics.exposition().decode()
    assert "opendispatch_jobs_active 1.0" in text
    assert 'opendispatch_jobs_finished_total{state="succeeded"} 1.0' in text
    assert "opendispatch_lines_relayed_total 7.0" in text
    assert 'opendispatch_webhook_requests_total{endpoint="/webhooks/logs",status="401"} 1.0' in text
    assert 'opendispatch_chat_calls_total{method="chat.update",outcome="retry",platform="slack"} 1.0' in text
    assert 'opendispatch_relay_latency_seconds_bucket{le="0.05"} 1.0' in text
    assert "opendispatch_live_sprites 1.0" in text


async def test_metrics_endpoint_reflects_a_job_that_ran() -> None:
    from harness import open_harness

    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        await sidecar.logs(["one", "two", "three"], seq=0)
        await sidecar.post("/webhooks/logs", {"jobId": job.id, "lines": ["x"]}, token="bad")
        await sidecar.status("completed", 0)
        await h.card(job.id)
        text = (await h.http.get("/metrics")).text
    assert "opendispatch_lines_relayed_total 3.0" in text
    assert 'opendispatch_jobs_finished_total{state="succeeded"} 1.0' in text
    assert 'opendispatch_webhook_requests_total{endpoint="/webhooks/logs",status="401"} 1.0' in text
    assert 'opendispatch_webhook_requests_total{endpoint="/webhooks/status",status="200"} 1.0' in text
    assert "opendispatch_relay_latency_seconds_count" in text
    assert "opendispatch_live_sprites 0.0" in text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(min_value=0.0, max_value=30.0), st.sampled_from(LATENCY_BUCKETS)), max_size=30),
    st.integers(0, 10**6),
)
def test_relay_figures_expose_what_prometheus_clients_own_histogram_and_counter_would(
    latencies: list[float], lines: int
) -> None:
    """Oracle: the library's Histogram and Counter, fed the same values, print the same samples."""
    ours = PrometheusMetrics()
    oracle = CollectorRegistry()
    histogram = Histogram(
        "opendispatch_relay_latency_seconds", "x", buckets=LATENCY_BUCKETS, registry=oracle
    )
    Counter("opendispatch_lines_relayed", "x", registry=oracle).inc(lines)
    ours.lines_relayed(lines)
    for seconds in latencies:
        ours.relay_latency(seconds)
        histogram.observe(seconds)

    def samples(registry: CollectorRegistry) -> dict[str, float]:
        return {
            sample.name + repr(sorted(sample.labels.items())): sample.value
            for family in registry.collect()
            for sample in family.samples
            if family.name in ("opendispatch_relay_latency_seconds", "opendispatch_lines_relayed")
            and not sample.name.endswith("_created")
        }

    expected, got = samples(oracle), samples(ours.registry)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)
