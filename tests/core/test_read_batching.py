"""Batched reads of a stream (reads.py): the kernel's low-water mark is really set, every byte of audio still
reaches Flux, and an event that cannot fill a batch (AudioStop after a few chunks) is still read."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator

import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop

from tests.conftest import make_settings
from tests.core.test_server import port
from tests.fake_flux import FakeFlux
from tests.helpers import chunks, fixture_text, load_wav, silence
from wyoming_flux import reads
from wyoming_flux.limits import ConnectionLimits
from wyoming_flux.server import FluxServer
from wyoming_flux.session import SessionConfig
from wyoming_flux.wire import encode_event

KITCHEN = "turn_on_the_kitchen_light"
FMT = {"rate": 16000, "width": 2, "channels": 1}
FRAME_CHUNKS = 8  # 10 ms chunks in one 80 ms Flux frame


@pytest.fixture
def marks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every mark a connection asked for, with the value the kernel then reports for its socket."""
    seen: list[tuple[int, int]] = []
    expect = reads.ReadBatching.expect

    def spy(self: reads.ReadBatching, chunks: int, unit: int, seconds: float) -> None:
        expect(self, chunks, unit, seconds)
        seen.append((chunks * unit, self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)))

    monkeypatch.setattr(reads.ReadBatching, "expect", spy)
    return seen


async def start(config: SessionConfig, **limits: object) -> FluxServer:
    settings = dataclasses.replace(make_settings(config), limits=ConnectionLimits(**limits))  # type: ignore[arg-type]
    server = FluxServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    return server


@pytest.fixture
async def server(session_config: SessionConfig) -> AsyncIterator[FluxServer]:
    server = await start(session_config)
    yield server
    await server.stop()


def chunk_bytes(pcm: bytes) -> list[bytes]:
    return [encode_event(AudioChunk(**FMT, audio=c).event()) for c in chunks(pcm)]


async def answer(reader: asyncio.StreamReader, timeout: float = 10.0) -> Transcript:
    from wyoming.event import async_read_event

    async with asyncio.timeout(timeout):
        while (event := await async_read_event(reader)) is not None:
            if event.type == "transcript":
                return Transcript.from_event(event)
            assert event.type != "error", event.data
    raise AssertionError("closed without a transcript")


async def stream(server: FluxServer, events: list[bytes], pace: float = 0.01, stop: bool = True) -> Transcript:
    """AudioStart, the chunks at real-time pace, AudioStop; the transcript."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
    try:
        writer.write(encode_event(AudioStart(**FMT).event()))
        for event in events:
            writer.write(event)
            await writer.drain()
            await asyncio.sleep(pace)
        if stop:
            writer.write(encode_event(AudioStop().event()))
        return await answer(reader)
    finally:
        writer.close()


async def test_a_stream_is_read_a_flux_frame_at_a_time(server: FluxServer, fake_flux: FakeFlux,
                                                        marks: list[tuple[int, int]]) -> None:
    fake_flux.script.no_eot = True  # the turn ends on AudioStop: every byte sent must have reached Flux
    pcm = load_wav(KITCHEN)
    events = chunk_bytes(pcm)
    text = (await stream(server, events)).text
    assert text and fixture_text(KITCHEN).startswith(text)
    assert fake_flux.streams[-1].audio_bytes == len(pcm)
    size = len(events[0])
    assert marks, "the stream was never read in batches"
    for nbytes, kernel in marks:
        assert kernel == nbytes  # the kernel holds the mark we asked for
        assert nbytes % size == 0 and 1 <= nbytes // size <= FRAME_CHUNKS  # whole chunks, at most one frame


async def test_audio_stop_after_a_partial_batch_is_read(server: FluxServer, marks: list[tuple[int, int]]) -> None:
    # After three chunks the mark asks for five more; AudioStop alone can never reach it.
    reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
    try:
        writer.write(encode_event(AudioStart(**FMT).event()))
        for event in chunk_bytes(silence(0.03)):
            writer.write(event)
            await writer.drain()
            await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            while not marks:  # the mark is set before AudioStop is sent
                await asyncio.sleep(0.005)
        assert marks[-1][0] > len(encode_event(AudioStop().event()))
        writer.write(encode_event(AudioStop().event()))
        assert (await answer(reader, timeout=5.0)).text == ""  # answered: nothing was said
    finally:
        writer.close()


async def test_read_window_zero_reads_every_chunk(session_config: SessionConfig, marks: list[tuple[int, int]]) -> None:
    server = await start(session_config, read_window=0.0)
    try:
        assert (await stream(server, chunk_bytes(load_wav(KITCHEN) + silence(1)))).text == fixture_text(KITCHEN)
    finally:
        await server.stop()
    assert marks == []


async def test_with_the_clients_vad_audio_stop_is_never_held_back(session_config: SessionConfig,
                                                                   marks: list[tuple[int, int]]) -> None:
    server = await start(dataclasses.replace(session_config, end_on_flux_eot=False))
    try:
        assert (await stream(server, chunk_bytes(load_wav(KITCHEN) + silence(0.3)))).text == fixture_text(KITCHEN)
    finally:
        await server.stop()
    assert marks == []


async def test_chunks_that_differ_are_read_one_by_one(server: FluxServer, fake_flux: FakeFlux,
                                                      marks: list[tuple[int, int]]) -> None:
    # A client that stamps every chunk repeats no header: each chunk is parsed, and nothing is lost.
    fake_flux.script.no_eot = True
    pcm = load_wav(KITCHEN)
    events = [encode_event(AudioChunk(**FMT, audio=c, timestamp=i * 10).event()) for i, c in enumerate(chunks(pcm))]
    text = (await stream(server, events)).text
    assert text and fixture_text(KITCHEN).startswith(text)
    assert marks == []
    assert fake_flux.streams[-1].audio_bytes == len(pcm)


async def test_a_format_change_mid_stream_is_not_taken_for_a_repeat(server: FluxServer, fake_flux: FakeFlux,
                                                                   marks: list[tuple[int, int]]) -> None:
    # 32 kHz chunks have a header of the same length as the 16 kHz ones: their audio must be resampled.
    fake_flux.script.no_eot = True
    pcm = load_wav(KITCHEN)
    first = chunk_bytes(pcm[:3200])
    doubled = [encode_event(AudioChunk(rate=32000, width=2, channels=1, audio=_upsample(c)).event())
               for c in chunks(pcm[3200:])]
    assert len(first[0]) + 320 == len(doubled[0])
    text = (await stream(server, first + doubled)).text
    assert text and fixture_text(KITCHEN).startswith(text)
    assert abs(fake_flux.streams[-1].audio_bytes - len(pcm)) <= 8  # 16 kHz at Flux: half the 32 kHz bytes
    assert marks


def _upsample(pcm: bytes) -> bytes:
    """Each 16-bit sample twice: the same sound at 32 kHz."""
    return b"".join(pcm[i : i + 2] * 2 for i in range(0, len(pcm), 2))
