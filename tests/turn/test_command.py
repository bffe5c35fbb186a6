"""The one command runner both doors use (turn/command.py), tested once on its own: the fault matrix, the
fallback matrix, the language and format refusals, Deepgram skipped while down or by the door's choice. The
doors' suites (tests/server, tests/ha) keep what is theirs: Wyoming events, Home Assistant's pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fake_flux import FakeFlux
from tests.faults import BOUND_AFTER_AUDIO, FAULTS, Fault, check_outcome, heal
from tests.helpers import chunks, fixture_text, load_wav, silence
from wyoming_flux.deepgram.models import DEEPGRAM_MODELS, MODEL_EN, MODEL_MULTI, MODEL_NOVA
from wyoming_flux.turn.command import AUDIO_FORMAT, UNSUPPORTED_LANGUAGE, Command, CommandRefused, CommandSetup
from wyoming_flux.turn.command import Fallback
from wyoming_flux.turn.fallback import AudioBuffer, FallbackError, DeepgramHealth
from wyoming_flux.turn.request import TurnResult
from wyoming_flux.turn.session import SessionConfig
from wyoming_flux.turn.state import Ending

KITCHEN = "turn_on_the_kitchen_light"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def setup_for(config: SessionConfig, http: aiohttp.ClientSession, backend: str,
              health: DeepgramHealth | None = None) -> CommandSetup:
    models = (DEEPGRAM_MODELS[MODEL_EN],) if backend == "flux" else (DEEPGRAM_MODELS[MODEL_NOVA],)
    return CommandSetup(config, models, http, health)


async def run(command: Command, pcm: bytes, pace: float = 8.0) -> tuple[TurnResult, float | None]:
    """Feed the command at `pace` times real time until it is decided or the audio ends; the result and the
    seconds from the last audio to the answer (None when it came while audio was still flowing)."""
    loop = asyncio.get_running_loop()
    start, fed = loop.time(), 0
    for chunk in chunks(pcm):
        if command.decided:
            return await command.result(), None
        await asyncio.sleep(max(0.0, start + fed / 32000 / pace - loop.time()))
        command.feed(chunk)
        fed += len(chunk)
    ended = loop.time()
    result = await command.finish()
    return result, loop.time() - ended


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(fault: Fault, fake_flux: FakeFlux, session_config: SessionConfig, backend: str,
                     http: aiohttp.ClientSession) -> None:
    """Each fault on both APIs: the answer the fault table promises, within the bound; then a normal command."""
    setup = setup_for(session_config, http, backend)
    fault.arrange(fake_flux)
    if fault.refused:
        await fake_flux.stop()
    command = Command(setup, setup.request(None), 16000, 2, 1)
    try:
        result, after = await run(command, load_wav(KITCHEN) + silence(fault.silence_after))
    finally:
        await command.aclose()
    code = result.error.code if result.ended_by is Ending.ERROR and result.error else None
    check_outcome(fault, text=None if code else result.text, error_code=code, expected_text=fixture_text(KITCHEN))
    assert after is None or after <= BOUND_AFTER_AUDIO, f"answered {after:.2f} s after the last audio"
    await heal(fake_flux, fault)
    command = Command(setup, setup.request(None), 16000, 2, 1)
    try:
        result, _ = await run(command, load_wav(KITCHEN) + silence(1))
    finally:
        await command.aclose()
    assert result.text == fixture_text(KITCHEN)


class Replayer:
    """A fallback that hears the buffered audio and answers a fixed text, or fails."""

    def __init__(self, text: str = "from the fallback", fail: bool = False) -> None:
        self.text, self.fail, self.heard = text, fail, 0.0

    async def replay(self, buffer: AudioBuffer) -> tuple[str, str | None]:
        async for chunk in buffer.stream():
            self.heard += len(chunk.audio) / (chunk.rate * chunk.width * chunk.channels)
        if self.fail:
            raise FallbackError("the fallback failed on purpose")
        return self.text, "en"


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.outcome.startswith("error:") or f.outcome == "best"],
                         ids=lambda f: f.name)
async def test_fallback_matrix(fault: Fault, fake_flux: FakeFlux, session_config: SessionConfig, backend: str,
                               http: aiohttp.ClientSession) -> None:
    """Deepgram fails: the fallback answers from the whole buffered command (Deepgram's error stays for the
    owner). A fault Deepgram rides out (its full text, not degraded: a slow server that still ends the turn)
    needs no fallback."""
    setup = setup_for(session_config, http, backend, DeepgramHealth())
    fault.arrange(fake_flux)
    if fault.refused:
        await fake_flux.stop()
    replayer = Replayer()
    pcm = load_wav(KITCHEN) + silence(fault.silence_after)
    command = Command(setup, setup.request(None), 16000, 2, 1, fallback=Fallback(replayer.replay, 4.0))
    try:
        result, _ = await run(command, pcm)
    finally:
        await command.aclose()
        await heal(fake_flux, fault)
    if not result.fallback:
        assert fault.outcome == "best" and not result.degraded and result.text == fixture_text(KITCHEN)
        return
    assert (result.text, result.ended_by) == ("from the fallback", Ending.FALLBACK)
    assert replayer.heard == pytest.approx(len(pcm) / 32000, abs=0.02)  # the whole command, nothing lost


async def test_a_failing_fallback_leaves_deepgrams_error_with_both_reasons(
        fake_flux: FakeFlux, session_config: SessionConfig, http: aiohttp.ClientSession) -> None:
    fake_flux.script.handshake_status = 500
    setup = setup_for(session_config, http, "flux", DeepgramHealth())
    command = Command(setup, setup.request(None), 16000, 2, 1, fallback=Fallback(Replayer(fail=True).replay, 2.0))
    try:
        result, _ = await run(command, load_wav(KITCHEN))
    finally:
        await command.aclose()
    assert result.ended_by is Ending.ERROR and result.error is not None
    assert result.error.code == "flux-unavailable" and "the fallback failed" in str(result.error)


async def test_while_deepgram_is_down_commands_go_straight_to_the_fallback(
        fake_flux: FakeFlux, session_config: SessionConfig, http: aiohttp.ClientSession) -> None:
    fake_flux.script.handshake_status = 503
    setup = setup_for(session_config, http, "flux", DeepgramHealth(first_backoff=60.0))
    for attempt in range(2):
        handshakes = fake_flux.handshakes
        command = Command(setup, setup.request(None), 16000, 2, 1, fallback=Fallback(Replayer().replay, 2.0))
        try:
            result, _ = await run(command, load_wav(KITCHEN))
        finally:
            await command.aclose()
        assert result.fallback
        # the first command tried Deepgram; the second skipped it: no handshake at all
        assert fake_flux.handshakes == handshakes + (0 if attempt else 1)


async def test_a_door_may_skip_deepgram_when_it_has_a_fallback(
        fake_flux: FakeFlux, session_config: SessionConfig, http: aiohttp.ClientSession) -> None:
    setup = setup_for(session_config, http, "flux", DeepgramHealth())
    command = Command(setup, setup.request(None), 16000, 2, 1, fallback=Fallback(Replayer().replay, 2.0),
                      skip_deepgram=True)
    try:
        result, _ = await run(command, load_wav(KITCHEN))
    finally:
        await command.aclose()
    assert result.fallback and not fake_flux.streams


@pytest.mark.parametrize(("models", "language", "served"), [
    ((MODEL_EN,), "en-GB", MODEL_EN),
    ((MODEL_EN, MODEL_NOVA), "pl", MODEL_NOVA),
    ((MODEL_EN, MODEL_MULTI, MODEL_NOVA), "de-AT", MODEL_MULTI),
    ((MODEL_EN,), "pl", None),
    ((MODEL_EN, MODEL_NOVA), "tlh", None),  # Klingon: Deepgram has no model for it
])
async def test_the_language_picks_the_model_or_the_command_is_refused(
        session_config: SessionConfig, http: aiohttp.ClientSession, models: tuple[str, ...], language: str,
        served: str | None) -> None:
    setup = CommandSetup(session_config, tuple(DEEPGRAM_MODELS[m] for m in models), http)
    if served is None:
        with pytest.raises(CommandRefused) as refused:
            setup.request(language)
        assert refused.value.code == UNSUPPORTED_LANGUAGE and language in str(refused.value)
    else:
        assert setup.request(language).model.name == served


@pytest.mark.parametrize(("rate", "width", "channels"), [(16000, 5, 1), (0, 2, 1), (16000, 2, 0), (12345678, 2, 1)])
async def test_audio_the_session_cannot_convert_is_refused_before_anything_is_sent(
        fake_flux: FakeFlux, session_config: SessionConfig, http: aiohttp.ClientSession, rate: int, width: int,
        channels: int) -> None:
    setup = setup_for(session_config, http, "flux")
    with pytest.raises(CommandRefused) as refused:
        Command(setup, setup.request(None), rate, width, channels)
    assert refused.value.code == AUDIO_FORMAT and not fake_flux.streams


async def test_a_chunk_in_a_format_the_session_cannot_convert_ends_the_command(
        fake_flux: FakeFlux, session_config: SessionConfig, http: aiohttp.ClientSession) -> None:
    setup = setup_for(session_config, http, "flux", DeepgramHealth())
    replayer = Replayer()
    command = Command(setup, setup.request(None), 16000, 2, 1, fallback=Fallback(replayer.replay, 2.0))
    try:
        command.feed(load_wav(KITCHEN)[:3200])
        with pytest.raises(CommandRefused) as refused:
            command.feed(b"\0" * 300, 16000, 5, 1)
        assert refused.value.code == AUDIO_FORMAT
    finally:
        command.abandon()
        await command.aclose()
    assert replayer.heard == 0.0  # nothing half-heard is replayed


def test_both_doors_build_their_settings_in_one_place() -> None:
    """The CLI's flags and the integration's options become a SessionConfig by field name: strings and lists
    are converted, empty values keep the defaults, unknown names are ignored."""
    config = SessionConfig.from_values("wss://h/v2/listen", "k", {
        "eot_threshold": "0.8", "eager_eot_threshold": "", "eot_timeout_ms": 3000.0, "keyterms": ["Kitchen"],
        "max_command_seconds": 12, "mip_opt_out": 1, "endpointing_ms": None, "early_answer": False,
        "model": "flux-general-en", "uri": "tcp://0.0.0.0:10300"})
    assert config == SessionConfig(url="wss://h/v2/listen", api_key="k", eot_threshold=0.8, eot_timeout_ms=3000,
                                   keyterms=("Kitchen",), max_command_seconds=12.0, mip_opt_out=True,
                                   early_answer=False)
    assert isinstance(config.eot_timeout_ms, int) and isinstance(config.max_command_seconds, float)
