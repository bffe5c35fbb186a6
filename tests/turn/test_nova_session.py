"""The turn session on Nova-3 (/v1/listen) against the fake's Nova side: the same bounds and answers as Flux,
with the end of the command from Deepgram's endpointing (speech_final), UtteranceEnd, or Finalize."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest

from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, load_wav, silence
from tests.turn.test_session import feed_paced
from wyoming_flux.deepgram.models import DEEPGRAM_MODELS, MODEL_NOVA
from wyoming_flux.turn.session import Ending, SessionConfig, TurnRequest, TurnResult, TurnSession

POLISH = "pl_wlacz_swiatlo_w_kuchni"
PAUSED = "set_a_timer_pause"


async def nova_command(config: SessionConfig, pcm: bytes, *, pace: float = 10.0, finish: bool = True,
                       language: str | None = "pl", partials: list[str] | None = None) -> tuple[TurnResult, int]:
    async with aiohttp.ClientSession() as http:
        session = TurnSession(http, config, TurnRequest(DEEPGRAM_MODELS[MODEL_NOVA], language), 16000,
                              on_partial=None if partials is None else partials.append)
        session.start()
        try:
            fed = await feed_paced(session, pcm, pace)
            result = await (session.finish() if finish else session.wait())
        finally:
            await session.aclose()
    return result, fed


@pytest.fixture
def polish(fake_flux: FakeFlux) -> FakeFlux:
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    return fake_flux


async def test_speech_final_ends_the_command_while_audio_still_streams(session_config: SessionConfig,
                                                                        polish: FakeFlux) -> None:
    pcm = load_wav(POLISH) + silence(5)
    partials: list[str] = []
    result, fed = await nova_command(session_config, pcm, finish=False, partials=partials)
    assert result.text == fixture_text(POLISH)
    assert (result.ended_by, result.trigger) == (Ending.END_OF_TURN, "speech_final")
    assert fed < len(pcm) - 4 * 32000  # decided well inside the 5 s of silence
    assert partials and partials[-1] == result.text  # interim results came through as partials
    stream = polish.streams[-1]
    query = {k: v[0] for k, v in stream.query.items()}
    assert stream.query["model"] == ["nova-3"] and query["language"] == "pl"
    assert {query["interim_results"], query["vad_events"], query["smart_format"]} == {"true"}
    assert (query["endpointing"], query["utterance_end_ms"], query["encoding"]) == ("500", "1000", "linear16")


async def test_audio_stop_before_the_endpoint_gets_the_whole_text_by_finalize(session_config: SessionConfig,
                                                                              polish: FakeFlux) -> None:
    pcm = load_wav(POLISH)[: int(2.2 * 32000)]  # speech ends at 2.12 s: no 0.5 s of silence for the endpoint
    result, _ = await nova_command(session_config, pcm, pace=1e6)
    assert result.text == fixture_text(POLISH)
    assert result.ended_by is Ending.FORCED and not result.degraded
    assert result.finalize_seconds is not None and result.finalize_seconds < 1.5
    sent = polish.streams[-1].client_messages
    assert sent[:2] == ['{"type":"Finalize"}', '{"type":"CloseStream"}']
    assert any(m.get("from_finalize") for m in polish.streams[-1].sent)


async def test_finalize_answered_in_several_results_gets_all_of_them(session_config: SessionConfig,
                                                                    polish: FakeFlux) -> None:
    polish.script.finalize_results = 2  # the buffered words come back in two from_finalize results
    result, _ = await nova_command(session_config, load_wav(POLISH)[: int(2.2 * 32000)], pace=1e6)
    assert sum(1 for m in polish.streams[-1].sent if m.get("from_finalize")) == 2
    assert (result.text, result.ended_by, result.degraded) == (fixture_text(POLISH), Ending.FORCED, False)
    assert result.finalize_seconds is not None and result.finalize_seconds < 1.5


async def test_finalize_with_nothing_buffered_answers_the_text_heard(session_config: SessionConfig,
                                                                      polish: FakeFlux) -> None:
    polish.script.ignore_force_end = True  # Finalize is answered with nothing at all
    pcm = load_wav(POLISH)[: int(2.2 * 32000)]
    result, _ = await nova_command(session_config, pcm, pace=1e6)
    assert result.ended_by is Ending.FORCED and result.text  # CloseStream's Metadata: nothing more will come
    assert not any(m.get("from_finalize") for m in polish.streams[-1].sent)
    assert polish.streams[-1].sent[-1]["type"] == "Metadata"


async def test_utterance_end_ends_the_command_when_speech_final_never_comes(session_config: SessionConfig,
                                                                             polish: FakeFlux) -> None:
    polish.script.nova_mode = "no_speech_final"
    pcm = load_wav(POLISH) + silence(6)
    result, fed = await nova_command(session_config, pcm, finish=False)
    assert (result.text, result.ended_by, result.trigger) == (fixture_text(POLISH), Ending.END_OF_TURN,
                                                               "utterance_end")
    assert fed < len(pcm) - 3 * 32000


async def test_an_empty_speech_final_ends_the_command_with_the_settled_text(session_config: SessionConfig,
                                                                             polish: FakeFlux) -> None:
    polish.script.nova_mode = "empty_speech_final"
    result, _ = await nova_command(session_config, load_wav(POLISH) + silence(5), finish=False)
    assert (result.text, result.trigger) == (fixture_text(POLISH), "speech_final")


@pytest.mark.parametrize("fixture", [PAUSED, "pl_ustaw_minutnik_pauza"])
async def test_a_mid_command_pause_is_not_the_end_with_the_default_endpointing(
        session_config: SessionConfig, fake_flux: FakeFlux, fixture: str) -> None:
    fake_flux.script.transcripts = [fixture_text(fixture)]  # a 0.4 s pause between the two halves
    result, _ = await nova_command(session_config, load_wav(fixture) + silence(3), finish=False,
                                   language=fixture[:2] if fixture[2] == "_" else "en")
    assert result.text == fixture_text(fixture)
    assert sum(1 for m in fake_flux.streams[-1].sent if m.get("speech_final")) == 1


async def test_a_short_endpointing_cuts_a_command_at_its_pause(session_config: SessionConfig,
                                                               fake_flux: FakeFlux) -> None:
    """Why the default is not lower: 300 ms, the bottom of Deepgram's range for speakers who pause, ends this
    command at its 0.4 s pause."""
    fake_flux.script.transcripts = [fixture_text(PAUSED)]
    config = SessionConfig(url=session_config.url, api_key=session_config.api_key, endpointing_ms=300)
    result, _ = await nova_command(config, load_wav(PAUSED) + silence(3), finish=False, language="en")
    assert result.ended_by is Ending.END_OF_TURN and result.text != fixture_text(PAUSED)


async def test_no_speech_ends_with_empty_text(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    config = SessionConfig(url=session_config.url, api_key=session_config.api_key, no_speech_timeout=1.0)
    result, _ = await nova_command(config, silence(4), finish=False)
    assert (result.ended_by, result.text) == (Ending.NO_SPEECH, "")


async def test_max_command_length_asks_for_the_final_text(session_config: SessionConfig, polish: FakeFlux) -> None:
    config = SessionConfig(url=session_config.url, api_key=session_config.api_key, max_command_seconds=5)
    polish.script.speech_rms = -1  # every window is "speech": someone who never stops talking
    polish.script.transcripts = [" ".join(["słowo"] * 40)]  # new words all the way
    result, fed = await nova_command(config, load_wav(POLISH) * 4, finish=False)
    assert result.ended_by is Ending.MAX_LENGTH and result.text
    assert polish.streams[-1].audio_seconds <= 5.1


async def test_a_stream_closed_with_1011_answers_the_words_heard(session_config: SessionConfig,
                                                                 polish: FakeFlux) -> None:
    polish.script.fatal_after = 1.6  # close 1011 NET-0000 mid-command
    result, _ = await nova_command(session_config, load_wav(POLISH) + silence(2), finish=False)
    assert result.degraded and result.text and fixture_text(POLISH).startswith(result.text)


async def test_a_stream_closed_before_any_words_is_the_tables_error(session_config: SessionConfig,
                                                                    polish: FakeFlux) -> None:
    polish.script.fatal_after = 0.2
    result, _ = await nova_command(session_config, load_wav(POLISH), finish=False)
    assert result.ended_by is Ending.ERROR and result.error is not None and result.error.code == "flux-stream"


@pytest.mark.parametrize("keep_alive", [0.3, 60.0])
async def test_a_pause_in_the_clients_audio_keeps_the_stream_open_with_keep_alive(
        session_config: SessionConfig, polish: FakeFlux, keep_alive: float) -> None:
    """Deepgram closes a /v1 stream that gets neither audio nor a text message within its timeout (10 s; the
    fake's is 0.8 s here); a client whose audio stalls for longer must not lose its command."""
    polish.script.idle_close_after = 0.8
    config = dataclasses.replace(session_config, keep_alive_seconds=keep_alive)
    pcm = load_wav(POLISH) + silence(3)
    async with aiohttp.ClientSession() as http:
        session = TurnSession(http, config, TurnRequest(DEEPGRAM_MODELS[MODEL_NOVA], "pl"), 16000)
        session.start()
        try:
            await feed_paced(session, pcm[:32000], 10)  # one second of speech, then nothing for 2 s
            await asyncio.sleep(2.0)
            await feed_paced(session, pcm[32000:], 10)
            result = await session.wait()
        finally:
            await session.aclose()
    keep_alives = polish.streams[-1].client_messages.count('{"type":"KeepAlive"}')
    if keep_alive < 1:
        assert (result.text, result.ended_by, result.degraded) == (fixture_text(POLISH), Ending.END_OF_TURN, False)
        assert 2 <= keep_alives <= 10  # one every 0.3 s of the 2 s pause, none while audio flowed
    else:  # without them the stream is closed, and its close reason read as the idle timeout it is
        assert keep_alives == 0 and result.ended_by is Ending.ERROR and result.error is not None
        assert result.error.code == "flux-idle-timeout" and "dpgr.am/net0001" in str(result.error)


async def test_a_silent_stream_ends_within_the_finalize_bound(session_config: SessionConfig, polish: FakeFlux) -> None:
    polish.script.silent_after = 1.0  # results stop; Finalize and CloseStream get no answer
    polish.script.close_stream_delay = 10
    result, _ = await nova_command(session_config, load_wav(POLISH)[: int(2.2 * 32000)], pace=1e6)
    assert result.ended_by in (Ending.FORCED, Ending.ERROR)
    assert result.elapsed_seconds < 2.0 + 1.5
