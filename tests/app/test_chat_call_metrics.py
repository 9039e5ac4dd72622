"""Chat API calls and retries are counted from each adapter's HTTP responses."""

from __future__ import annotations

import httpx

from opendispatch.adapters.prometheus import PrometheusMetrics
from opendispatch.adapters.prometheus.chat_calls import call_name, count_chat_calls


def response(method: str, url: str, status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request(method, url))


def test_call_names_hide_ids() -> None:
    assert call_name(httpx.Request("POST", "https://slack.com/api/chat.update")) == "chat.update"
    assert (
        call_name(httpx.Request("PATCH", "https://discord.com/api/v10/channels/1234/messages/5678"))
        == "PATCH api/v10/channels/{id}/messages/{id}"
    )
    assert (
        call_name(httpx.Request("PUT", "https://smba.example/v3/conversations/19:abc@thread.tacv2/activities/1"))
        == "PUT v3/conversations/{id}/activities/{id}"
    )


async def test_each_response_counts_as_ok_retry_or_error() -> None:
    metrics = PrometheusMetrics()
    hook = count_chat_calls(metrics, "slack")
    for status in (200, 429, 200, 503, 404):
        await hook(response("POST", "https://slack.com/api/chat.postMessage", status))
    text = metrics.exposition().decode()
    assert 'opendispatch_chat_calls_total{method="chat.postMessage",outcome="ok",platform="slack"} 2.0' in text
    assert 'opendispatch_chat_calls_total{method="chat.postMessage",outcome="retry",platform="slack"} 2.0' in text
    assert 'opendispatch_chat_calls_total{method="chat.postMessage",outcome="error",platform="slack"} 1.0' in text
