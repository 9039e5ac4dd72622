"""HTTP mode: Slack POSTs signed requests to our webhook server; we verify, ack, then work."""

from __future__ import annotations

import json
import time

import pytest
import trio

from fakes.slack import form_body, post_signed, signed_headers
from opendispatch.adapters.slack import SlackMode
from opendispatch.domain.job import JobState
from slack_stack import NATIVE_MODES, open_stack, shown_lines

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("native", NATIVE_MODES)
async def test_a_signed_slash_command_runs_a_job_end_to_end(native: bool) -> None:
    async with open_stack(SlackMode.HTTP, native=native) as stack:
        body = form_body(stack.fake.slash_payload("/od-run", '--agent shell "http job"'))
        response = await post_signed(stack.http, stack.events_url, body, timestamp=int(time.time()), content_type=FORM)
        assert response.status_code == 200 and response.content == b""

        started = await stack.started_message()
        sidecar = await stack.sidecar()
        await sidecar.status("running")
        await sidecar.logs(["one", "two", "three"], seq=0)
        await sidecar.status("completed", 0)
        await stack.settled(sidecar.job_id, started)
        assert shown_lines(stack, started) == ["one", "two", "three"]
        assert (await stack.store.get(sidecar.job_id)).state is JobState.SUCCEEDED
        assert len(stack.fake.streams()) == (1 if native else 0)


async def test_wrongly_signed_and_stale_requests_are_refused_and_do_nothing() -> None:
    async with open_stack(SlackMode.HTTP) as stack:
        body = form_body(stack.fake.slash_payload("/od-run", '--agent shell "must not run"'))
        now = int(time.time())
        forged = await post_signed(stack.http, stack.events_url, body, timestamp=now, content_type=FORM, secret="wrong-secret")
        stale = await post_signed(stack.http, stack.events_url, body, timestamp=now - 301, content_type=FORM)
        unsigned = await stack.http.post(stack.events_url, content=body, headers={"Content-Type": FORM})
        garbage = await stack.http.post(
            stack.events_url, content=body,
            headers={"Content-Type": FORM, "X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        )
        tampered_body = body.replace(b"must+not+run", b"rm+-rf")
        tampered = await stack.http.post(
            stack.events_url, content=tampered_body,
            headers={**_headers_of(body, now), "Content-Type": FORM},
        )
        assert [r.status_code for r in (forged, stale, unsigned, garbage, tampered)] == [401] * 5
        assert stack.inbounds == []
        assert stack.fake.calls_of("chat.postMessage") == [] and stack.fake.ephemerals == []
        assert await stack.store.recent(limit=10) == []


def _headers_of(body: bytes, timestamp: int) -> dict[str, str]:
    return signed_headers(body, timestamp=timestamp, content_type=FORM)


async def test_url_verification_and_ssl_check_are_answered() -> None:
    async with open_stack(SlackMode.HTTP) as stack:
        body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).encode()
        response = await post_signed(stack.http, stack.events_url, body, timestamp=int(time.time()), content_type="application/json")
        assert response.status_code == 200
        assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
        ssl_check = await stack.http.post(stack.events_url, content=b"ssl_check=1&token=x", headers={"Content-Type": FORM})
        assert ssl_check.status_code == 200 and stack.inbounds == []


async def test_the_stop_button_works_in_http_mode_and_events_are_deduplicated() -> None:
    async with open_stack(SlackMode.HTTP) as stack:
        now = int(time.time())
        body = form_body(stack.fake.slash_payload("/od-run", '--agent shell "stoppable"'))
        await post_signed(stack.http, stack.events_url, body, timestamp=now, content_type=FORM)
        started = await stack.started_message()
        sidecar = await stack.sidecar()
        await sidecar.status("running")

        click = {"payload": json.dumps(stack.fake.stop_click_payload(started, user_id="U0CAROL", username="carol"))}
        response = await post_signed(stack.http, stack.events_url, form_body(click), timestamp=now, content_type=FORM)
        assert response.status_code == 200
        card = await stack.settled(sidecar.job_id, started)
        assert "🛑 Stopped by carol" in card.block_texts()

        event = stack.fake.event_payload(
            {"type": "message", "channel": "D0CAROL", "channel_type": "im", "user": "U0CAROL", "text": "/od-list", "ts": "3.1"}
        )
        raw = json.dumps(event).encode()
        for attempt in range(2):  # Slack retries when it thinks we were slow
            response = await post_signed(stack.http, stack.events_url, raw, timestamp=now, content_type="application/json")
            assert response.status_code == 200
        await stack.wait_for(lambda: [c for c in stack.fake.calls_of("chat.postMessage") if c.args["channel"] == "D0CAROL"])
        assert [i.text for i in stack.inbounds] == ['/od-run --agent shell "stoppable"', f"/od-cancel {sidecar.job_id}", "/od-list"]


async def test_the_ack_does_not_wait_for_the_command() -> None:
    async with open_stack(SlackMode.HTTP) as stack:
        stack.hold = trio.Event()  # the dispatcher takes far longer than Slack's 3 s
        body = form_body(stack.fake.slash_payload("/od-jobs", ""))
        with trio.fail_after(3):
            response = await post_signed(stack.http, stack.events_url, body, timestamp=int(time.time()), content_type=FORM)
        assert response.status_code == 200 and stack.fake.channel_messages() == []
        stack.hold.set()
        await stack.wait_for(lambda: stack.fake.channel_messages())
