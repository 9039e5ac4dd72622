"""The stream body's framing decoder, checked against h11 (which frames the same bytes).

h11 decoded stream bodies before; it is the oracle here: any chunked body h11 accepts, cut
into any pieces, must decode to the same bytes, and framing faults must be reported.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opendispatch.adapters.webhook.fast.body_framing import (
    MAX_SIZE_LINE_BYTES,
    MAX_TRAILER_BYTES,
    ChunkedBody,
    LengthBody,
)

HEAD = b"POST /webhooks/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def h11_body(wire: bytes) -> bytes:
    """What h11 makes of a chunked body (raises h11.RemoteProtocolError on a bad one)."""
    http = h11.Connection(h11.SERVER)
    http.receive_data(HEAD + wire)
    http.receive_data(b"")
    body = b""
    while True:
        event = http.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body
        elif isinstance(event, h11.ConnectionClosed) or event is h11.NEED_DATA:
            raise h11.RemoteProtocolError("incomplete body")


def feed_in_pieces(framing: ChunkedBody | LengthBody, wire: bytes, cuts: list[int]) -> bytes:
    body = b""
    start = 0
    for cut in sorted(set(cuts)) + [len(wire)]:
        if cut <= start:
            continue
        body += framing.feed(wire[start:cut])
        start = cut
    return body


def chunked(chunks: list[bytes], *, extension: bytes = b"", trailer: bytes = b"", upper: bool = False) -> bytes:
    wire = b""
    for chunk in chunks:
        size = f"{len(chunk):X}" if upper else f"{len(chunk):x}"
        wire += size.encode() + extension + b"\r\n" + chunk + b"\r\n"
    return wire + b"0\r\n" + trailer + b"\r\n"


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
    extension=st.sampled_from([b"", b";name=value", b";a", b";a=\"q\""]),
    trailer=st.sampled_from([b"", b"X-Checksum: abc\r\n"]),
    upper=st.booleans(),
)
def test_any_body_h11_accepts_decodes_the_same_in_any_pieces(
    chunks: list[bytes], cuts: list[int], extension: bytes, trailer: bytes, upper: bool
) -> None:
    wire = chunked(chunks, extension=extension, trailer=trailer, upper=upper)
    framing = ChunkedBody()
    decoded = feed_in_pieces(framing, wire, cuts)
    assert decoded == h11_body(wire) == b"".join(chunks)
    assert framing.done and framing.error is None


def test_bytes_after_the_body_are_not_the_body() -> None:
    framing = ChunkedBody()
    assert framing.feed(chunked([b"abc"]) + b"POST /next") == b"abc"
    assert framing.done
    assert framing.feed(b" HTTP/1.1\r\n") == b""


def test_an_unfinished_body_is_not_done() -> None:
    framing = ChunkedBody()
    assert framing.feed(b"5\r\nhel") == b"hel"
    assert not framing.done and framing.error is None
    assert framing.feed(b"lo\r") == b"lo"
    assert not framing.done


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\nhello\r\n",  # not hex
        b"\r\nhello\r\n",  # no size
        b"-5\r\nhello\r\n",
        b"5\r\nhelloXY",  # data not followed by CRLF
        b"1" * 17 + b"\r\n",  # more hex digits than any real size
        b"5 garbage\r\nhello\r\n",
    ],
)
def test_a_broken_framing_is_an_error_and_h11_agrees(wire: bytes) -> None:
    framing = ChunkedBody()
    framing.feed(wire)
    assert framing.error is not None
    assert framing.feed(b"5\r\nhello\r\n") == b""  # nothing is decoded after the fault
    with pytest.raises(h11.RemoteProtocolError):
        h11_body(wire + b"0\r\n\r\n")


def test_what_came_before_a_fault_is_still_returned() -> None:
    framing = ChunkedBody()
    assert framing.feed(b"3\r\nabc\r\nzz\r\n") == b"abc"
    assert framing.error is not None


def test_an_endless_size_line_or_trailer_is_refused_without_buffering_it() -> None:
    size_line = ChunkedBody()
    size_line.feed(b"5" + b" " * MAX_SIZE_LINE_BYTES)
    assert size_line.error is not None
    trailer = ChunkedBody()
    trailer.feed(b"0\r\n")
    for _ in range(MAX_TRAILER_BYTES // 1000 + 1):
        trailer.feed(b"X-A: " + b"b" * 995 + b"\r\n")
    assert trailer.error is not None


def test_a_length_framed_body_ends_at_its_length() -> None:
    framing = LengthBody(5)
    assert framing.feed(b"hel") == b"hel"
    assert not framing.done
    assert framing.feed(b"lo, and more") == b"lo"
    assert framing.done and framing.error is None
    assert LengthBody(0).done
