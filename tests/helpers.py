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


# TCP states in /proc/net/tcp{,6} (hex): the ones a socket we still hold can be in
_HELD_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
                "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}


def held_sockets(port: int) -> list[str]:
    """States of the loopback TCP sockets to or from `port` that are still held (not listening, not gone)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
                if port in (local, remote) and (state := fields[3]) in _HELD_STATES:
                    found.append(_HELD_STATES[state])
    return found


def reset_peak_memory() -> None:
    """Start measuring this process's peak resident memory from now (Linux)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def memory_mb() -> tuple[float, float]:
    """(resident, peak resident since reset_peak_memory) of this process, in MB."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class FrozenListener:
    """A TCP port whose server never accepts nor reads, as a process stopped with SIGSTOP: connections complete
    in the kernel, and what is sent fills a small receive buffer, then nothing moves."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = int(self.socket.getsockname()[1])
        self.uri = f"tcp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.socket.close()
