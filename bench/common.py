"""Shared by the benchmarks: start the fake Flux and the server as real processes, drive Wyoming commands."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from tests.helpers import chunks, free_port  # noqa: E402,F401  (free_port: also for the other benches)

API_KEY = "bench-key"


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def processes(*server_args: str, fake_args: tuple[str, ...] = ()) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The fake Flux and a wyoming-flux server, each its own process; yields (server process, server port)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flux_port, port = free_port(), free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_flux", "--port", str(flux_port), "--api-key", API_KEY,
                             *fake_args], env=env, stdout=subprocess.DEVNULL)
    launcher = os.environ.get("BENCH_SERVER_LAUNCHER", "-m wyoming_flux").split()  # e.g. to profile it
    server = subprocess.Popen([sys.executable, *launcher, "--uri", f"tcp://127.0.0.1:{port}",
                               "--api-key", API_KEY, "--flux-url", f"ws://127.0.0.1:{flux_port}/v2/listen",
                               *server_args], env=env,
                              stderr=subprocess.DEVNULL)
    try:
        wait_port(flux_port)
        wait_port(port)
        yield server, port
    finally:
        for proc in (server, fake):
            proc.terminate()
            proc.wait(10)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    text: str
    started: float  # monotonic, when AudioStart was sent
    answered: float  # monotonic, when the Transcript was read
    bytes_sent: int


async def command(port: int, pcm: bytes, *, rate: int = 16000, width: int = 2, channels: int = 1,
                  chunk_bytes: int = 320, pace: float | None = None, tag: str | None = None,
                  language: str | None = None) -> Outcome:
    """One Wyoming command; pace=None uploads as fast as possible. `tag` goes along as a keyterm so the fake
    Flux can log its timings under the same name; `language` is the command's (Transcribe)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        async def answer() -> tuple[str, float]:
            while True:
                event = await client.read_event()
                if event is None:
                    raise RuntimeError("connection closed without an answer")
                if Transcript.is_type(event.type):
                    return Transcript.from_event(event).text, time.monotonic()
                if event.type == "error":
                    raise RuntimeError(f"error: {event.data}")

        reading = asyncio.create_task(answer())
        if tag is not None or language is not None:
            await client.write_event(Transcribe(language=language, transcript_names=[tag] if tag else None).event())
        started = time.monotonic()
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        sent = 0
        for chunk in chunks(pcm, chunk_bytes):
            if reading.done():
                break
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=chunk).event())
            sent += len(chunk)
            if pace:
                due = started + sent / (rate * width * channels) / pace
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        await client.write_event(AudioStop().event())
        text, answered = await asyncio.wait_for(reading, 30)
        return Outcome(text, started, answered, sent)


def read_timing_log(path: Path) -> dict[tuple[str, str], dict[str, object]]:
    """(tag, event) -> the fake Flux's log entry ({"t": monotonic time, ...}); untagged entries are skipped."""
    entries: dict[tuple[str, str], dict[str, object]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry["tag"]:
                entries[(entry["tag"], entry["event"])] = entry
    return entries


def count_events(path: Path, event: str) -> int:
    return sum(1 for line in path.read_text().splitlines() if json.loads(line)["event"] == event) if path.exists() else 0


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
    return {"n": len(ordered), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def save(name: str, data: object) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
