"""Batched reads of a stream (reads.py): the kernel's low-water mark is really set, every byte of audio still
reaches Flux, and an event that cannot fill a batch (AudioStop after a few chunks) is still read."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator

import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event

from tests.conftest import start_server
from tests.fake_flux import FakeFlux
from tests.helpers import chunks, fixture_text, load_wav, silence
from tests.wyoming_io import Raw, port
from wyoming_flux.server.protocol import reads
from wyoming_flux.server.protocol.limits import ConnectionLimits
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.server.protocol.wire import encode_event
from wyoming_flux.turn.session import SessionConfig

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


async def start(config: SessionConfig, **limits: object) -> WyomingServer:
    return await start_server(config, limits=ConnectionLimits(**limits))  # type: ignore[arg-type]


@pytest.fixture
async def server(session_config: SessionConfig) -> AsyncIterator[WyomingServer]:
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


async def stream(server: WyomingServer, events: list[bytes], pace: float = 0.01, stop: bool = True) -> Transcript:
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


async def test_a_stream_is_read_a_flux_frame_at_a_time(server: WyomingServer, fake_flux: FakeFlux,
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


async def test_audio_stop_after_a_partial_batch_is_read(server: WyomingServer, marks: list[tuple[int, int]]) -> None:
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


async def test_chunks_that_differ_are_read_one_by_one(server: WyomingServer, fake_flux: FakeFlux,
                                                      marks: list[tuple[int, int]]) -> None:
    # A client that stamps every chunk repeats no header: each chunk is parsed, and nothing is lost.
    fake_flux.script.no_eot = True
    pcm = load_wav(KITCHEN)
    events = [encode_event(AudioChunk(**FMT, audio=c, timestamp=i * 10).event()) for i, c in enumerate(chunks(pcm))]
    text = (await stream(server, events)).text
    assert text and fixture_text(KITCHEN).startswith(text)
    assert marks == []
    assert fake_flux.streams[-1].audio_bytes == len(pcm)


async def test_a_format_change_mid_stream_is_not_taken_for_a_repeat(server: WyomingServer, fake_flux: FakeFlux,
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

    def connection_lost(self, exc: Exception | None) -> None:
        if self.batching is not None:
            self.batching.close()


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
    async with asyncio.timeout(5):  # the connection is gone, and with it its batch and the watch's timer
        while watch._timer is not None:
            await asyncio.sleep(0.01)


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
# ------------------------------------------------------------ odd and hostile clients while a batch is open

LONG = 600.0  # seconds: a batch that would only be read when overdue is never read within any test's bound


@pytest.fixture
def never_overdue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches fall due only after LONG: whatever a test sees read must have been read for another reason
    (the mark reached, bytes that are not whole chunks, an EOF, a close)."""
    monkeypatch.setattr(reads, "MARGIN", LONG)


@pytest.fixture
def heard(monkeypatch: pytest.MonkeyPatch) -> dict[int, bytearray]:
    """The audio bytes each fake Flux stream received, in order, by the stream's index."""
    from tests import fake_flux

    got: dict[int, bytearray] = {}
    on_audio = fake_flux._Stream.on_audio

    async def spy(self: fake_flux._Stream, data: bytes) -> bool:
        got.setdefault(self.index, bytearray()).extend(data)
        return await on_audio(self, data)

    monkeypatch.setattr(fake_flux._Stream, "on_audio", spy)
    return got


class Client(Raw):
    """The raw client of the connection tests, which also waits for an event of a kind, and can abort."""

    async def until(self, kind: str, timeout: float = 5.0) -> list[Event]:
        """Every event up to the first of `kind` (or an error, which fails)."""
        events: list[Event] = []
        async with asyncio.timeout(timeout):
            while True:
                event = await self.read(timeout)
                assert event is not None, f"closed; got {[e.type for e in events]}"
                assert event.type == kind or event.type != "error", event.data
                events.append(event)
                if event.type == kind:
                    return events

    def abort(self) -> None:
        self.writer.transport.abort()


def batching(server: WyomingServer) -> list[reads.ReadBatching]:
    """The open batches of the server's connections (a mark above one byte)."""
    assert server._shared is not None
    return [c._reads for c in server._shared.connections if c._reads is not None and c._reads.mark > 1]


async def start_batching(server: WyomingServer, client: Client, events: list[bytes], pace: float = 0.01) -> int:
    """AudioStart, then chunks at `pace` until the server holds a mark above one byte for this client (only
    it streams); how many chunks were sent."""
    before = {id(b) for b in batching(server)}
    await client.send(encode_event(AudioStart(**FMT).event()))
    async with asyncio.timeout(10):
        for sent, event in enumerate(events, 1):
            await client.send(event)
            await asyncio.sleep(pace)
            if any(id(b) not in before for b in batching(server)):
                return sent
    raise AssertionError("no batch was ever opened")


def close_waits(server: WyomingServer) -> list[str]:
    """Server-side sockets on the server's port that the peer closed and we did not (TCP state CLOSE_WAIT)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port(server) and fields[3] == "08":
                        found.append(row.strip())
        except FileNotFoundError:
            continue
    return found


async def all_left(server: WyomingServer, timeout: float = 10.0) -> None:
    """Bounded: no connection, no command slot, no batch in the watch, its timer stopped, no CLOSE_WAIT."""
    assert server._shared is not None
    watch = server._shared.batches
    async with asyncio.timeout(timeout):
        while (server.connections or server.gate.active or watch._batches or watch._timer is not None
               or close_waits(server)):
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def kitchen_batch(server: WyomingServer, fake_flux: FakeFlux) -> AsyncIterator[tuple[Client, list[bytes], int]]:
    """A client streaming the kitchen fixture (Flux never ends the turn itself) until a batch is open:
    (the client, all chunk events, how many were sent)."""
    fake_flux.script.no_eot = True
    events = chunk_bytes(load_wav(KITCHEN))
    client = await Client.open(server)
    try:
        yield client, events, await start_batching(server, client, events)
    finally:
        await client.close()


async def answered_with(client: Client, fake_flux: FakeFlux, heard: dict[int, bytearray], pcm: bytes) -> None:
    """The kitchen transcript comes, and Flux heard exactly `pcm`."""
    assert fixture_text(KITCHEN).startswith(Transcript.from_event((await client.until("transcript"))[-1]).text)
    assert bytes(heard[len(fake_flux.streams) - 1]) == pcm


async def test_a_client_that_stalls_mid_batch_hits_the_audio_timeout(session_config: SessionConfig,
                                                                     never_overdue: None) -> None:
    server = await start(session_config, audio_timeout=0.5)
    client = await Client.open(server)
    try:
        await start_batching(server, client, chunk_bytes(load_wav(KITCHEN)))
        assert batching(server)  # and then nothing more: not a chunk, not an AudioStop
        (error,) = await client.until_closed(timeout=10.0)
        assert error.type == "error" and error.data["code"] == "timeout"
        await all_left(server)
    finally:
        await client.close()
        await server.stop()


async def test_audio_stop_is_read_while_a_batch_waits_for_more_chunks(server: WyomingServer, fake_flux: FakeFlux,
                                                                      heard: dict[int, bytearray],
                                                                      never_overdue: None) -> None:
    # The batch would never fall due: AudioStop is read because the queued bytes are not whole chunks.
    async with kitchen_batch(server, fake_flux) as (client, _, sent):
        await client.send(encode_event(AudioStop().event()))
        await answered_with(client, fake_flux, heard, load_wav(KITCHEN)[: sent * 320])


async def test_describe_mid_batch_is_answered_and_the_stream_goes_on(server: WyomingServer, fake_flux: FakeFlux,
                                                                     heard: dict[int, bytearray],
                                                                     never_overdue: None) -> None:
    async with kitchen_batch(server, fake_flux) as (client, events, sent):
        await client.send(encode_event(Event(type="describe")))
        assert (await client.until("info"))[-1].type == "info"  # not held back until the batch is complete
        for event in events[sent:]:
            await client.send(event)
            await asyncio.sleep(0.005)
        await client.send(encode_event(AudioStop().event()))
        await answered_with(client, fake_flux, heard, load_wav(KITCHEN))


@pytest.mark.parametrize("cut", [1, 40, 81, 134, 135, 300, 453], ids=lambda c: f"cut{c}")
async def test_chunks_split_across_segments_mid_batch_lose_nothing(server: WyomingServer, fake_flux: FakeFlux,
                                                                   heard: dict[int, bytearray], cut: int,
                                                                   never_overdue: None) -> None:
    # Each write after the batch opens ends `cut` bytes into a chunk event (in its header line, its data block
    # or its payload) and the rest follows after a pause: the queued bytes are never whole chunks for long.
    async with kitchen_batch(server, fake_flux) as (client, events, sent):
        rest = b"".join(events[sent:])
        for start in range(0, len(rest), len(events[0])):
            piece = rest[start : start + len(events[0])]
            await client.send(piece[:cut])
            await asyncio.sleep(0.01)
            await client.send(piece[cut:])
        await client.send(encode_event(AudioStop().event()))
        await answered_with(client, fake_flux, heard, load_wav(KITCHEN))


async def test_chunks_whose_audio_holds_their_own_header_are_audio(server: WyomingServer, fake_flux: FakeFlux,
                                                                   heard: dict[int, bytearray]) -> None:
    # Payloads made of the chunk event's own header line and data block, at every offset: only the bytes at
    # event boundaries are headers.
    fake_flux.script.no_eot = True
    header = chunk_bytes(bytes(320))[0][:-320]
    kitchen = load_wav(KITCHEN)
    pcm = b"".join((bytes(shift) + header * 3)[:320] for shift in range(200)) + kitchen[: len(kitchen) // 320 * 320]
    events = chunk_bytes(pcm)
    assert all(len(e) == len(events[0]) for e in events)  # one repeated header throughout
    text = (await stream(server, events, pace=0.005)).text
    assert text is not None
    assert bytes(heard[len(fake_flux.streams) - 1]) == pcm


@pytest.mark.parametrize("per_write", [1, 8, 13, 8.5], ids=lambda n: f"{n}-per-write")
async def test_a_burst_faster_than_real_time_reaches_flux_exactly(session_config: SessionConfig, fake_flux: FakeFlux,
                                                                  heard: dict[int, bytearray],
                                                                  per_write: float) -> None:
    # Eight seconds of audio as fast as the socket takes it, in writes of whole and half chunks (short of the
    # 10 s without new words after which a turn is forced to end). The fake Flux may take longer than the 2 s
    # finalize bound to digest them on a busy machine: that bound is not what this test is about.
    import random

    fake_flux.script.no_eot = True
    server = await start_server(dataclasses.replace(session_config, finalize_timeout=60.0, stall_timeout=60.0))
    pcm = random.Random(7).randbytes(8 * 32000)
    wire = b"".join(chunk_bytes(pcm))
    step = int(per_write * len(chunk_bytes(bytes(320))[0]))
    client = await Client.open(server)
    try:
        await client.send(encode_event(AudioStart(**FMT).event()))
        for start in range(0, len(wire), step):
            await client.send(wire[start : start + step])
        await client.send(encode_event(AudioStop().event()))
        await client.until("transcript", timeout=60.0)
        assert fake_flux.streams[-1].audio_bytes == len(pcm)
        assert bytes(heard[len(fake_flux.streams) - 1]) == pcm
    finally:
        await client.close()
        await server.stop()


async def test_half_close_mid_batch_closes_the_connection(server: WyomingServer, never_overdue: None) -> None:
    # Chunks, then EOF with no AudioStop while the mark waits for more: the EOF is seen, and we close too.
    client = await Client.open(server)
    try:
        await start_batching(server, client, chunk_bytes(load_wav(KITCHEN)))
        client.writer.write_eof()
        await client.until_closed(timeout=10.0)
        await all_left(server)
    finally:
        await client.close()


async def test_half_close_after_audio_stop_mid_batch_still_answers(server: WyomingServer, fake_flux: FakeFlux,
                                                                   never_overdue: None) -> None:
    fake_flux.script.no_eot = True
    client = await Client.open(server)
    try:
        await start_batching(server, client, chunk_bytes(load_wav(KITCHEN)))
        await client.send(encode_event(AudioStop().event()))
        client.writer.write_eof()
        events = await client.until_closed(timeout=10.0)
        assert [e.type for e in events][-1:] == ["transcript"]
        await all_left(server)
    finally:
        await client.close()


async def test_a_server_timeout_mid_batch_leaves_no_batch_behind(session_config: SessionConfig,
                                                                  never_overdue: None) -> None:
    server = await start(session_config, audio_timeout=0.3)
    clients = [await Client.open(server) for _ in range(3)]
    try:
        for client in clients:
            await start_batching(server, client, chunk_bytes(load_wav(KITCHEN)))
        assert len(batching(server)) == 3
        for client in clients:
            await client.until_closed(timeout=10.0)
            await client.close()
        await all_left(server)
    finally:
        for client in clients:
            await client.close()
        await server.stop()


async def test_many_connections_batching_at_once_all_leave_cleanly(server: WyomingServer, never_overdue: None) -> None:
    # Some leave with EOF, some with a reset, some close; none leaves a batch, a slot or a socket behind.
    clients = [await Client.open(server) for _ in range(12)]
    events = chunk_bytes(load_wav(KITCHEN))
    try:
        for client in clients:
            await start_batching(server, client, events)
        assert len(batching(server)) == len(clients)
        for i, client in enumerate(clients):
            if i % 3 == 0:
                client.writer.write_eof()
            elif i % 3 == 1:
                client.abort()
            else:
                await client.close()
        await all_left(server)
    finally:
        for client in clients:
            await client.close()


async def test_many_connections_streaming_at_once_each_get_all_their_audio(server: WyomingServer, fake_flux: FakeFlux,
                                                                           heard: dict[int, bytearray]) -> None:
    fake_flux.script.no_eot = True
    pcms = [load_wav(KITCHEN)[i * 320 :] for i in range(8)]  # each a different length
    results = await asyncio.gather(*(stream(server, chunk_bytes(pcm)) for pcm in pcms))
    assert all(fixture_text(KITCHEN).startswith(r.text) for r in results)
    assert sorted(len(h) for h in heard.values()) == sorted(len(p) for p in pcms)
    assert sorted(bytes(h) for h in heard.values()) == sorted(pcms)
    await all_left(server)


async def test_the_wyoming_clients_own_writes_are_batched_and_lose_nothing(server: WyomingServer, fake_flux: FakeFlux,
                                                                           heard: dict[int, bytearray],
                                                                           marks: list[tuple[int, int]]) -> None:
    # wyoming's writer sends a chunk's header line, data block and payload as separate writes (separate
    # segments on an idle socket), as Home Assistant does.
    from wyoming.client import AsyncTcpClient

    fake_flux.script.no_eot = True
    pcm = load_wav(KITCHEN)
    async with AsyncTcpClient("127.0.0.1", port(server)) as client:
        await client.write_event(AudioStart(**FMT).event())
        for piece in chunks(pcm):
            await client.write_event(AudioChunk(**FMT, audio=piece).event())
            await asyncio.sleep(0.01)
        await client.write_event(AudioStop().event())
        async with asyncio.timeout(10):
            while (event := await client.read_event()) is not None and event.type != "transcript":
                assert event.type != "error", event.data
        assert event is not None
    assert marks
    assert bytes(heard[len(fake_flux.streams) - 1]) == pcm


async def test_bare_chunks_after_audio_start_are_batched_with_their_format(server: WyomingServer, fake_flux: FakeFlux,
                                                                           heard: dict[int, bytearray],
                                                                           marks: list[tuple[int, int]]) -> None:
    # Chunks with no data block at all take AudioStart's format; a batch of them is that format's audio.
    fake_flux.script.no_eot = True
    pcm = load_wav(KITCHEN)
    events = [encode_event(Event(type="audio-chunk", payload=c)) for c in chunks(pcm)]
    text = (await stream(server, events)).text
    assert text and fixture_text(KITCHEN).startswith(text)
    assert marks
    assert bytes(heard[len(fake_flux.streams) - 1]) == pcm


async def test_an_audio_stop_the_size_of_a_chunk_event_is_still_answered(server: WyomingServer, fake_flux: FakeFlux,
                                                                         heard: dict[int, bytearray]) -> None:
    # Queued bytes that look like whole chunks but are an AudioStop: read once the batch is overdue.
    async with kitchen_batch(server, fake_flux) as (client, events, sent):
        stop = b'{"type":"audio-stop","data_length":%d}\n'
        pad = len(events[0]) - len(stop % 100) - len(b'{"p":""}')  # a three-digit data_length
        data = b'{"p":"%s"}' % (b"x" * pad)
        stop_event = stop % len(data) + data
        assert len(stop_event) == len(events[0])
        await client.send(stop_event)
        await answered_with(client, fake_flux, heard, load_wav(KITCHEN)[: sent * 320])


async def test_stopping_the_server_mid_batch_leaves_no_batch(session_config: SessionConfig,
                                                             never_overdue: None) -> None:
    server = await start(session_config)
    clients = [await Client.open(server) for _ in range(4)]
    try:
        for client in clients:
            await start_batching(server, client, chunk_bytes(load_wav(KITCHEN)))
        assert len(batching(server)) == len(clients)
    finally:
        await server.stop()
    assert server._shared is not None and not server._shared.batches._batches
    for client in clients:
        await client.until_closed()
        await client.close()


async def test_commands_back_to_back_and_without_audio_start_are_batched_whole(server: WyomingServer,
                                                                                fake_flux: FakeFlux,
                                                                                heard: dict[int, bytearray],
                                                                                marks: list[tuple[int, int]]) -> None:
    # Three commands on one connection: the second opened by its first chunk (no AudioStart), the third at a
    # different chunk size. Each Flux stream gets exactly its own command's audio.
    fake_flux.script.no_eot = True
    pcm = load_wav(KITCHEN)
    first, second, third = pcm[: 320 * 100], pcm[320 * 100 : 320 * 200], pcm[320 * 200 :]
    client = await Client.open(server)
    try:
        for i, (part, size, start) in enumerate([(first, 320, True), (second, 320, False), (third, 640, True)]):
            if start:
                await client.send(encode_event(AudioStart(**FMT).event()))
            for piece in chunks(part, size):
                await client.send(encode_event(AudioChunk(**FMT, audio=piece).event()))
                await asyncio.sleep(0.005 * size // 320)
            await client.send(encode_event(AudioStop().event()))
            await client.until("transcript")
            assert marks, f"command {i} was never batched"
            marks.clear()
    finally:
        await client.close()
    assert [bytes(heard[i]) for i in range(len(fake_flux.streams))][-3:] == [first, second, third]
