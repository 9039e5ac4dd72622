"""A stream's request body, decoded off the connection once h11 has parsed the request's head.

Why not h11 for the body too: a stream's body is a long run of small chunks, one per record,
and h11's event machinery (an event object, state checks and two `next_event` calls per
chunk) cost about a tenth of the server's CPU with a thousand sprites streaming
(docs/performance.md, round 5). The head, where the framing is chosen and checked, is still
h11's; what is left is the framing itself (RFC 9112, sections 6 and 7.1), which is small.

Pure: bytes in, body bytes out. A framing the sender broke sets `error`; the bytes decoded
before the fault are still returned, and the caller treats the fault as a broken
connection, as it did h11's `RemoteProtocolError`.
"""

from __future__ import annotations

import re
from typing import Protocol

#: A chunk-size line: hex digits, then optional extensions (ignored), then CRLF. The bound
#: keeps a peer from making us buffer an endless size line.
MAX_SIZE_LINE_BYTES = 1024
#: Trailer fields after the last chunk are read and ignored, up to this much.
MAX_TRAILER_BYTES = 16 * 1024
_MAX_SIZE_DIGITS = 16

_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,%d})[ \t]*(?:;[^\r\n]*)?" % _MAX_SIZE_DIGITS)


class _FramingFault(Exception):
    pass


class BodyFraming(Protocol):
    @property
    def done(self) -> bool:
        """The whole body was decoded; bytes after it are not the body's (and are dropped)."""
        ...

    @property
    def error(self) -> str | None:
        """Why the body broke its framing; nothing is decoded after that."""
        ...

    def feed(self, data: bytes) -> bytes:
        """The body bytes in `data` (with what earlier calls held back), in order."""
        ...


class LengthBody:
    """A body framed by `Content-Length`."""

    error = None

    def __init__(self, length: int) -> None:
        self._left = length

    @property
    def done(self) -> bool:
        return self._left == 0

    def feed(self, data: bytes) -> bytes:
        taken = data[: self._left]
        self._left -= len(taken)
        return taken


class ChunkedBody:
    """A body framed by `Transfer-Encoding: chunked`, decoded as the bytes arrive."""

    def __init__(self) -> None:
        self._held = b""  # bytes of a size line, a chunk's CRLF or a trailer not complete yet
        self._chunk_left = 0  # data bytes of the current chunk still to come
        self._expect_crlf = False  # a chunk's data ended: its CRLF comes next
        self._in_trailer = False
        self._trailer_bytes = 0
        self._done = False
        self.error: str | None = None

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> bytes:
        if self.error is not None:
            return b""
        parts: list[bytes] = []
        try:
            self._decode(data, parts)
        except _FramingFault as fault:
            self.error = str(fault)
            self._held = b""
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def _decode(self, data: bytes, parts: list[bytes]) -> None:
        buffer = self._held + data if self._held else data
        self._held = b""
        at = 0
        end = len(buffer)
        while at < end and not self._done:
            if self._chunk_left:
                taken = buffer[at : at + self._chunk_left]
                parts.append(taken)
                at += len(taken)
                self._chunk_left -= len(taken)
                self._expect_crlf = self._chunk_left == 0
                continue
            if self._expect_crlf:
                if end - at < 2:
                    break
                if buffer[at : at + 2] != b"\r\n":
                    raise _FramingFault("a chunk's data must end with CRLF")
                at += 2
                self._expect_crlf = False
                continue
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                self._check_incomplete_line(end - at)
                break
            line = buffer[at:line_end]
            at = line_end + 2
            if self._in_trailer:
                self._trailer_line(line)
            else:
                self._size_line(line)
        self._held = buffer[at:] if not self._done else b""

    def _check_incomplete_line(self, length: int) -> None:
        limit = MAX_TRAILER_BYTES - self._trailer_bytes if self._in_trailer else MAX_SIZE_LINE_BYTES
        if length > limit:
            raise _FramingFault("a chunk-size line or the trailer is too long")

    def _size_line(self, line: bytes) -> None:
        if len(line) > MAX_SIZE_LINE_BYTES:
            raise _FramingFault("a chunk-size line is too long")
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise _FramingFault("a chunk must start with its size in hex")
        size = int(match.group(1), 16)
        if size == 0:
            self._in_trailer = True
        else:
            self._chunk_left = size

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILER_BYTES:
            raise _FramingFault("the trailer is too long")
        if not line:
            self._done = True
