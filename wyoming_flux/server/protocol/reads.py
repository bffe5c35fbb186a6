"""Batched reads: while audio streams, the kernel gathers the chunks of one Flux frame before waking us.

A client such as Home Assistant sends 10 ms chunks and we send Flux 80 ms frames, so reading every chunk as it
comes buys nothing but a wakeup of the event loop per chunk, which is most of what a stream costs. With
SO_RCVLOWAT the kernel wakes us once the bytes that complete the next frame have arrived, so audio reaches Flux
as early as before. Anything else must not wait for the batch: one timer for all batching connections looks
every TICK at how many bytes each has queued (one ioctl, no read) and reads at once when they are not whole
chunks (an AudioStop after the last chunk) or when the batch is overdue (a client that paused).
"""

from __future__ import annotations

import array
import asyncio
import socket
import sys

if sys.platform == "linux":
    import fcntl
    import termios

TICK = 0.02  # seconds between looks at the queued bytes: the most an event after the last chunk waits
MARGIN = 0.01  # seconds past a batch's due time before we read whatever has come


def _supported(sock: object) -> bool:
    # On Linux, TCP readiness honours SO_RCVLOWAT, and lowering it wakes a waiting reader at once.
    return (sys.platform == "linux" and hasattr(socket, "SO_RCVLOWAT")
            and getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
            and getattr(sock, "type", None) == socket.SOCK_STREAM)


class BatchWatch:
    """One timer for every connection with a batch open, every TICK while there is one."""

    def __init__(self) -> None:
        self._batches: set[ReadBatching] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._queued = array.array("i", [0])

    def add(self, batch: ReadBatching) -> None:
        self._batches.add(batch)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + TICK, self._tick, loop)

    def discard(self, batch: ReadBatching) -> None:
        self._batches.discard(batch)
        if not self._batches:
            self.close()

    def close(self) -> None:
        """No batch is open: no timer (an idle server keeps none)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now, queued, read_now = loop.time(), self._queued, []
        for batch in self._batches:  # inline: this runs for every streaming connection, TICK after TICK
            if now >= batch.due:
                read_now.append(batch)
                continue
            try:
                fcntl.ioctl(batch.fd, termios.FIONREAD, queued)
            except OSError:
                read_now.append(batch)
                continue
            if queued[0] % batch.unit:
                read_now.append(batch)
        for batch in read_now:
            batch.off()
        self._timer = loop.call_at(now + TICK, self._tick, loop) if self._batches else None


class ReadBatching:
    """One connection's receive low-water mark: 1 byte (read as it comes) unless a batch is open."""

    def __init__(self, transport: asyncio.BaseTransport, watch: BatchWatch) -> None:
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if _supported(sock) else -1
        self._sock = sock
        self._watch = watch
        self._mark = 1
        self.unit = 1  # bytes of one chunk event: a queue that is not whole chunks holds something else
        self.due = 0.0

    @property
    def mark(self) -> int:
        return self._mark

    def expect(self, chunks: int, unit: int, seconds: float) -> None:
        """Wake us when `chunks` events of `unit` bytes have arrived, when something else arrives, or once
        `seconds` (plus a margin) have passed."""
        if self.fd < 0 or chunks * unit <= 1:
            self.off()
            return
        if not self._set(chunks * unit):
            return
        self.unit = unit
        self.due = asyncio.get_running_loop().time() + seconds + MARGIN
        self._watch.add(self)

    def off(self) -> None:
        """Read every byte as it comes (lowering the mark wakes the reader if anything is queued)."""
        self._watch.discard(self)
        if self._mark != 1:
            self._set(1)

    def close(self) -> None:
        self._watch.discard(self)
        self.fd = -1

    def _set(self, nbytes: int) -> bool:
        if nbytes == self._mark:
            return True
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, nbytes)
        except OSError:  # the socket is closing, or the option is refused: read as it comes from now on
            self.fd, self._mark = -1, 1
            self._watch.discard(self)
            return False
        self._mark = nbytes
        return True
