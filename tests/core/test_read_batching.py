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

from tests.conftest import start_server
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
    return await start_server(config, limits=ConnectionLimits(**limits))  # type: ignore[arg-type]


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


class Recorder(asyncio.Protocol):
    """A real server-side connection that only records its reads and holds a ReadBatching."""

    def __init__(self, watch: reads.BatchWatch) -> None:
        self.watch = watch
        self.reads: list[bytes] = []
        self.batching: reads.ReadBatching | None = None
        self.got = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.batching = reads.ReadBatching(transport, self.watch)

    def data_received(self, data: bytes) -> None:
        self.reads.append(data)
        self.got.set()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Recorder, asyncio.StreamWriter, reads.BatchWatch]]:
    watch = reads.BatchWatch()
    recorders: list[Recorder] = []

    def make() -> Recorder:
        recorders.append(Recorder(watch))
        return recorders[-1]

    server = await asyncio.get_running_loop().create_server(make, "127.0.0.1", 0)
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    async with asyncio.timeout(5):
        while not recorders or recorders[0].batching is None:
            await asyncio.sleep(0.001)
    yield recorders[0], writer, watch
    writer.close()
    server.close()
    await server.wait_closed()


UNIT = 400  # bytes of one chunk event on the wire, for these tests


async def test_whole_chunks_below_the_mark_are_not_read(pair: tuple[Recorder, asyncio.StreamWriter, reads.BatchWatch]) -> None:
    recorder, writer, _ = pair
    assert recorder.batching is not None
    recorder.batching.expect(8, UNIT, 60.0)  # due in a minute: only the mark or the watch can wake us
    writer.write(b"c" * UNIT * 3)
    await writer.drain()
    await asyncio.sleep(0.2)  # several watch ticks: whole chunks, not due, so nobody reads
    assert recorder.reads == [] and recorder.batching.mark == 8 * UNIT
    writer.write(b"c" * UNIT * 5)  # the mark is reached: one read of all eight
    async with asyncio.timeout(5):
        await recorder.got.wait()
    assert b"".join(recorder.reads) == b"c" * UNIT * 8


async def test_something_other_than_chunks_is_read_without_waiting_for_the_batch(
        pair: tuple[Recorder, asyncio.StreamWriter, reads.BatchWatch]) -> None:
    recorder, writer, watch = pair
    assert recorder.batching is not None
    recorder.batching.expect(8, UNIT, 60.0)
    writer.write(b"c" * UNIT * 3 + b"s" * 40)  # three chunks and an AudioStop-sized event
    async with asyncio.timeout(5):  # the watch sees 1240 queued bytes, not whole chunks, and lowers the mark
        await recorder.got.wait()
    assert b"".join(recorder.reads) == b"c" * UNIT * 3 + b"s" * 40
    assert recorder.batching.mark == 1 and not watch._batches


async def test_an_overdue_batch_is_read(pair: tuple[Recorder, asyncio.StreamWriter, reads.BatchWatch]) -> None:
    recorder, writer, watch = pair
    assert recorder.batching is not None
    recorder.batching.expect(8, UNIT, 0.05)
    writer.write(b"c" * UNIT * 2)  # whole chunks, but the client stops: read once the batch is overdue
    async with asyncio.timeout(5):
        await recorder.got.wait()
    assert b"".join(recorder.reads) == b"c" * UNIT * 2
    assert recorder.batching.mark == 1 and not watch._batches


async def test_a_server_stopped_mid_batch_leaves_no_timer(session_config: SessionConfig,
                                                          marks: list[tuple[int, int]]) -> None:
    server = await start(session_config)
    watch = server._shared.batches  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
    try:
        writer.write(encode_event(AudioStart(**FMT).event()))
        async with asyncio.timeout(5):
            for event in chunk_bytes(silence(5)):
                writer.write(event)
                await writer.drain()
                if marks and watch._batches:
                    break  # a batch is open, its timer running
                await asyncio.sleep(0.01)
        assert watch._timer is not None
        await server.stop()
        assert watch._timer is None and not watch._batches  # nothing left for the event loop to run
    finally:
        writer.close()
