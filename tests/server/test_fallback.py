"""The local fallback through the Wyoming server: every Flux fault gives Flux's text or the fallback's, within
the bound; while Flux is down commands skip it; after the backoff Flux answers again."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error

from tests.conftest import make_settings
from tests.fake_flux import FakeFlux, Script
from tests.fallback_peer import Peer, wyoming_peer
from tests.faults import FAULTS, Fault, heal
from tests.helpers import FrozenListener, fixture_text, free_port, held_sockets, load_wav, memory_mb, silence
from tests.helpers import reset_peak_memory
from tests.wyoming_io import audio_events, one_command, read_until
from wyoming_flux.cli.config import ConfigError
from wyoming_flux.cli.main import build_parser, main, settings_from_args
from wyoming_flux.deepgram.errors import DeepgramError, DeepgramUnavailableError
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.fallback import FALLBACK_GRACE, AudioBuffer, DeepgramHealth
from wyoming_flux.turn.request import TurnResult
from wyoming_flux.turn.session import SessionConfig
from wyoming_flux.turn.state import Ending

pytestmark = pytest.mark.usefixtures("backend")  # every test on Flux and on Nova-3

KITCHEN = "turn_on_the_kitchen_light"
TIMER = "set_a_timer"
FALLBACK_TIMEOUT = 4.0
BOUND = FALLBACK_TIMEOUT + FALLBACK_GRACE  # seconds from audio-stop to the answer


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    async with wyoming_peer() as running:
        yield running


@contextlib.asynccontextmanager
async def serving(config: SessionConfig, fallback_uri: str, timeout: float = FALLBACK_TIMEOUT
                  ) -> AsyncIterator[WyomingServer]:
    """A server on a free loopback port, with this fallback."""
    settings = dataclasses.replace(make_settings(config), fallback_uri=fallback_uri, fallback_timeout=timeout)
    flux_server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await flux_server.start()
    try:
        assert flux_server.port is not None
        yield flux_server
    finally:
        await flux_server.stop()


@pytest.fixture
async def server(session_config: SessionConfig, peer: Peer) -> AsyncIterator[WyomingServer]:
    async with serving(session_config, peer.uri) as flux_server:
        yield flux_server


def _text(event: object) -> str:
    assert not Error.is_type(event.type), Error.from_event(event)  # type: ignore[attr-defined]
    return Transcript.from_event(event).text  # type: ignore[arg-type]


def _fallbacks(caplog: pytest.LogCaptureFixture) -> int:
    return sum("ended_by=fallback" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault_answered_by_flux_or_the_fallback(
    fault: Fault, fake_flux: FakeFlux, server: WyomingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wyoming_flux")
    assert server.port is not None
    fault.arrange(fake_flux)
    if fault.refused:
        await fake_flux.stop()
    event, after = await one_command(server.port, load_wav(KITCHEN) + silence(fault.silence_after))
    # Flux's full text when Flux answered; otherwise the fallback heard the whole command (the peer only
    # names a fixture whose audio arrived complete from its first sample).
    assert _text(event) == fixture_text(KITCHEN), fault.name
    if fault.outcome == "text":
        assert _fallbacks(caplog) == 0, fault.name  # Flux answered: nothing waits for the fallback
    elif fault.outcome.startswith("error:"):
        assert _fallbacks(caplog) == 1, fault.name
    # "best": a stream that broke before EndOfTurn goes to the fallback; a slow one may still finish in time
    assert after is None or after <= BOUND, f"answered {after:.2f} s after the last audio"
    # The next command works (through the fallback while Flux is in its backoff, or through Flux).
    await heal(fake_flux, fault)
    event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))
    assert _text(event) == fixture_text(KITCHEN)


async def test_while_flux_is_down_commands_skip_it_then_flux_is_tried_again(
    fake_flux: FakeFlux, server: WyomingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wyoming_flux")
    assert server.port is not None
    fake_flux.script.handshake_delay = 60.0  # Flux never answers: the first command waits the connect timeout
    event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(0.5))
    assert _text(event) == fixture_text(KITCHEN)
    handshakes = fake_flux.handshakes
    # Within the backoff the next command goes straight to the fallback: no Flux attempt, no Flux timeout.
    loop = asyncio.get_running_loop()
    started = loop.time()
    event, after = await one_command(server.port, load_wav(TIMER) + silence(0.5), pace=1e6)
    assert _text(event) == fixture_text(TIMER)
    assert fake_flux.handshakes == handshakes
    assert loop.time() - started < 2.5  # well under Flux's 3 s connect timeout
    assert _fallbacks(caplog) == 2
    # Flux recovers; after the backoff (2 s) a command tries Flux again and Flux answers.
    fake_flux.script = Script()
    await asyncio.sleep(2.2)
    event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))
    assert _text(event) == fixture_text(KITCHEN)
    assert fake_flux.handshakes == handshakes + 1
    assert _fallbacks(caplog) == 2


async def test_a_failing_fallback_gives_flux_s_error_and_the_server_goes_on(
    fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    async with wyoming_peer("--error") as failing, serving(session_config, failing.uri, 2.0) as server:
        assert server.port is not None
        fake_flux.script.handshake_status = 500
        event, _ = await one_command(server.port, load_wav(KITCHEN))
        assert Error.is_type(event.type) and Error.from_event(event).code == "flux-unavailable"
        # Degraded Flux text survives a failing fallback.
        fake_flux.script = Script(fatal_after=1.5)  # once words were reported (Nova-3: about every second)
        await asyncio.sleep(2.2)  # past the backoff: Flux is tried again
        event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))
        text = _text(event)
        assert text and fixture_text(KITCHEN).startswith(text)


async def test_an_unreachable_fallback_is_bounded(fake_flux: FakeFlux, session_config: SessionConfig) -> None:
    async with serving(session_config, "tcp://127.0.0.1:1", 2.0) as server:
        assert server.port is not None
        fake_flux.script.handshake_status = 429
        event, after = await one_command(server.port, load_wav(KITCHEN))
        assert Error.is_type(event.type) and Error.from_event(event).code == "flux-rate-limited"
        assert after is None or after <= 2.0 + FALLBACK_GRACE


@pytest.mark.parametrize(("argv", "message"), [
    (["--fallback-uri", "http://whisper:10300"], "--fallback-uri must be tcp://HOST:PORT"),
    (["--fallback-uri", "tcp://whisper"], "--fallback-uri tcp://whisper needs a host and a port"),
    (["--fallback-uri", "tcp://whisper:99999"], "--fallback-uri tcp://whisper:99999 is not tcp://HOST:PORT"),
    (["--fallback-uri", "tcp://whisper:10300", "--fallback-timeout", "0"], "--fallback-timeout must be between"),
])
def test_a_bad_fallback_is_one_clear_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api-key", "k", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


def test_the_fallback_comes_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from_args(build_parser().parse_args(["--api-key", "k"])).fallback_uri is None
    monkeypatch.setenv("WYOMING_FLUX_FALLBACK_URI", "tcp://whisper:10300")
    monkeypatch.setenv("WYOMING_FLUX_FALLBACK_TIMEOUT", "6")
    settings = settings_from_args(build_parser().parse_args(["--api-key", "k"]))
    assert (settings.fallback_uri, settings.fallback_timeout) == ("tcp://whisper:10300", 6.0)


def test_the_buffer_keeps_the_command_up_to_the_max_command_length() -> None:
    buffer = AudioBuffer(max_seconds=1.0)
    for _ in range(150):  # 1.5 s of 10 ms chunks
        buffer.append(bytes(320), 16000, 2, 1)
    assert buffer.full and buffer.ended.is_set()
    assert sum(len(c.audio) for c in buffer.chunks) == 32000  # exactly 1 s kept, nothing beyond
    buffer.append(bytes(32000 * 10), 16000, 2, 1)
    assert sum(len(c.audio) for c in buffer.chunks) == 32000


def test_flux_health_backs_off_on_unreachable_flux_and_recovers_on_an_answer() -> None:
    now = [0.0]
    health = DeepgramHealth(first_backoff=2.0, max_backoff=5.0, clock=lambda: now[0])
    down = TurnResult("", Ending.ERROR, error=DeepgramUnavailableError("Flux is unavailable (HTTP 503)"))
    refused = TurnResult("", Ending.ERROR, error=DeepgramError("refused", code="flux-bad-request"))
    health.observe(refused)
    assert not health.skip_flux()  # a refused request says nothing about Flux's reachability
    health.observe(down)
    assert health.skip_flux()
    now[0] = 2.1
    assert not health.skip_flux()  # due for another try
    health.observe(down)
    assert health.skip_flux() and health.retry_in() == pytest.approx(4.0)  # the backoff doubled
    health.observe(down)
    assert health.retry_in() == pytest.approx(5.0)  # up to its cap
    health.observe(TurnResult("hi", Ending.END_OF_TURN))
    assert not health.down and not health.skip_flux()


async def test_a_fallback_that_ends_the_command_itself_answers_before_the_client_stops(
    fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    """Flux end-of-speech mode with Flux down: the client streams until it gets a transcript, so the fallback
    hears the audio live and its own end of speech ends the command, not the max-command bound."""
    async with wyoming_peer("--endpointing") as endpointing, serving(session_config, endpointing.uri) as server:
        assert server.port is not None
        await fake_flux.stop()  # Flux unreachable
        loop = asyncio.get_running_loop()
        started = loop.time()
        event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(20), pace=2)  # 23 s, sent in 11.5 s
        assert _text(event) == fixture_text(KITCHEN)
        # The speech takes 1.4 s to send: the answer came long before the client's audio would have ended.
        assert loop.time() - started < 7.0


async def test_a_client_that_leaves_while_the_fallback_works_leaves_nothing_behind(
    fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    async with wyoming_peer("--delay", "30") as slow, serving(session_config, slow.uri, 1.0) as server:
        assert server.port is not None
        fake_flux.script.handshake_status = 503
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            for event in audio_events(load_wav(KITCHEN)):
                await client.write_event(event)
            await client.write_event(AudioStop().event())
            await asyncio.sleep(0.5)  # the fallback is now hearing the command
        # Within the fallback's bound (1 + 3 s) the command ends, the server notices the client left, and
        # the connection, its command slot and the fallback connection are gone (the suite checks fds/tasks).
        for _ in range(200):
            if server.connections == 0:
                break
            await asyncio.sleep(0.05)
        assert server.connections == 0 and server.gate.active == 0


def test_a_fallback_that_is_this_server_is_refused() -> None:
    for uri, fallback in [("tcp://0.0.0.0:10300", "tcp://127.0.0.1:10300"), ("tcp://127.0.0.1:10300", "tcp://localhost:10300"),
                          ("tcp://192.168.1.5:10300", "tcp://192.168.1.5:10300")]:
        with pytest.raises(ConfigError, match=f"--fallback-uri {fallback} is this server"):
            settings_from_args(build_parser().parse_args(["--api-key", "k", "--uri", uri, "--fallback-uri", fallback]))
    # Another port on this machine is another server.
    settings_from_args(build_parser().parse_args(["--api-key", "k", "--uri", "tcp://0.0.0.0:10300",
                                                  "--fallback-uri", "tcp://127.0.0.1:10301"]))


async def test_a_fallback_that_leads_back_here_stops_the_start(session_config: SessionConfig) -> None:
    from wyoming_flux.server.protocol.fallback_client import FallbackLoopError

    # The server itself has no address check (that is the command line's): the Describe probe arrives here.
    port = free_port()
    settings = dataclasses.replace(make_settings(session_config), fallback_uri=f"tcp://127.0.0.1:{port}")
    server = WyomingServer(settings, f"tcp://127.0.0.1:{port}")
    with pytest.raises(FallbackLoopError, match="is this server"):
        await server.start()


async def test_an_unreachable_fallback_is_one_warning_at_start(session_config: SessionConfig,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    async with serving(session_config, "tcp://127.0.0.1:1", 2.0):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "fallback" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("The fallback at tcp://127.0.0.1:1 does not answer")


async def test_a_reachable_fallback_is_not_warned_about(server: WyomingServer, caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


async def test_a_command_that_is_another_servers_fallback_never_goes_to_a_fallback(
    fake_flux: FakeFlux, session_config: SessionConfig, peer: Peer
) -> None:
    """A -> B -> peer: with Flux down, A's fallback (B) must answer from Flux or fail, never pass the command on
    to its own fallback: two servers that are each other's fallback would pass a command around forever."""
    fake_flux.script.handshake_status = 503
    async with serving(session_config, peer.uri) as second:
        async with serving(session_config, f"tcp://127.0.0.1:{second.port}") as first:
            assert first.port is not None
            event, _ = await one_command(first.port, load_wav(KITCHEN))
    assert Error.is_type(event.type)
    error = Error.from_event(event)
    assert error.code == "flux-unavailable"
    # One sentence for both failures: Flux's, and the fallback's (B's own Flux error).
    assert "Deepgram is unavailable" in error.text and "and the fallback failed" in error.text
    assert error.text.count("the fallback failed") == 1


async def test_when_the_fallback_fails_too_the_client_is_told(fake_flux: FakeFlux, session_config: SessionConfig) -> None:
    async with serving(session_config, "tcp://127.0.0.1:1", 2.0) as server:
        assert server.port is not None
        fake_flux.script.handshake_status = 429
        event, _ = await one_command(server.port, load_wav(KITCHEN))
    error = Error.from_event(event)
    assert error.code == "flux-rate-limited"
    assert "and the fallback failed: cannot reach the fallback at tcp://127.0.0.1:1" in error.text


async def test_a_frozen_fallback_gets_the_command_answered_within_its_bound_and_leaves_no_socket(
    fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    """Flux down, the fallback stopped (it neither reads nor answers) while a long 48 kHz stereo command is
    replayed to it: the answer is Flux's error within the fallback's bound, and no socket is left, neither the
    client's nor the fallback's."""
    frozen = FrozenListener()
    try:
        async with serving(session_config, frozen.uri, 1.0) as server:
            assert server.port is not None
            await fake_flux.stop()
            loop = asyncio.get_running_loop()
            chunk = bytes(4800 * 2 * 2)  # 0.1 s of 48 kHz 16-bit stereo: 30 s is 5.8 MB, more than buffers hold
            async with AsyncTcpClient("127.0.0.1", server.port) as client:
                await client.write_event(AudioStart(rate=48000, width=2, channels=2).event())
                for _ in range(300):
                    await client.write_event(AudioChunk(rate=48000, width=2, channels=2, audio=chunk).event())
                stopped = loop.time()
                await client.write_event(AudioStop().event())
                events = await read_until(client, "transcript", timeout=1.0 + FALLBACK_GRACE + 10)
                after = loop.time() - stopped
            error = Error.from_event(events[-1])
            assert error.code == "flux-unavailable"
            assert after <= 1.0 + FALLBACK_GRACE + 1.0, f"answered {after:.2f} s after AudioStop"
            for _ in range(100):
                if not (server.connections or held_sockets(server.port) or held_sockets(frozen.port)):
                    break
                await asyncio.sleep(0.05)
            assert (server.connections, held_sockets(server.port), held_sockets(frozen.port)) == (0, [], [])
    finally:
        frozen.close()


async def test_a_fallback_announcing_a_huge_payload_is_refused_at_once_without_memory(
    fake_flux: FakeFlux, session_config: SessionConfig, caplog: pytest.LogCaptureFixture
) -> None:
    async with wyoming_peer("--huge-payload") as hostile, serving(session_config, hostile.uri, 4.0) as server:
        assert server.port is not None
        fake_flux.script.handshake_status = 503
        reset_peak_memory()
        before, _ = memory_mb()
        event, after = await one_command(server.port, load_wav(KITCHEN), pace=1e6)
        _, peak = memory_mb()
    assert Error.from_event(event).code == "flux-unavailable"
    assert peak - before < 100, f"{peak - before:.0f} MB taken by what the fallback sent"
    assert after is None or after < 4.0  # refused on the header, not at the fallback's timeout
    assert any("payload_length 4294967296 is over the limit" in r.getMessage() for r in caplog.records)
