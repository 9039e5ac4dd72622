"""Unsequenced batches (the seed's `{jobId, text}`) are stored and shown in the order their
requests arrived, even when both requests wait in the kernel before the server reads either.

Both requests are written with plain blocking sockets, one right after the other, with no
checkpoint between: the server's tasks for the two connections then wake in the same round
of trio's loop, in an order trio randomises. Before the listener stamped arrivals
(domain/arrival_order.py) the later batch was stored first in 55 of 100 runs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import trio

from harness import Harness, open_harness
from test_webhook_front import answers
from webhook_paths import fast_ingest  # noqa: F401  (autouse: the kernel's stamps are the fast path's)

RUNS = 30


def seed_post(job_id: str, token: str, text: str) -> bytes:
    data = json.dumps({"jobId": job_id, "text": text}).encode()
    head = (
        f"POST /webhooks/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


@contextmanager
def two_connections(h: Harness) -> Iterator[tuple[socket.socket, socket.socket]]:
    url = urlsplit(h.running.webhook_url)
    assert url.hostname == "127.0.0.1" and url.port is not None
    first = socket.create_connection((url.hostname, url.port))
    second = socket.create_connection((url.hostname, url.port))
    try:
        yield first, second
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
async def test_batches_waiting_together_are_stored_and_shown_in_the_order_they_arrived(tmp_path, store_kind) -> None:  # type: ignore[no-untyped-def]
    from opendispatch.adapters.memory.store import MemoryJobStore
    from opendispatch.adapters.sqlite import open_sqlite_store

    async with open_sqlite_store(tmp_path / "jobs.db") as sqlite:
        store = sqlite if store_kind == "sqlite" else MemoryJobStore()
        async with open_harness(store=store) as h:
            job = await h.run('/od-run -a shell "x"')
            sidecar = await h.sidecar()
            with two_connections(h) as (first, second):
                readers = [trio.SocketStream(trio.socket.from_stdlib_socket(sock.dup())) for sock in (first, second)]
                swapped = []
                for run in range(RUNS):
                    a = "\n".join(f"a{run}-{n}" for n in range(20))
                    b = "\n".join(f"b{run}-{n}" for n in range(20))
                    first.sendall(seed_post(job.id, sidecar.token, a))  # blocking: no checkpoint between
                    second.sendall(seed_post(job.id, sidecar.token, b))
                    assert [status for status, _, _ in await answers(readers[0], 1)] == [200]
                    assert [status for status, _, _ in await answers(readers[1], 1)] == [200]
                    stored = await h.store.output(job.id)
                    if stored.index(f"a{run}-0") > stored.index(f"b{run}-0"):
                        swapped.append(run)
                for reader in readers:
                    await reader.aclose()
            assert swapped == [], f"{len(swapped)} of {RUNS} runs stored swapped"
            assert (await h.store.output(job.id))[:40] == [f"a0-{n}" for n in range(20)] + [f"b0-{n}" for n in range(20)]

            assert (await sidecar.status("completed", exit_code=0)).status_code == 200
            await h.card(job.id)
            shown = h.chat.transcript()
            firsts = [shown.index(f"{side}{run}-0\n") for run in range(RUNS) for side in "ab" if f"{side}{run}-0\n" in shown]
            assert firsts and firsts == sorted(firsts), "chat shows the batches in another order"
