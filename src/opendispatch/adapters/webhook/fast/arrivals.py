"""A connection that knows when its bytes arrived at this host (the kernel's receive stamp)."""

from __future__ import annotations

import platform
import socket
import struct
import sys
import time
from collections.abc import Sequence

import trio

RECEIVE_BYTES = 65536

#: SO_TIMESTAMPNS, which Python's socket module does not name: the kernel stamps each
#: segment it receives and `recvmsg` hands the stamp over. Its number is the generic one on
#: these architectures (others number it differently: they get no stamps).
_SO_TIMESTAMPNS = 35
_STAMPS = sys.platform == "linux" and platform.machine() in {"x86_64", "aarch64", "arm64", "riscv64", "s390x"}
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def stamp_arrivals(sock: socket.socket) -> None:
    """Ask the kernel to stamp what this listening socket's connections receive (inherited
    by each accepted socket, so the first segment is stamped too)."""
    if _STAMPS:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            pass  # no stamps: arrivals are when the server read the bytes


class StampedStream(trio.abc.HalfCloseableStream):
    """A connection that knows when the bytes of its last read arrived at this host.

    Why: seq-less output batches are stored in the order their requests arrived
    (domain/arrival_order.py); when two connections' requests are both waiting, the
    order the server's tasks read them in says nothing about which came first, and the
    kernel's receive stamp does. Without a stamp, the time of the read stands in.
    """

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.socket = inner.socket
        #: On trio's clock.
        self.last_arrival = trio.current_time()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not _ANCILLARY_BYTES:
            data = await self.inner.receive_some(max_bytes)
            self.last_arrival = trio.current_time()
            return data
        try:
            data, ancillary, _, _ = await self.socket.recvmsg(max_bytes or RECEIVE_BYTES, _ANCILLARY_BYTES)
        except OSError as exc:
            raise trio.BrokenResourceError(exc) from exc
        self.last_arrival = _arrival(ancillary)
        return data


#: trio's clock minus the wall clock, measured once per run: measured at each read, its
#: jitter (tens of microseconds) was larger than the gap between two requests sent back
#: to back, and reordered them.
_WALL_TO_TRIO: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("wall_to_trio")


def _arrival(ancillary: Sequence[tuple[int, int, bytes]]) -> float:
    """The kernel's receive stamp (wall clock) moved onto trio's clock; now if there is none."""
    now = trio.current_time()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            try:
                offset = _WALL_TO_TRIO.get()
            except LookupError:
                offset = now - time.time()
                _WALL_TO_TRIO.set(offset)
            stamped: float = seconds + nanoseconds / 1e9 + offset
            return min(stamped, now)  # (the wall clock may have been stepped since)
    return now

