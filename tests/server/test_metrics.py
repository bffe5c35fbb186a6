"""Prometheus metrics: scraped over real HTTP after real commands through the server against the fake Flux."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from wyoming.asr import Transcript
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error

from tests.conftest import API_KEY, make_settings, start_server
from tests.fake_flux import FakeFlux, Script
from tests.fallback_peer import wyoming_peer
from tests.helpers import fixture_text, free_port, load_wav, memory_mb, silence
from tests.wyoming_io import (
    audio_events,
    command_with_names,
    describe_latencies,
    one_command,
    read_until,
    serve_with_a_port_taken,
    until,
)
from wyoming_flux.cli.main import build_parser, main, settings_from_args
from wyoming_flux.server.monitoring.http_endpoint import HttpLimits
from wyoming_flux.server.monitoring.http_endpoint import MetricsListenError
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

pytestmark = pytest.mark.usefixtures("backend")  # every test on Flux and on Nova-3

KITCHEN = "turn_on_the_kitchen_light"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def start(config: SessionConfig, **changes: object) -> WyomingServer:
    return await start_server(config, metrics_port=0, **changes)


@pytest.fixture
async def server(session_config: SessionConfig) -> AsyncIterator[WyomingServer]:
    server = await start(session_config)
    yield server
    await server.stop()


async def scrape(server: WyomingServer) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{server.metrics_port}/metrics") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((f"wyoming_flux_{name}", tuple(sorted(labels.items()))), 0.0)


async def test_commands_audio_latency_and_handshakes_are_counted(server: WyomingServer, fake_flux: FakeFlux,
                                                                 end_trigger: str) -> None:
    assert server.port is not None
    before = await scrape(server)
    assert value(before, "commands_total", outcome="end_of_turn", trigger=end_trigger) == 0
    pcm = load_wav(KITCHEN) + silence(2)
    for _ in range(2):
        event, _ = await one_command(server.port, pcm)
        assert Transcript.from_event(event).text == fixture_text(KITCHEN)
    event, _ = await one_command(server.port, silence(0.5))  # AudioStop ends it: no words, no latency
    assert Transcript.from_event(event).text == ""
    after = await scrape(server)
    assert value(after, "commands_total", outcome="end_of_turn", trigger=end_trigger) == 2
    assert value(after, "commands_total", outcome="forced", trigger="none") == 1
    # What Flux received (and bills), within a frame or two per command; the turns ended before all was sent.
    received = sum(stream.audio_seconds for stream in fake_flux.streams)
    assert abs(value(after, "audio_sent_seconds_total") - received) < 3 * 0.1
    assert 2 * 1.5 < received < 2 * len(pcm) / 32000
    assert value(after, "speech_end_to_transcript_seconds_count") == 2
    assert 0 < value(after, "speech_end_to_transcript_seconds_sum") < 2 * 5.0
    assert value(after, "flux_handshake_seconds_count", socket="new") == 3
    assert value(after, "flux_handshake_seconds_count", socket="warm") == 0
    assert value(after, "active_sessions") == 0 and value(after, "warm_sockets") == 0
    assert value(after, "errors_total", code="audio-format") == 0


async def test_errors_are_counted_by_code_and_gauges_follow_live_connections(server: WyomingServer,
                                                                             fake_flux: FakeFlux) -> None:
    assert server.port is not None
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        await client.write_event(AudioStart(rate=16000, width=5, channels=1).event())
        assert Error.from_event((await read_until(client, "error"))[-1]).code == "audio-format"
        await client.write_event(AudioStop().event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for event in audio_events(silence(0.3)):  # a command streaming to Flux now
            await client.write_event(event)
        await until(lambda: len(fake_flux.streams) == 1)
        live = await scrape(server)
        assert value(live, "active_connections") == 1 and value(live, "active_sessions") == 1
        await client.write_event(AudioStop().event())
        await read_until(client, "transcript")
    fake_flux.script.handshake_status = 402
    event, _ = await one_command(server.port, silence(0.3))
    assert Error.from_event(event).code == "flux-no-credit"
    await until(lambda: server.connections == 0)
    after = await scrape(server)
    assert value(after, "errors_total", code="audio-format") == 1
    assert value(after, "errors_total", code="flux-no-credit") == 1
    assert value(after, "commands_total", outcome="error", trigger="none") == 1
    assert value(after, "active_connections") == 0 and value(after, "active_sessions") == 0


async def test_warm_sockets_and_refused_configures_are_counted(session_config: SessionConfig,
                                                               fake_flux: FakeFlux, backend: str) -> None:
    if backend == "nova":
        pytest.skip("Nova-3 commands always handshake: the warm pool holds Flux sockets only")
    fake_flux.script.configure_failure = True
    server = await start(session_config, warm_connections=1)
    try:
        assert server.port is not None
        await until(lambda: server.pool is not None and server.pool.ready == 1)
        assert value(await scrape(server), "warm_sockets") == 1
        assert await command_with_names(server.port, ["Küche"]) == fixture_text(KITCHEN)  # Configure: refused
        samples = await scrape(server)
        assert value(samples, "configure_failures_total") == 1
        assert value(samples, "flux_handshake_seconds_count", socket="warm") == 1
        assert value(samples, "flux_handshake_seconds_count", socket="new") == 0
    finally:
        await server.stop()


async def test_each_server_has_its_own_registry_and_healthz_follows_the_server(session_config: SessionConfig,
                                                                                end_trigger: str) -> None:
    first, second = await start(session_config), await start(session_config)
    try:
        assert first.port is not None
        event, _ = await one_command(first.port, load_wav(KITCHEN) + silence(2))
        assert Transcript.from_event(event).text
        assert value(await scrape(first), "commands_total", outcome="end_of_turn", trigger=end_trigger) == 1
        assert value(await scrape(second), "commands_total", outcome="end_of_turn", trigger=end_trigger) == 0
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{second.metrics_port}/healthz") as r:
            assert r.status == 200 and await r.text() == "ok\n"
    finally:
        await first.stop()
        await second.stop()
    assert second.metrics_port is None  # stopped: the endpoint is gone too


async def test_metrics_are_off_by_default(wyoming_server: WyomingServer) -> None:
    assert wyoming_server.metrics is None and wyoming_server.metrics_port is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-port", "0"], "--metrics-port must be between 1 and 65535"),
        (["--metrics-port", "70000"], "--metrics-port must be between 1 and 65535"),
        (["--uri", "tcp://127.0.0.1:10300", "--metrics-port", "10300"], "--metrics-port must differ"),
        (["--metrics-host", " ", "--metrics-port", "9300"], "--metrics-host must not be empty"),
    ],
)
def test_bad_metrics_options_are_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api-key", "k", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_metrics_options_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_args(build_parser().parse_args(["--api-key", "k", "--uri", "tcp://10.1.2.3:10300"]))
    assert settings.metrics_port is None
    on = settings_from_args(build_parser().parse_args(["--api-key", "k", "--uri", "tcp://10.1.2.3:10300",
                                                       "--metrics-port", "9300"]))
    assert (on.metrics_host, on.metrics_port) == ("10.1.2.3", 9300)  # the --uri host by default
    monkeypatch.setenv("WYOMING_FLUX_METRICS_PORT", "9301")
    monkeypatch.setenv("WYOMING_FLUX_METRICS_HOST", "127.0.0.1")
    env = settings_from_args(build_parser().parse_args(["--api-key", "k", "--uri", "unix:///tmp/x.sock"]))
    assert (env.metrics_host, env.metrics_port) == ("127.0.0.1", 9301)


async def test_a_metrics_port_in_use_is_one_line(fake_flux: FakeFlux) -> None:
    code, text, taken = await serve_with_a_port_taken(fake_flux, "--uri", f"tcp://127.0.0.1:{free_port()}",
                                                      "--metrics-port", "{taken}")
    assert code == 1 and f"cannot serve metrics on 127.0.0.1:{taken}" in text
    assert text.splitlines()[-1].startswith("wyoming-flux: error:")
    assert "Traceback" not in text and "Unclosed" not in text, text


async def test_a_command_then_metrics_from_the_real_process(fake_flux: FakeFlux) -> None:
    port, metrics_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyoming_flux", "--uri", f"tcp://127.0.0.1:{port}", "--flux-url", fake_flux.url,
        "--metrics-port", str(metrics_port), env={**os.environ, "DEEPGRAM_API_KEY": API_KEY},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{metrics_port}/healthz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
            event, _ = await one_command(port, load_wav(KITCHEN) + silence(2))
            assert Transcript.from_event(event).text == fixture_text(KITCHEN)
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                text = await response.text()
        assert 'wyoming_flux_commands_total{outcome="end_of_turn",trigger="model"} 1.0' in text
        assert API_KEY not in text
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert "Traceback" not in err.decode()



async def test_a_server_without_metrics_never_imports_prometheus_client() -> None:
    """Home Assistant installs the core without the server extra; its tests run our server beside HA's wyoming."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys, wyoming_flux.cli.main, wyoming_flux.server.server, wyoming_flux.server.protocol.command;"
        "print('prometheus_client' in sys.modules)", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert out.decode().strip() == "False"


async def test_metrics_without_prometheus_client_is_one_clear_error(session_config: SessionConfig,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if the server extra were not installed
    monkeypatch.delitem(sys.modules, "wyoming_flux.server.monitoring.metrics", raising=False)
    server = WyomingServer(dataclasses.replace(make_settings(session_config), metrics_port=0), "tcp://127.0.0.1:0")
    with pytest.raises(MetricsListenError, match=r"--metrics-port needs prometheus_client"):
        await server.start()
    assert server.port is None  # nothing half-started is left listening


async def test_billed_audio_is_exactly_what_flux_received(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    """Commands the fallback answered count only the audio Flux got before failing; none when Flux's handshake
    failed. The integration's usage adds the same TurnResult.billed_seconds."""
    async with wyoming_peer() as peer:
        server = await start(session_config, fallback_uri=peer.uri, fallback_timeout=4.0)
        try:
            assert server.port is not None
            fake_flux.script.handshake_status = 503  # Flux refuses: the fallback answers, Flux got nothing
            event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(0.5))
            assert Transcript.from_event(event).text == fixture_text(KITCHEN)
            assert value(await scrape(server), "audio_sent_seconds_total") == 0
            await asyncio.sleep(2.2)  # past the backoff: Flux is tried again
            fake_flux.script = Script(fatal_after=1.0)  # Flux hears 1 s, then fails: the fallback answers
            event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(0.5))
            assert Transcript.from_event(event).text == fixture_text(KITCHEN)
            await until(lambda: all(stream.closed for stream in fake_flux.streams))
            received = sum(stream.audio_seconds for stream in fake_flux.streams)
            assert 1.0 <= received < 2.0
            assert value(await scrape(server), "audio_sent_seconds_total") == pytest.approx(received, abs=0.001)
        finally:
            await server.stop()


# ---------------------------------------------------------------- hostile metrics clients (the port alone: one API)

ONE_BACKEND = pytest.mark.parametrize("backend", ["flux"], indirect=True)
PIPELINE = b"GET /metrics HTTP/1.1\r\nHost: metrics\r\n\r\n" * 4096  # 160 KiB of requests per write


@contextlib.asynccontextmanager
async def metrics_server(config: SessionConfig, **limits: object) -> AsyncIterator[WyomingServer]:
    server = WyomingServer(dataclasses.replace(make_settings(config), metrics_port=0), "tcp://127.0.0.1:0")
    server.metrics_limits = dataclasses.replace(server.metrics_limits, **limits)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def pipelining(port: int, *, read: bool) -> AsyncIterator[asyncio.Event]:
    """One connection sending `GET /metrics` requests back to back for as long as the block runs; it reads the
    answers as fast as they come, or never. Yields an event set when the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    dropped = asyncio.Event()

    async def send() -> None:
        try:
            while True:
                writer.write(PIPELINE)
                await writer.drain()
        except ConnectionError:
            dropped.set()

    async def drain_answers() -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(1 << 16):
                pass

    tasks = [asyncio.create_task(send())] + ([asyncio.create_task(drain_answers())] if read else [])
    try:
        yield dropped
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.transport.abort()


async def status_of(port: int, path: str = "/metrics", timeout: float = 5.0) -> int:
    """One GET on a new connection."""
    async with asyncio.timeout(timeout), aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.get(f"http://127.0.0.1:{port}{path}") as response:
            await response.read()
            return response.status


@ONE_BACKEND
@pytest.mark.parametrize("read", [False, True], ids=["unread", "read"])
async def test_a_pipelining_metrics_client_stalls_nobody(session_config: SessionConfig, read: bool) -> None:
    """One connection pipelining /metrics: it was Describe at 6-12 s, /healthz timing out and +170 MB. Now its
    requests wait while its answers do (64 KiB), 32 at most are answered per turn of the loop, and the buffer is
    parsed in place (bench/hostile.py: Describe max ~10 ms, RSS flat)."""
    async with metrics_server(session_config) as server:
        assert server.port is not None and server.metrics_port is not None
        before, _ = memory_mb()
        async with pipelining(server.metrics_port, read=read):
            await asyncio.sleep(0.5)
            latencies = await describe_latencies(server.port, 40, interval=0.05)
            assert await status_of(server.metrics_port, "/healthz") == 200
            grown = memory_mb()[0] - before
    # ~1-30 ms on a busy machine; a wide margin all the same.
    assert max(latencies) < 1.0, f"Describe took up to {max(latencies) * 1000:.0f} ms"
    assert grown < 50, f"{grown:.0f} MB more while the pipeline ran"


@ONE_BACKEND
async def test_a_pipeline_that_never_reads_is_dropped_at_the_send_deadline(session_config: SessionConfig) -> None:
    """New requests no longer re-arm the deadline that a client that does not read set off."""
    async with metrics_server(session_config, send_timeout=1.0) as server:
        assert server.metrics_port is not None
        async with pipelining(server.metrics_port, read=False) as dropped:
            async with asyncio.timeout(1.0 + 4.0):  # it was never dropped: each request re-armed the deadline
                await dropped.wait()


@ONE_BACKEND
async def test_idle_keep_alive_connections_make_way_for_scrapers(session_config: SessionConfig) -> None:
    """Sixteen keep-alive health checks held the whole cap: every scrape was answered 503. Now one address holds
    at most 8, and a new connection closes the one idle the longest."""
    async with metrics_server(session_config) as server:
        assert server.metrics_port is not None
        held = []
        for _ in range(16):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.metrics_port)
            writer.write(b"HEAD /healthz HTTP/1.1\r\nHost: metrics\r\n\r\n")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            held.append((reader, writer))
        try:
            assert [await status_of(server.metrics_port) for _ in range(20)] == [200] * 20
            async with asyncio.timeout(5):  # the oldest were closed cleanly, with nothing lost
                closed = [await reader.read() == b"" for reader, _ in held[:8]]
            assert all(closed)
        finally:
            for _, writer in held:
                writer.close()


@ONE_BACKEND
async def test_one_address_holds_at_most_its_share_of_the_metrics_port(session_config: SessionConfig) -> None:
    async with metrics_server(session_config) as server:
        port = server.metrics_port
        assert port is not None
        held = []
        for _ in range(16):  # half a request each: busy, none can be closed for another
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            writer.write(b"GET /metrics HTTP/1.1\r\n")
            held.append((reader, writer))
        try:
            async with asyncio.timeout(3):
                refused = [(await reader.read()).startswith(b"HTTP/1.1 503") for reader, _ in held[8:]]
            assert all(refused)
            await asyncio.sleep(0.2)
            assert await status_of(port) == 200  # another address, while the first holds its 8
        finally:
            for _, writer in held:
                writer.close()
