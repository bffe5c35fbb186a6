"""Audio helpers shared by the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import socket
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
RATE = 16000
CHUNK_BYTES = 320  # 10 ms of 16 kHz 16-bit mono, as Home Assistant sends it


def free_port() -> int:
    """A TCP port nothing listens on right now (for a server started in another process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def english_commands() -> list[str]:
    """The six English fixtures the benchmarks compare on (not the other languages, nor the paused ones)."""
    return sorted(p.stem for p in FIXTURES.glob("*.wav") if p.stem[:3] not in ("pl_", "sv_") and "pause" not in p.stem)


def load_wav(name: str) -> bytes:
    """The 16 kHz mono 16-bit PCM of a fixture."""
    with wave.open(str(FIXTURES / f"{name}.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (RATE, 2, 1)
        return wav.readframes(wav.getnframes())


def fixture_text(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text().strip()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(int(seconds * rate) * 2)


def chunks(pcm: bytes, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


class PacedStream:
    """An async stream of 10 ms chunks at real-time pace (or `pace` times faster), that knows if it ran dry."""

    def __init__(self, pcm: bytes, pace: float = 1.0, size: int = CHUNK_BYTES) -> None:
        self.pcm, self.pace, self.size = pcm, pace, size
        self.sent = 0
        self.exhausted = False
        self.exhausted_at: float | None = None  # loop time the last chunk was handed out

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for chunk in chunks(self.pcm, self.size):
            due = start + self.sent / (2 * RATE) / self.pace
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.sent += len(chunk)
            yield chunk
        self.exhausted = True
        self.exhausted_at = loop.time()

    @property
    def seconds_sent(self) -> float:
        return self.sent / (2 * RATE)
