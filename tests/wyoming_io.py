"""Talking to our Wyoming server from tests: a command's events, reading answers, a raw socket client."""

from __future__ import annotations

import asyncio
import os
import sys

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event

from tests.conftest import API_KEY, ROOT
from tests.fake_flux import FakeFlux
from tests.helpers import chunks, load_wav, silence
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.server.protocol.wire import encode_event

KITCHEN = "turn_on_the_kitchen_light"


async def serve_with_a_port_taken(fake_flux: FakeFlux, *flags: str) -> tuple[int | None, str, int]:
    """Start the server process with `flags`, where "{taken}" is a port another socket listens on; return its
    exit code, its stderr and that port."""
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wyoming_flux", "--flux-url", fake_flux.url,
            *(flag.format(taken=port) for flag in flags),
            env={**os.environ, "PYTHONPATH": str(ROOT), "DEEPGRAM_API_KEY": API_KEY},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        blocker.close()
        await blocker.wait_closed()
    return process.returncode, err.decode().strip(), port


class Raw:
    """A client that writes bytes and reads events as they come, with a bound on every wait."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: WyomingServer) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", port(server)))

    async def send(self, *events: Event | bytes) -> None:
        for event in events:
            self.writer.write(event if isinstance(event, bytes) else encode_event(event))
        await self.writer.drain()

    async def read(self, timeout: float = 5.0) -> Event | None:
        async with asyncio.timeout(timeout):
            return await async_read_event(self.reader)

    async def until_closed(self, timeout: float = 5.0) -> list[Event]:
        """Every event until the server closes the connection."""
        events = []
        async with asyncio.timeout(timeout):
            while (event := await async_read_event(self.reader)) is not None:
                events.append(event)
        return events

    async def close(self) -> None:
        self.writer.close()
        await asyncio.gather(self.writer.wait_closed(), return_exceptions=True)


async def until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def command_with_names(port: int, names: list[str]) -> str:
    """One kitchen command whose Transcribe carries names (Configure on a warm socket); its transcript."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(transcript_names=names).event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for event in audio_events(load_wav(KITCHEN) + silence(1)):
            await client.write_event(event)
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    return Transcript.from_event(events[-1]).text


async def one_command(port: int, pcm: bytes, pace: float = 10.0) -> tuple[Event, float | None]:
    """Stream at `pace`, then AudioStop; return the answer and how long after the last audio it came."""
    loop = asyncio.get_running_loop()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        async def answer() -> Event:
            while True:
                event = await client.read_event()
                assert event is not None, "the server closed the connection without an answer"
                if event.type in ("transcript", "error"):
                    return event
        reading = asyncio.create_task(answer())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for event in audio_events(pcm):
            if reading.done():
                break
            await client.write_event(event)
            await asyncio.sleep(0.01 / pace)
        last_audio = loop.time()
        await client.write_event(AudioStop().event())
        async with asyncio.timeout(15):
            event = await reading
        after = loop.time() - last_audio
        return event, (after if after > 0.05 else None)


def audio_events(pcm: bytes, rate: int = 16000) -> list[Event]:
    return [AudioChunk(rate=rate, width=2, channels=1, audio=c).event() for c in chunks(pcm)]


async def read_until(client: AsyncTcpClient, last_type: str, timeout: float = 5.0) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await client.read_event()
            assert event is not None, f"connection closed; got {[e.type for e in events]}"
            events.append(event)
            if event.type in (last_type, "error"):
                return events


def port(server: WyomingServer) -> int:
    assert server.port is not None
    return server.port


async def describe_latencies(port: int, count: int, interval: float = 0.02) -> list[float]:
    """Seconds each of `count` Describe round trips took on one connection, `interval` apart."""
    from wyoming.info import Describe, Info

    loop = asyncio.get_running_loop()
    latencies = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for _ in range(count):
            started = loop.time()
            await client.write_event(Describe().event())
            async with asyncio.timeout(10):
                while (event := await client.read_event()) is not None and not Info.is_type(event.type):
                    pass
            assert event is not None, "the server closed the connection"
            latencies.append(loop.time() - started)
            await asyncio.sleep(interval)
    return latencies
