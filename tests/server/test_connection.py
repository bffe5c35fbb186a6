"""The connection layer against hostile and odd clients: every limit holds, nothing leaks, peers get answers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe

from tests.conftest import make_settings, start_server
from tests.fake_flux import FakeFlux
from tests.helpers import chunks, fixture_text, load_wav, silence
from tests.wyoming_io import Raw, audio_events, port, read_until
from wyoming_flux.server.protocol.limits import ConnectionLimits
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.server.protocol.wire import encode_event
from wyoming_flux.turn.session import SessionConfig

KITCHEN = "turn_on_the_kitchen_light"
FMT = {"rate": 16000, "width": 2, "channels": 1}


@pytest.fixture
async def limited(session_config: SessionConfig, request: pytest.FixtureRequest) -> AsyncIterator[WyomingServer]:
    """A server with the limits the test is parametrized with (indirect), short enough to watch them act."""
    limits = ConnectionLimits(**getattr(request, "param", {}))
    server = WyomingServer(dataclasses.replace(make_settings(session_config), limits=limits), "tcp://127.0.0.1:0")
    await server.start()
    yield server
    await server.stop()




async def settled(server: WyomingServer, connections: int = 0, timeout: float = 5.0) -> None:
    """Wait (bounded) until the server holds `connections` connections and no command slot."""
    async with asyncio.timeout(timeout):
        while server.connections != connections or server.gate.active:
            await asyncio.sleep(0.02)


async def kitchen_command_works(server: WyomingServer) -> None:
    """A well-behaved client's command on a new connection gets the full text."""
    async with AsyncTcpClient("127.0.0.1", port(server)) as good:
        await good.write_event(AudioStart(**FMT).event())
        for event in audio_events(load_wav(KITCHEN) + silence(1)):
            await good.write_event(event)
        await good.write_event(AudioStop().event())
        assert Transcript.from_event((await read_until(good, "transcript"))[-1]).text == fixture_text(KITCHEN)


async def describe_works(server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(server)) as client:
        await client.write_event(Describe().event())
        assert (await read_until(client, "info"))[-1].type == "info"


# ------------------------------------------------------------ slots and leaks


async def test_a_malformed_transcribe_never_holds_a_command_slot(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    server = WyomingServer(dataclasses.replace(make_settings(session_config), max_sessions=1), "tcp://127.0.0.1:0")
    await server.start()
    try:
        bad = await Raw.open(server)
        await bad.send(Event(type="transcribe", data={"transcript_names": 5}), AudioStart(**FMT).event())
        error = await bad.read()
        assert error is not None and error.type == "error" and error.data["code"] == "bad-event"
        await bad.send(AudioStop().event())
        assert (await bad.read()).type == "transcript"  # type: ignore[union-attr]
        async with asyncio.timeout(5):
            while server.gate.active:
                await asyncio.sleep(0.02)
        await kitchen_command_works(server)  # the bad client is still connected
        await bad.close()
    finally:
        await server.stop()


@pytest.mark.parametrize("raw", [
    Event(type="transcribe", data={"language": "\ud800"}),
    Event(type="transcribe", data={"language": ["en"]}),
    Event(type="transcribe", data={"name": {"x": 1}}),
    Event(type="transcribe", data={"transcript_terms": [1, 2]}),
    Event(type="audio-start", data={"rate": "16000", "width": 2, "channels": 1}),
], ids=["lone-surrogate", "language-list", "name-object", "terms-ints", "rate-text"])
async def test_wrong_typed_fields_get_an_error_and_the_connection_goes_on(wyoming_server: WyomingServer, raw: Event) -> None:
    client = await Raw.open(wyoming_server)
    await client.send(raw, Describe().event())
    error, info = await client.read(), await client.read()
    assert error is not None and error.type == "error" and error.data["code"] == "bad-event"
    assert info is not None and info.type == "info"
    await client.close()
    await settled(wyoming_server)  # closed on our side too: no CLOSE-WAIT


async def test_deeply_nested_json_is_a_bad_event(wyoming_server: WyomingServer) -> None:
    client = await Raw.open(wyoming_server)
    nested = b'{"x": ' + b"[" * 300000 + b"]" * 300000 + b"}"
    await client.send(b'{"type": "describe", "data_length": %d}\n' % len(nested) + nested)
    (error,) = await client.until_closed()
    assert error.type == "error" and "nested too deeply" in error.data["text"]
    await client.close()
    await describe_works(wyoming_server)
    await settled(wyoming_server)


def test_text_a_client_sent_can_always_be_echoed() -> None:
    data = encode_event(Transcript(text="x", language="\ud800").event())
    assert json.loads(data.split(b"\n", 2)[1])["language"] == "\ud800"


async def test_the_flux_connection_limit_follows_max_sessions(session_config: SessionConfig) -> None:
    for max_sessions, warm in ((None, 1), (150, 0), (3, 2)):
        settings = dataclasses.replace(make_settings(session_config), max_sessions=max_sessions, warm_connections=warm)
        server = WyomingServer(settings, "tcp://127.0.0.1:0")
        await server.start()
        try:
            limit = server.flux_connection_limit()
            # Each command may open its stream while the one before it still closes in the background.
            assert limit >= 2 * (max_sessions or settings.limits.max_connections) + 2 * warm
            assert server._http is not None and server._http.connector is not None
            assert server._http.connector.limit == limit  # aiohttp's default (100) would cap streams silently
        finally:
            await server.stop()


async def test_the_next_event_does_not_wait_for_the_last_commands_flux_stream_to_close(
        session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.close_stream_delay = 3.0  # Flux takes its time to close after CloseStream
    server = await start_server(session_config, max_sessions=1)
    try:
        client = await Raw.open(server)
        await client.send(AudioStart(**FMT).event(), *audio_events(load_wav(KITCHEN) + silence(1)))
        assert (await client.read()).type in ("transcript-start", "transcript-chunk", "transcript")  # type: ignore[union-attr]
        while (event := await client.read()) is not None and event.type != "transcript":
            pass
        await client.send(AudioStop().event(), Describe().event())
        while (event := await client.read(timeout=10)) is not None and event.type != "info":
            assert event.type == "transcript-stop"
        assert event is not None
        assert not fake_flux.streams[0].closed  # answered while the old stream was still closing
        # The slot is free at once too: a second command on another connection gets its own stream.
        await kitchen_command_works(server)
        await client.close()
    finally:
        await server.stop()
    assert all(stream.closed for stream in fake_flux.streams)  # the server's stop waited for the closes


# ------------------------------------------------------------ limits in time and size


@pytest.mark.parametrize("limited", [{"idle_timeout": 0.3}], indirect=True)
async def test_an_idle_connection_is_closed_with_an_error(limited: WyomingServer) -> None:
    client = await Raw.open(limited)
    (error,) = await client.until_closed()
    assert error.type == "error" and error.data["code"] == "timeout"
    await client.close()
    await settled(limited)


@pytest.mark.parametrize("limited", [{"audio_timeout": 0.5}], indirect=True)
async def test_a_command_whose_audio_stops_coming_is_closed_and_its_slot_freed(limited: WyomingServer, fake_flux: FakeFlux) -> None:
    client = await Raw.open(limited)
    await client.send(AudioStart(**FMT).event(), AudioChunk(**FMT, audio=bytes(3200)).event())
    events = await client.until_closed()
    assert events[-1].type == "error" and events[-1].data["code"] == "timeout"
    await client.close()
    await settled(limited)
    async with asyncio.timeout(5):
        while not all(s.closed for s in fake_flux.streams):
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("limited", [{"event_timeout": 0.3}], indirect=True)
@pytest.mark.parametrize("partial", [b'{"type": "audio-chunk", "payload_length": 1000}\n' + bytes(10),
                                     b'{"type": "describe", "data_length": 50}\n{"a"', b'{"type": "desc'],
                         ids=["payload", "data", "header"])
async def test_an_event_announcing_more_than_it_sends_is_closed(limited: WyomingServer, partial: bytes) -> None:
    client = await Raw.open(limited)
    await client.send(partial)
    (error,) = await client.until_closed()
    assert error.type == "error" and error.data["code"] == "timeout"
    await client.close()
    await settled(limited)


@pytest.mark.parametrize("limited", [{"max_connections": 3}], indirect=True)
async def test_connections_beyond_the_limit_are_refused_and_logged_once(
    limited: WyomingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    held = [await Raw.open(limited) for _ in range(3)]
    await settled(limited, 3)
    for _ in range(20):
        extra = await Raw.open(limited)
        (error,) = await extra.until_closed()
        assert error.type == "error" and error.data["code"] == "server-full"
        await extra.close()
    await settled(limited, 3)
    assert len([r for r in caplog.records if "Refused a connection" in r.getMessage()]) == 1
    await held[0].close()
    await settled(limited, 2)
    await describe_works(limited)  # a place is free again
    for client in held[1:]:
        await client.close()
    await settled(limited)


@pytest.mark.parametrize("limited", [{"max_queued_bytes": 64 * 1024, "send_timeout": 0.5}], indirect=True)
async def test_a_client_that_never_reads_is_bounded_then_dropped(limited: WyomingServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(limited), limit=1024)
    writer.transport.pause_reading()  # type: ignore[attr-defined]  # a half-open client: sends, never reads
    data = encode_event(Describe().event()) * 2000
    sent = 0
    try:
        async with asyncio.timeout(20):
            while True:  # until the server stops taking bytes, or drops us
                writer.write(data)
                sent += len(data)
                await asyncio.wait_for(writer.drain(), 1.0)
                await describe_works(limited)  # the others are served all along
    except (TimeoutError, ConnectionError):
        pass
    await describe_works(limited)
    async with asyncio.timeout(10):
        while limited.connections:
            await asyncio.sleep(0.05)  # dropped: it would not read its answers
    writer.close()
    await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    await settled(limited)


async def test_an_audio_start_flood_is_served_at_our_pace_while_others_are_served(
    wyoming_server: WyomingServer, fake_flux: FakeFlux
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(wyoming_server))
    writer.transport.pause_reading()  # type: ignore[attr-defined]  # and never reads
    writer.write(encode_event(AudioStart(**FMT).event()) * 1000)
    for _ in range(5):
        await describe_works(wyoming_server)
        assert wyoming_server.gate.active <= 1  # one command at a time per connection, whatever it sends
    writer.transport.abort()  # type: ignore[attr-defined]
    await settled(wyoming_server, timeout=60)  # what it had sent is worked off, then it is noticed gone


async def test_a_refused_allow_list_client_is_logged_once_a_minute(
    session_config: SessionConfig, caplog: pytest.LogCaptureFixture
) -> None:
    import ipaddress
    settings = dataclasses.replace(make_settings(session_config), allow=(ipaddress.ip_network("10.0.0.0/8"),))
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    try:
        for _ in range(30):
            client = await Raw.open(server)
            (error,) = await client.until_closed()
            assert error.data["code"] == "client-not-allowed"
            await client.close()
    finally:
        await server.stop()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([line for line in lines if "not in --allow" in line]) == 1
    assert "29 more refused connections in the last minute" in lines  # said at shutdown, not lost


async def test_a_flood_does_not_keep_others_waiting(wyoming_server: WyomingServer) -> None:
    """Fairness, not speed: with a client flooding Describe as fast as it can, another's Describe is still
    answered (the figure, ≤ 50 ms p99, is measured by bench/fairness.py)."""
    flooder = await Raw.open(wyoming_server)
    stop = asyncio.Event()

    async def flood() -> None:
        batch = encode_event(Describe().event()) * 200
        while not stop.is_set():
            flooder.writer.write(batch)
            await flooder.writer.drain()
            await flooder.reader.read(1 << 20)

    task = asyncio.create_task(flood())
    try:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            started = loop.time()
            await describe_works(wyoming_server)
            assert loop.time() - started < 2.0
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await flooder.close()
    await settled(wyoming_server)


# ------------------------------------------------------------ answers as peers give them


async def test_audio_stop_with_nothing_before_it_gets_an_empty_transcript(wyoming_server: WyomingServer, fake_flux: FakeFlux) -> None:
    client = await Raw.open(wyoming_server)
    await client.send(AudioStop().event())
    event = await client.read()
    assert event is not None and event.type == "transcript" and event.data["text"] == ""
    await client.send(Transcribe(language="de").event())
    with pytest.raises(TimeoutError):  # a lone Transcribe waits for its audio, as Home Assistant expects
        await client.read(timeout=0.5)
    await client.send(AudioStop().event())
    event = await client.read()
    assert event is not None and Transcript.from_event(event) == Transcript(text="", language="de")
    await client.close()
    assert fake_flux.handshakes == 0


async def test_audio_without_audio_start_is_a_command_in_the_chunks_format(wyoming_server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        for event in audio_events(load_wav(KITCHEN) + silence(1)):
            await client.write_event(event)
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript-stop")
        assert Transcript.from_event(events[-2]).text == fixture_text(KITCHEN)
        await client.write_event(Event(type="audio-chunk", payload=bytes(320)))  # bare, and nothing to go by
        await client.write_event(Event(type="audio-chunk", payload=bytes(320)))
        await client.write_event(AudioStop().event())
        await client.write_event(Describe().event())
        events = await read_until(client, "info")
        assert [e.type for e in events][:1] == ["error"]  # one error for the command, not one per chunk
        events += await read_until(client, "info")
        assert [e.type for e in events] == ["error", "info"]


async def test_bare_chunks_after_audio_start_take_its_format(wyoming_server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(AudioStart(**FMT).event())
        for chunk in chunks(load_wav(KITCHEN) + silence(1)):
            await client.write_event(Event(type="audio-chunk", payload=chunk))
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    assert "error" not in [e.type for e in events]
    assert Transcript.from_event(events[-1]).text == fixture_text(KITCHEN)


async def test_the_transcript_carries_the_commands_language(wyoming_server: WyomingServer) -> None:
    async with AsyncTcpClient("127.0.0.1", port(wyoming_server)) as client:
        await client.write_event(Transcribe(language="en-US").event())
        await client.write_event(AudioStart(**FMT).event())
        for event in audio_events(load_wav(KITCHEN) + silence(1)):
            await client.write_event(event)
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript-stop")
    languages = {e.type: e.data.get("language") for e in events if e.type in ("transcript-start", "transcript")}
    assert languages == {"transcript-start": "en-US", "transcript": "en-US"}


# ------------------------------------------------------------ fuzzing the wire

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)
_FIELDS = st.dictionaries(st.sampled_from(["rate", "width", "channels", "language", "name", "text",
                                           "transcript_names", "transcript_terms", "audio"]), _JSON, max_size=4)
_HEADERS = st.builds(
    lambda kind, data, data_length, payload_length, tail: json.dumps(
        {"type": kind, "data": data, "data_length": data_length, "payload_length": payload_length}).encode() + b"\n" + tail,
    st.sampled_from(["describe", "transcribe", "audio-start", "audio-chunk", "audio-stop", "x"]) | st.text(max_size=5),
    _FIELDS | _JSON, st.none() | st.integers(-2, 40), st.none() | st.integers(-2, 600) | st.sampled_from([2 ** 40]),
    st.binary(max_size=64))
_STREAMS = st.lists(_HEADERS | st.binary(max_size=200), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=_STREAMS)
async def test_any_bytes_leave_the_server_serving_others_and_holding_nothing(limited: WyomingServer, pieces: list[bytes]) -> None:
    client = await Raw.open(limited)
    try:
        for piece in pieces:
            client.writer.write(piece)
        await client.writer.drain()
        await describe_works(limited)  # a well-behaved client alongside
    except ConnectionError:
        pass  # the server closed a connection that sent garbage: fine
    finally:
        await client.close()
    await settled(limited)  # no connection and no command slot is left behind (tasks and fds: conftest)


async def test_a_unix_socket_is_served_and_a_stale_socket_file_replaced(session_config: SessionConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from wyoming.client import AsyncClient

    with contextlib.suppress(ImportError):  # Home Assistant's harness (3.14 venv) allows loopback TCP only
        import pytest_socket

        pytest_socket.socket_allow_hosts(["127.0.0.1"], allow_unix_socket=True)
    path = tmp_path / "flux.sock"
    stale = socket.socket(socket.AF_UNIX)  # a socket file left over from an earlier run
    stale.bind(str(path))
    stale.close()
    server = WyomingServer(make_settings(session_config), f"unix://{path}")
    await server.start()
    try:
        async with AsyncClient.from_uri(f"unix://{path}") as client:
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), 5)
            assert event is not None and event.type == "info"
    finally:
        await server.stop()
