"""The fault matrix against the Wyoming server: a coded Error or the best text, within the bound, then recovery."""

from __future__ import annotations

import dataclasses
import logging

import aiohttp
import pytest
from wyoming.asr import Transcript
from wyoming.error import Error

from tests.conftest import make_settings
from tests.fake_flux import FakeFlux
from tests.faults import BOUND_AFTER_AUDIO, FAULTS, Fault, check_outcome, heal
from tests.helpers import fixture_text, load_wav, silence
from tests.wyoming_io import one_command
from wyoming_flux.deepgram.flux import DeepgramUnavailableError, FluxOptions, connect_flux
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.session import SessionConfig

KITCHEN = "turn_on_the_kitchen_light"




@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(fault: Fault, fake_flux: FakeFlux, session_config: SessionConfig, backend: str,
                     caplog: pytest.LogCaptureFixture) -> None:
    """Each fault on Flux (/v2/listen) and on Nova-3 (/v1/listen), which the same fake serves: its answer, and
    no traceback in the log, even at debug."""
    caplog.set_level(logging.DEBUG, "wyoming_flux")
    server = WyomingServer(make_settings(session_config), "tcp://127.0.0.1:0")
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
    assert not [r.getMessage() for r in caplog.records if r.exc_info]


class _FailingResolver(aiohttp.abc.AbstractResolver):
    """Fails like getaddrinfo does for an unknown name (without sending a DNS query from the test)."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[aiohttp.abc.ResolveResult]:
        raise OSError(-2, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_dns_failure_is_flux_unavailable() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_FailingResolver())) as http:
        with pytest.raises(DeepgramUnavailableError, match="cannot reach Flux: flux.example:443"):
            await connect_flux(http, "wss://flux.example/v2/listen", "key", FluxOptions(model="flux-general-en"))


async def test_no_audio_beyond_the_max_command_bound_whatever_the_client_does(
    fake_flux: FakeFlux, session_config: SessionConfig
) -> None:
    config = dataclasses.replace(session_config, max_command_seconds=2.0)
    fake_flux.script.no_eot = True
    server = WyomingServer(make_settings(config), "tcp://127.0.0.1:0")
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
    server = WyomingServer(make_settings(session_config), "tcp://127.0.0.1:0")
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
