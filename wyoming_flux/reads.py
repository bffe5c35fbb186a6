"""Batched reads: while audio streams, the kernel gathers the chunks of one Flux frame before waking us.

A client such as Home Assistant sends 10 ms chunks and we send Flux 80 ms frames, so reading every chunk as it
comes buys nothing but a wakeup of the event loop per chunk, which is most of what a stream costs. With
SO_RCVLOWAT the kernel wakes us once the bytes that complete the next frame have arrived, so audio reaches Flux
as early as before. Bytes that do not reach the mark (AudioStop after the last chunk, a client that pauses) are
read by a timer at the time the batch was due plus a margin: that is the most a batch delays any event.
"""

from __future__ import annotations

import asyncio
import math
import socket
import sys

MARGIN = 0.01  # seconds past a batch's due time before we read whatever has come
_GRID = 0.01  # the late-batch timers of all connections fall on one grid: one wakeup serves many


def _supported(sock: object) -> bool:
    # On Linux, TCP readiness honours SO_RCVLOWAT and lowering it wakes a waiting reader at once.
    return (sys.platform == "linux" and hasattr(socket, "SO_RCVLOWAT")
            and getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
            and getattr(sock, "type", None) == socket.SOCK_STREAM)


class ReadBatching:
    """One connection's receive low-water mark; 1 byte (read as it comes) unless a batch is expected."""

    def __init__(self, transport: asyncio.BaseTransport, loop: asyncio.AbstractEventLoop) -> None:
        sock = transport.get_extra_info("socket")
        self._sock = sock if _supported(sock) else None
        self._loop = loop
        self._mark = 1
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def mark(self) -> int:
        return self._mark

    def expect(self, nbytes: int, seconds: float) -> None:
        """Wake us when `nbytes` have arrived, or `seconds` (plus the margin) from now, whichever is first."""
        if self._sock is None or nbytes <= 1:
            self.off()
            return
        self._set(nbytes)
        self._due = self._loop.time() + seconds + MARGIN
        if self._timer is None:
            self._timer = self._loop.call_at(_on_grid(self._due), self._late)

    def off(self) -> None:
        """Read every byte as it comes."""
        if self._mark != 1:
            self._set(1)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _late(self) -> None:
        self._timer = None
        if self._mark == 1:
            return
        if self._loop.time() + 0.001 < self._due:  # a batch came since: wait for the next one's due time
            self._timer = self._loop.call_at(_on_grid(self._due), self._late)
            return
        self.off()  # the batch is late: read what has come (lowering the mark wakes the reader)

    def _set(self, nbytes: int) -> None:
        if nbytes == self._mark or self._sock is None:
            return
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, nbytes)
        except OSError:  # the socket is closing; or the option is refused: read as it comes from now on
            self._sock = None
            self._mark = 1
            return
        self._mark = nbytes


def _on_grid(when: float) -> float:
    return math.ceil(when / _GRID) * _GRID
