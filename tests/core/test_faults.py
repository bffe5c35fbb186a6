"""The fault matrix against the Wyoming server: a coded Error or the best text, within the bound, then recovery."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event

from tests.conftest import make_settings
from tests.core.test_server import audio_events
from tests.fake_flux import FakeFlux
from tests.faults import BOUND_AFTER_AUDIO, FAULTS, Fault, check_outcome, heal
from tests.helpers import fixture_text, load_wav, silence
from wyoming_flux.flux import FluxUnavailableError, StreamOptions, connect
from wyoming_flux.server import FluxServer
from wyoming_flux.session import SessionConfig

KITCHEN = "turn_on_the_kitchen_light"


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


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(fault: Fault, fake_flux: FakeFlux, session_config: SessionConfig) -> None:
    server = FluxServer(make_settings(session_config), "tcp://127.0.0.1:0")
    await server.start()
    try:
        assert server.port is not None
        fault.arrange(fake_flux)
        if fault.refused:
            await fake_flux.stop()
        event, after = await one_command(server.port, load_wav(KITCHEN) + silence(fault.silence_after))
        if Error.is_type(event.type):
            error = Error.from_event(event)
            assert error.text and error.code
            text, code = None, error.code
        else:
            text, code = Transcript.from_event(event).text, None
        check_outcome(fault, text=text, error_code=code, expected_text=fixture_text(KITCHEN))
        assert after is None or after <= BOUND_AFTER_AUDIO, f"answered {after:.2f} s after the last audio"
        # The same server then serves a normal command.
        await heal(fake_flux, fault)
        event, _ = await one_command(server.port, load_wav(KITCHEN) + silence(1))
        assert Transcript.from_event(event).text == fixture_text(KITCHEN)
    finally:
        await server.stop()


class _FailingResolver(aiohttp.abc.AbstractResolver):
    """Fails like getaddrinfo does for an unknown name (without sending a DNS query from the test)."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[aiohttp.abc.ResolveResult]:
        raise OSError(-2, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_dns_failure_is_flux_unavailable() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_FailingResolver())) as http:
        with pytest.raises(FluxUnavailableError, match="cannot reach Flux: flux.example:443"):
            await connect(http, "wss://flux.example/v2/listen", "key", StreamOptions(model="flux-general-en"))


async def test_no_audio_beyond_the_max_command_bound_whatever_the_client_does(
    fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    config = dataclasses.replace(session_config, max_command_seconds=2.0)
    fake_flux.script.no_eot = True
    server = FluxServer(make_settings(config), "tcp://127.0.0.1:0")
    await server.start()
    try:
        assert server.port is not None
        speech = load_wav(KITCHEN)
        event, _ = await one_command(server.port, speech * 10, pace=1e6)  # 27 s uploaded as fast as possible
        assert Transcript.from_event(event).text
        assert fake_flux.streams[0].audio_seconds <= 2.0 + 0.08
    finally:
        await server.stop()


async def test_the_transcript_does_not_wait_for_the_flux_stream_to_close(
    fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    fake_flux.script.close_stream_delay = 5.0  # CloseStream answered by Updates, then a slow close
    server = FluxServer(make_settings(session_config), "tcp://127.0.0.1:0")
    await server.start()
    try:
        assert server.port is not None
        for pcm in (load_wav(KITCHEN) + silence(1), load_wav(KITCHEN)[: int(1.3 * 32000)]):  # EndOfTurn; AudioStop
            streams = len(fake_flux.streams)
            event, _ = await one_command(server.port, pcm)
            assert Transcript.from_event(event).text
            assert not fake_flux.streams[streams].closed  # answered before the close round trip
    finally:
        await server.stop()
