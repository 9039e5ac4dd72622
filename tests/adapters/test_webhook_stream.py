"""`/webhooks/stream` over real HTTP on 127.0.0.1: a chunked NDJSON body per sidecar.

The client speaks HTTP/1.1 with h11 over a trio socket, so a test controls exactly which
chunks go out, when the body ends, and when the connection is dropped mid-stream.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import h11
import pytest
import trio

from harness import Harness, open_harness
from opendispatch.adapters.webhook.fast import SIDECAR_FRONT
from opendispatch.domain.job import JobState
from webhook_paths import FAST, webhook_path  # noqa: F401  (autouse: every test on both paths)

MIB = 1024 * 1024


def record(seq: int, *lines: str) -> bytes:
    return json.dumps({"seq": seq, "lines": list(lines)}).encode() + b"\n"


class RawStream:
    """One `POST /webhooks/stream` whose body the test writes chunk by chunk."""

    def __init__(self, socket: trio.SocketStream) -> None:
        self.socket = socket
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, h: Harness, job_id: str, token: str) -> RawStream:
        url = urlsplit(h.running.webhook_url)
        assert url.hostname == "127.0.0.1" and url.port is not None
        stream = cls(await trio.open_tcp_stream(url.hostname, url.port))
        await stream._send(
            h11.Request(
                method="POST",
                target=f"/webhooks/stream?jobId={job_id}",
                headers=[
                    ("Host", "127.0.0.1"),
                    ("Authorization", f"Bearer {token}"),
                    ("Content-Type", "application/x-ndjson"),
                    ("Transfer-Encoding", "chunked"),
                ],
            )
        )
        return stream

    async def _send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            await self.socket.send_all(data)

    async def send(self, data: bytes) -> None:
        await self._send(h11.Data(data=data))

    async def answer(self, *, end_body: bool = True) -> tuple[int, dict[str, Any]]:
        """End the body (unless the server answered already) and read the answer."""
        if end_body:
            await self._send(h11.EndOfMessage())
        status, body = 0, bytearray()
        with trio.fail_after(10):
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    self.h11.receive_data(await self.socket.receive_some())
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
        await self.socket.aclose()
        return status, json.loads(body)


async def started(h: Harness) -> tuple[str, str]:
    job = await h.run('/od-run -a shell "x"')
    sidecar = await h.sidecar()
    return job.id, sidecar.token


async def resume_point(h: Harness, job_id: str, token: str) -> Any:
    response = await h.http.get(
        "/webhooks/stream", params={"jobId": job_id}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()["lastSeq"]


async def until_stored(h: Harness, job_id: str, lines: list[str]) -> None:
    """Wait until the store holds exactly `lines` for the job (woken by each stored batch)."""

    async def stored() -> bool:
        return await h.store.output(job_id) == lines

    with trio.fail_after(10):
        await h.running.until(job_id, stored)


async def test_records_are_stored_in_order_and_the_answer_says_the_last_seq() -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        assert await resume_point(h, job_id, token) is None
        stream = await RawStream.open(h, job_id, token)
        await stream.send(record(0, "a", "b"))
        await stream.send(record(1, "c") + record(2, "d") + b"\n" + record(3, "e"))  # several per chunk
        await stream.send(record(4, "f")[:5])  # a record split over chunks
        await stream.send(record(4, "f")[5:])
        status, answer = await stream.answer()
        assert status == 200 and answer["lastSeq"] == 4 and answer["records"] == 5 and answer["rejected"] == 0
        assert await h.store.output(job_id) == ["a", "b", "c", "d", "e", "f"]
        assert (await h.store.get(job_id)).state is JobState.RUNNING  # like a POSTed batch
        assert await resume_point(h, job_id, token) == 4


async def test_the_stream_is_read_by_the_path_chosen(webhook_path: str) -> None:
    async with open_harness() as h:
        sidecar_front = h.running.webhook_app.extensions.get(SIDECAR_FRONT)
        job_id, token = await started(h)
        stream = await RawStream.open(h, job_id, token)
        await stream.send(record(0, "a"))
        await until_stored(h, job_id, ["a"])
        if webhook_path == FAST:
            assert sidecar_front.hub.following == 1  # one task reads every stream
        else:
            assert sidecar_front is None  # Quart's request body, in the request's task
        status, _ = await stream.answer()
        assert status == 200


async def test_after_a_dropped_connection_the_sidecar_resumes_from_the_last_stored_seq() -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        stream = await RawStream.open(h, job_id, token)
        await stream.send(record(0, "one") + record(1, "two"))
        await until_stored(h, job_id, ["one", "two"])
        await stream.send(record(2, "three")[:12])  # half a record, then the connection drops
        await stream.socket.aclose()
        assert await resume_point(h, job_id, token) == 1
        again = await RawStream.open(h, job_id, token)
        await again.send(record(1, "two") + record(2, "three") + record(3, "four"))  # 1 is a resend
        status, answer = await again.answer()
        assert status == 200 and answer["lastSeq"] == 3
        assert await h.store.output(job_id) == ["one", "two", "three", "four"]


async def test_a_bad_token_is_refused_at_the_start_and_nothing_is_stored() -> None:
    async with open_harness() as h:
        job_id, _ = await started(h)
        stream = await RawStream.open(h, job_id, "not-a-token")
        status, answer = await stream.answer(end_body=False)
        assert status == 401 and answer["ok"] is False
        other = await h.http.get(
            "/webhooks/stream", params={"jobId": job_id}, headers={"Authorization": "Bearer not-a-token"}
        )
        assert other.status_code == 401
        assert await h.store.output(job_id) == []


async def test_records_after_a_bad_record_are_still_stored() -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        stream = await RawStream.open(h, job_id, token)
        await stream.send(record(0, "a"))
        await stream.send(b'{"seq": \n')  # not JSON
        await stream.send(b'{"lines": ["no seq"]}\n')
        await stream.send(b'{"seq": 1, "lines": [7]}\n')
        await stream.send(b'[1, 2]\n')
        await stream.send(record(1, "b") + record(2, "c"))
        status, answer = await stream.answer()
        assert status == 200 and answer["rejected"] == 4 and answer["records"] == 3
        assert "valid JSON" in answer["error"]
        assert await h.store.output(job_id) == ["a", "b", "c"]


async def test_a_record_over_the_size_limit_ends_the_stream_with_413_and_the_last_stored_seq() -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        stream = await RawStream.open(h, job_id, token)
        await stream.send(record(0, "before"))
        await until_stored(h, job_id, ["before"])
        try:
            await stream.send(record(1, "x" * (2 * MIB)))
        except trio.BrokenResourceError:
            pass  # the server may answer and close before it has read it all
        status, answer = await stream.answer(end_body=False)
        assert status == 413 and answer["lastSeq"] == 0 and "larger than" in answer["error"]
        assert await h.store.output(job_id) == ["before"]


async def test_the_post_endpoints_still_work_beside_the_stream() -> None:
    async with open_harness() as h:
        job = await h.run('/od-run -a shell "x"')
        sidecar = await h.sidecar()
        assert (await sidecar.logs(["posted"], seq=0)).status_code == 200
        stream = await RawStream.open(h, job.id, sidecar.token)
        await stream.send(record(0, "posted") + record(1, "streamed"))
        status, answer = await stream.answer()
        assert status == 200 and answer["lastSeq"] == 1
        assert await h.store.output(job.id) == ["posted", "streamed"]


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}".encode() + b"\r\n" + data + b"\r\n"


async def test_chunks_cut_anywhere_by_the_network_decode_to_the_same_records() -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        stream = await RawStream.open(h, job_id, token)
        wire = chunk(record(0, "a")) + chunk(record(1, "b", "c")) + f"{5:x};ext=1\r\n".encode()
        wire += record(2, "d")[:5] + b"\r\n" + chunk(record(2, "d")[5:])
        for at in range(len(wire)):  # one byte per write: every cut the network could make
            await stream.socket.send_all(wire[at : at + 1])
        status, answer = await stream.answer()
        assert status == 200 and answer["lastSeq"] == 2 and answer["rejected"] == 0
        assert await h.store.output(job_id) == ["a", "b", "c", "d"]


async def test_a_stream_whose_chunk_framing_breaks_is_dropped_keeping_what_came_before(webhook_path: str) -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        stream = await RawStream.open(h, job_id, token)
        await stream.socket.send_all(chunk(record(0, "kept")) + b"zz\r\nnot a chunk\r\n")
        received = b""
        with trio.fail_after(10):
            while data := await stream.socket.receive_some():
                received += data
        if webhook_path == FAST:
            assert received == b""  # closed, no answer
        else:
            assert received.startswith(b"HTTP/1.1 400 ")  # hypercorn's answer to the broken framing, then closed
        await stream.socket.aclose()
        assert await resume_point(h, job_id, token) == 0
        assert await h.store.output(job_id) == ["kept"]


async def test_a_stream_body_sent_with_a_content_length_is_read_to_its_end() -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        response = await h.http.post(
            "/webhooks/stream",
            params={"jobId": job_id},
            headers={"Authorization": f"Bearer {token}"},
            content=record(0, "one") + record(1, "two"),
        )
        assert response.status_code == 200, response.text
        assert response.json()["lastSeq"] == 1
        assert await h.store.output(job_id) == ["one", "two"]


async def test_a_stream_reset_by_the_client_keeps_what_came_before_and_the_server_goes_on() -> None:
    async with open_harness() as h:
        job_id, token = await started(h)
        stream = await RawStream.open(h, job_id, token)
        await stream.send(record(0, "before the reset"))
        await until_stored(h, job_id, ["before the reset"])
        # SO_LINGER with a zero timeout: closing sends a reset (ECONNRESET on the server's read).
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.socket.aclose()
        assert await resume_point(h, job_id, token) == 0
        again = await RawStream.open(h, job_id, token)
        await again.send(record(1, "after it"))
        status, answer = await again.answer()
        assert status == 200 and answer["lastSeq"] == 1
        assert await h.store.output(job_id) == ["before the reset", "after it"]
