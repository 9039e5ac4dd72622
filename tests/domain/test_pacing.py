"""The server asks sidecars to batch less often only when many of them are sending."""

from __future__ import annotations

import pytest

from harness import open_harness
from opendispatch.domain.pacing import SenderPacer, stream_interval_ms


def test_a_few_senders_get_no_advice_so_sidecars_keep_their_own_default() -> None:
    pacer = SenderPacer(request_budget_per_s=400.0)
    answers = [pacer.note(f"job{i}", now=0.01 * i) for i in range(40)]
    assert answers == [None] * 40


def test_many_senders_are_spread_so_the_request_rate_stays_near_the_budget() -> None:
    pacer = SenderPacer(request_budget_per_s=400.0)
    for i in range(1000):
        answer = pacer.note(f"job{i}", now=0.001 * i)
    assert pacer.active_senders == 1000
    assert answer == 2500  # 1000 senders / 400 requests per second = one request each 2.5 s


def test_a_sender_that_obeys_a_long_interval_is_still_counted_between_its_posts() -> None:
    pacer = SenderPacer(request_budget_per_s=100.0)
    for i in range(500):
        pacer.note(f"job{i}", now=0.0)
    # every job posts again 4.9 s later (it was told 5 s); none was forgotten in between
    answers = [pacer.note(f"job{i}", now=4.9 + 0.001 * i) for i in range(500)]
    assert set(answers) == {5000}


def test_senders_that_went_quiet_stop_counting_and_the_advice_goes_away() -> None:
    pacer = SenderPacer(request_budget_per_s=100.0)
    for i in range(300):
        pacer.note(f"job{i}", now=0.0)
    assert pacer.note("job0", now=100.0) is None
    assert pacer.active_senders == 1


def test_finished_jobs_are_forgotten_at_once() -> None:
    pacer = SenderPacer(request_budget_per_s=10.0)
    for i in range(50):
        pacer.note(f"job{i}", now=0.0)
    for i in range(1, 50):
        pacer.forget(f"job{i}")
    assert pacer.note("job0", now=0.1) is None


def test_the_advice_is_capped() -> None:
    pacer = SenderPacer(request_budget_per_s=1.0, max_interval_s=10.0)
    for i in range(1000):
        answer = pacer.note(f"job{i}", now=0.0)
    assert answer == 10_000


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SenderPacer(request_budget_per_s=0.0)


async def test_a_busy_server_answers_log_batches_with_batch_interval_ms_and_still_stores_them() -> None:
    from harness import open_harness

    async with open_harness() as h:
        h.running.dispatcher.runner.relay.pacer = SenderPacer(request_budget_per_s=10.0)
        first = await h.run('/od-run --agent shell "one"')
        one = await h.sidecar()
        await h.run('/od-run --agent shell "two"')
        two = await h.sidecar()
        assert (await one.logs(["a"], seq=0)).json() == {"ok": True}  # one sender: no advice
        assert (await two.logs(["b"], seq=0)).json() == {"ok": True, "batchIntervalMs": 200}
        assert (await one.logs(["a"], seq=0)).json() == {"ok": True, "batchIntervalMs": 200}  # a retry too
        assert await h.store.output(first.id) == ["a"]
        await one.status("completed", 0)
        # a finished job no longer counts, so the other is back to its own default
        assert (await two.logs(["c"], seq=1)).json() == {"ok": True}


def test_streams_get_no_advice_until_many_jobs_are_live() -> None:
    assert stream_interval_ms(0) is None
    assert stream_interval_ms(400, record_budget_per_s=4000.0) is None  # 100 ms: the default
    assert stream_interval_ms(1000, record_budget_per_s=4000.0) == 250
    assert stream_interval_ms(10**9, record_budget_per_s=4000.0) == 10_000  # capped
    # the default budget: a thousand streaming sprites send a record every 334 ms each
    assert stream_interval_ms(250) is None
    assert stream_interval_ms(1000) == 334  # 3,000 records/s in all: one each 333.3 ms


async def test_the_resume_point_answer_tells_a_streaming_sidecar_how_long_to_gather() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        relay = h.running.dispatcher.runner.relay
        asked = {"params": {"jobId": job.id}, "headers": {"Authorization": f"Bearer {sidecar.token}"}}
        quiet = (await h.http.get("/webhooks/stream", **asked)).json()  # type: ignore[arg-type]
        assert "batchIntervalMs" not in quiet
        relay.stream_record_budget_per_s = 2.0  # one live job at 2 records/s: 500 ms each
        busy = (await h.http.get("/webhooks/stream", **asked)).json()  # type: ignore[arg-type]
        assert busy["batchIntervalMs"] == 500
