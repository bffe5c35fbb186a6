"""Hostile and odd Wyoming input: an Error or a safe ignore, never a crash, a hang or unbounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import sys

import aiohttp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe

from tests.conftest import API_KEY, make_settings, start_server
from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, free_port, load_wav, silence
from tests.wyoming_io import describe_latencies, one_command, port, read_until
from wyoming_flux.cli.main import exposure_warning
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

pytestmark = pytest.mark.usefixtures("backend")  # every test on Flux and on Nova-3

KITCHEN = "turn_on_the_kitchen_light"


def reformat(pcm16: bytes, rate: int, width: int, channels: int) -> bytes:
    """16 kHz mono int16 -> another rate/width/channel count (linear interpolation is enough for a fixture)."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64) / 32768
    if rate != 16000:
        x = np.interp(np.arange(int(len(x) * rate / 16000)) * 16000 / rate, np.arange(len(x)), x)
    if width == 1:
        s = np.clip(x * 127 + 128, 0, 255).astype(np.uint8)
    elif width == 2:
        s = (x * 32767).astype("<i2")
    elif width == 3:
        ints = (x * 8388607).astype("<i4")
        b = ints.view(np.uint8).reshape(-1, 4)[:, :3]
        return np.repeat(b, channels, axis=0).tobytes()
    else:
        s = (x * 2147483647).astype("<i4")
    return np.repeat(s, channels).tobytes()


@pytest.mark.parametrize(("rate", "width", "channels"), [
    (8000, 2, 1), (11025, 1, 1), (22050, 3, 2), (44100, 4, 2), (48000, 2, 8), (96000, 2, 1), (16000, 3, 1),
])
async def test_any_client_format_is_transcribed(wyoming_server: WyomingServer, rate: int, width: int, channels: int) -> None:
    pcm = reformat(load_wav(KITCHEN) + silence(1), rate, width, channels)
    odd = 1237  # chunks that split samples and sample frames
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(pcm), odd):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i:i + odd]).event())
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)


async def test_format_change_zero_byte_and_huge_chunks(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    speech = load_wav(KITCHEN)
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=b"").event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=speech[:16000]).event())
        rest = reformat(speech[16000:] + silence(40), 48000, 4, 2)  # one 15 MB chunk in another format
        await client.write_event(AudioChunk(rate=48000, width=4, channels=2, audio=rest).event())
        events = await read_until(client, "transcript", timeout=10)
        await client.write_event(AudioStop().event())
    assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)
    assert fake_flux.streams[0].audio_seconds <= 30.08  # the 30 s bound holds inside one chunk


@pytest.mark.parametrize(("raw", "reason"), [
    (b"this is not json\n", "not JSON"),
    (b'{"type": "audio-chunk", "payload_length": 999999999999}\n', "over the limit"),
    (b'{"type": "describe", "data_length": 50000000}\n', "over the limit"),
    (b'{"type": "describe", "payload_length": -5}\n', "non-negative"),
    (b'{"no_type": 1}\n', "no type"),
    (b'{"type": "x", "data_length": 4}\n[1] ', "must be an object"),
    (b'{"type": "' + b"a" * 70000 + b'"}\n', "too long"),
], ids=["not-json", "huge-payload", "huge-data", "negative-length", "no-type", "data-not-object", "long-header"])
async def test_unreadable_events_get_an_error_and_the_server_carries_on(
    wyoming_server: WyomingServer, raw: bytes, reason: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(wyoming_server))
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(5):
            header = json.loads(await reader.readline())
            data = json.loads(await reader.readexactly(header["data_length"]))
            assert header["type"] == "error" and data["code"] == "bad-event" and reason in data["text"]
            assert await reader.read() == b""  # and the connection is closed
    finally:
        writer.close()
        await writer.wait_closed()
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(Describe().event())
        assert (await read_until(client, "info"))[-1].type == "info"


async def test_known_events_with_wrong_fields_are_answered_not_fatal(wyoming_server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(Event(type="audio-start", data={"rate": 16000}))  # no width/channels
        error = Error.from_event((await read_until(client, "error"))[-1])
        assert error.code == "bad-event"
        await client.write_event(Describe().event())
        assert (await read_until(client, "info"))[-1].type == "info"


async def test_client_disconnecting_mid_command_closes_the_flux_stream(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=load_wav(KITCHEN)[:32000]).event())
        for _ in range(100):
            if fake_flux.streams and fake_flux.streams[0].audio_bytes:
                break
            await asyncio.sleep(0.02)
    for _ in range(100):
        if fake_flux.streams[0].closed:
            break
        await asyncio.sleep(0.02)
    assert fake_flux.streams[0].closed
    assert wyoming_server.gate.active == 0


async def test_a_second_transcribe_mid_command_does_not_disturb_it(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        pcm = load_wav(KITCHEN) + silence(1)
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[:20000]).event())
        await client.write_event(Transcribe(name="flux-general-multi", language="de").event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[20000:]).event())
        await client.write_event(AudioStop().event())
        assert Transcript.from_event((await read_until(client, "transcript"))[-1]).text == fixture_text(KITCHEN)
    assert len(fake_flux.streams) == 1 and fake_flux.streams[0].query["model"] == ["flux-general-en"]


async def test_hundreds_of_idle_connections_and_a_describe_flood(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    idle = [await asyncio.open_connection("127.0.0.1", port(wyoming_server)) for _ in range(300)]
    try:
        async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
            for _ in range(2000):
                await client.write_event(Describe().event())
            async with asyncio.timeout(20):
                for _ in range(2000):
                    assert (await client.read_event()).type == "info"  # type: ignore[union-attr]
    finally:
        for _, writer in idle:
            writer.close()
            await writer.wait_closed()
    assert fake_flux.handshakes == 0


async def test_max_sessions_refuses_the_excess_without_opening_flux(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    server = WyomingServer(dataclasses.replace(make_settings(session_config), max_sessions=1), "tcp://127.0.0.1:0")
    await server.start()
    try:
        async with AsyncTcpClient("127.0.0.1", port(server)) as first, AsyncTcpClient("127.0.0.1", port(server)) as second:
            await first.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await second.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            error = Error.from_event((await read_until(second, "error"))[-1])
            assert error.code == "server-busy"
            await first.write_event(AudioStop().event())
            await read_until(first, "transcript")
            await second.write_event(AudioStop().event())
            await second.write_event(AudioStart(rate=16000, width=2, channels=1).event())  # a slot is free again
            await second.write_event(AudioStop().event())
            assert (await read_until(second, "transcript"))[-1].type == "transcript"
        assert fake_flux.handshakes == 2
    finally:
        await server.stop()


@pytest.mark.parametrize(("networks", "allowed"), [(("10.0.0.0/8",), False), (("10.0.0.0/8", "127.0.0.0/8"), True)])
async def test_allow_list(session_config: SessionConfig, networks: tuple[str, ...], allowed: bool) -> None:
    allow = tuple(ipaddress.ip_network(n) for n in networks)
    server = WyomingServer(dataclasses.replace(make_settings(session_config), allow=allow), "tcp://127.0.0.1:0")
    await server.start()
    try:
        async with AsyncTcpClient("127.0.0.1", port(server)) as client:
            await client.write_event(Describe().event())
            event = (await read_until(client, "info"))[-1]
        assert event.type == ("info" if allowed else "error")
        if not allowed:
            assert Error.from_event(event).code == "client-not-allowed"
    finally:
        await server.stop()


def test_listening_beyond_loopback_without_allow_list_warns() -> None:
    assert exposure_warning("tcp://0.0.0.0:10300", ()) is not None
    assert "--allow" in (exposure_warning("tcp://192.168.1.5:10300", ()) or "")
    assert exposure_warning("tcp://127.0.0.1:10300", ()) is None
    assert exposure_warning("tcp://localhost:10300", ()) is None
    assert exposure_warning("unix:///run/flux.sock", ()) is None
    assert exposure_warning("tcp://0.0.0.0:10300", (ipaddress.ip_network("10.0.0.0/8"),)) is None


async def test_the_key_appears_nowhere_in_logs_even_at_debug(
    wyoming_server: WyomingServer, fake_flux: FakeFlux, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for arrange in ({"handshake_status": 401}, {"handshake_status": 500}, {"fatal_after": 0.5}, {"silent_after": 0.5}, {}):
        fake_flux.script = type(fake_flux.script)(**arrange)  # type: ignore[arg-type]
        event, _ = await one_command(port(wyoming_server), load_wav(KITCHEN) + silence(1))
        assert API_KEY not in json.dumps(event.data)
    text = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
    assert "Command" in text and API_KEY not in text and API_KEY[-8:] not in text
    assert API_KEY not in repr(wyoming_server.settings)  # reprs (tracebacks show them) hide it too


# -------------------------------------------------------------- property-based

_FORMATS = st.tuples(st.sampled_from([8000, 16000, 22050, 48000, 0, -1]), st.integers(0, 5), st.integers(0, 9))
_EVENTS = st.lists(
    st.one_of(
        st.just(("describe",)),
        st.tuples(st.just("transcribe"), st.sampled_from([None, "flux-general-en", "nope"]), st.sampled_from([None, "en", "de-DE", "xx"])),
        st.tuples(st.just("start"), _FORMATS),
        st.tuples(st.just("chunk"), _FORMATS, st.integers(0, 7000)),
        st.just(("stop",)),
        st.tuples(st.just("unknown"), st.text(max_size=10)),
    ),
    max_size=25,
)


def _to_event(step: tuple) -> Event:  # type: ignore[type-arg]
    kind = step[0]
    if kind == "describe":
        return Describe().event()
    if kind == "transcribe":
        return Transcribe(name=step[1], language=step[2]).event()
    if kind == "start":
        rate, width, channels = step[1]
        return Event(type="audio-start", data={"rate": rate, "width": width, "channels": channels})
    if kind == "chunk":
        (rate, width, channels), size = step[1], step[2]
        return Event(type="audio-chunk", data={"rate": rate, "width": width, "channels": channels},
                     payload=(b"\x10\x27" * size)[:size])
    if kind == "stop":
        return AudioStop().event()
    return Event(type=f"x-{step[1]}", data={})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_EVENTS)
async def test_any_event_sequence_leaves_the_server_answering(wyoming_server: WyomingServer, steps: list[tuple]) -> None:  # type: ignore[type-arg]
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        for step in steps:
            await client.write_event(_to_event(step))
        await client.write_event(AudioStop().event())
        await client.write_event(Describe().event())
        events = await read_until(client, "info", timeout=10)  # answered, in order, within the bound
        answers = [e for e in events if e.type in ("transcript", "error")]
        starts = sum(1 for s in steps if s[0] == "start")
        stops = sum(1 for s in steps if s[0] == "stop") + 1  # an AudioStop with nothing open gets empty text
        assert len(answers) <= starts + stops + sum(1 for s in steps if s[0] in ("chunk",))
    for _ in range(100):  # the server notices the disconnect asynchronously
        if wyoming_server.gate.active == 0:
            break
        await asyncio.sleep(0.02)
    assert wyoming_server.gate.active == 0  # every command was closed


HALF_A_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: metrics\r\n"  # and the rest never comes


async def test_a_metrics_slowloris_is_closed_and_never_slows_the_wyoming_port(session_config: SessionConfig) -> None:
    server = await start_server(session_config, metrics_port=0)
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        assert server.metrics_port is not None
        for _ in range(100):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.metrics_port)
            writer.write(HALF_A_REQUEST)
            clients.append((reader, writer))
        assert max(await describe_latencies(port(server), 20)) < 0.5  # ~1 ms; a wide margin for a busy machine
        # Those over the cap (16) are refused at once, the others closed at their head deadline (5 s).
        async with asyncio.timeout(5.0 + 5.0):
            for reader, _ in clients:
                with contextlib.suppress(ConnectionError):
                    await reader.read()
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
            assert r.status == 200 and "wyoming_flux_commands" in await r.text()
    finally:
        for _, writer in clients:
            writer.close()
        await server.stop()


async def test_a_metrics_flood_cannot_take_the_descriptors_the_wyoming_port_needs(fake_flux: FakeFlux) -> None:
    """The real process with 256 descriptors: 400 half-sent requests to the metrics port, and the Wyoming port
    still answers, with no accept() failure in the log."""
    wyoming_port, metrics_port = free_port(), free_port()
    limited = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
               "os.execv(sys.executable, [sys.executable, '-m', 'wyoming_flux', *sys.argv[1:]])")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", limited, "--uri", f"tcp://127.0.0.1:{wyoming_port}", "--flux-url", fake_flux.url,
        "--metrics-port", str(metrics_port), "--max-connections", "20", env={**os.environ, "DEEPGRAM_API_KEY": API_KEY},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    writers: list[asyncio.StreamWriter] = []
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", wyoming_port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        for _ in range(400):
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    _, writer = await asyncio.open_connection("127.0.0.1", metrics_port)
                    writer.write(HALF_A_REQUEST)
                    writers.append(writer)
        assert max(await describe_latencies(wyoming_port, 5)) < 2.0
    finally:
        for writer in writers:
            writer.close()
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 30)
    log = err.decode()
    assert "out of system resource" not in log and "Traceback" not in log, log[-2000:]
    assert len(log.splitlines()) < 20
