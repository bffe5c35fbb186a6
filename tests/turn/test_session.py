"""The turn session against the fake Flux: who ends the command, what text comes back, and the bounds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import aiohttp
import numpy as np
import pytest

from tests.fake_flux import FakeFlux
from tests.helpers import chunks, fixture_text, load_wav, silence
from wyoming_flux.deepgram.models import DEEPGRAM_MODELS, MODEL_EN, MODEL_MULTI, MODEL_NOVA
from wyoming_flux.turn.session import (
    Ending,
    SessionConfig,
    TurnRequest,
    TurnResult,
    TurnSession,
)

KITCHEN = "turn_on_the_kitchen_light"


async def feed_paced(session: TurnSession, pcm: bytes, pace: float) -> int:
    """Feed 10 ms chunks at `pace` times real time until the session is decided; return bytes fed."""
    fed = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    for chunk in chunks(pcm):
        if session.done:
            break
        await asyncio.sleep(max(0.0, start + fed / 32000 / pace - loop.time()))
        session.feed(chunk, 16000, 2, 1)
        fed += len(chunk)
    return fed


async def command(
    config: SessionConfig, pcm: bytes, *, pace: float = 10.0, finish: bool = True,
    model: str = MODEL_EN, language: str | None = None, keyterms: tuple[str, ...] = (),
) -> tuple[TurnResult, int]:
    async with aiohttp.ClientSession() as http:
        session = TurnSession(http, config, TurnRequest(DEEPGRAM_MODELS[model], language, keyterms), 16000)
        session.start()
        try:
            fed = await feed_paced(session, pcm, pace)
            result = await (session.finish() if finish else session.wait())
        finally:
            await session.aclose()
    return result, fed


async def test_end_of_turn_ends_the_command_before_the_audio_does(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    pcm = load_wav(KITCHEN) + silence(5)
    result, fed = await command(session_config, pcm, finish=False)
    assert result.text == fixture_text(KITCHEN)
    assert (result.ended_by, result.trigger) == (Ending.END_OF_TURN, "model")
    assert fed < len(pcm) - 4 * 32000  # decided well inside the 5 s of silence
    stream = fake_flux.streams[0]
    assert json.loads(stream.client_messages[-1]) == {"type": "CloseStream"}  # the Flux stream was closed
    assert "ForceEndTurn" not in "".join(stream.client_messages)


def speech_ends(pcm: bytes, rms: float) -> int:
    """Bytes up to the end of the last 20 ms window a fake hears as speech (louder than `rms`)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    windows = samples[: len(samples) // 320 * 320].reshape(-1, 320)
    loud = np.flatnonzero(np.sqrt(np.mean(windows * windows, axis=1)) > rms)
    return int(loud[-1] + 1) * 320 * 2


@pytest.mark.parametrize("model", [MODEL_EN, MODEL_NOVA])
async def test_latency_counts_from_the_end_of_speech_not_from_the_last_new_words(
    session_config: SessionConfig, fake_flux: FakeFlux, model: str
) -> None:
    """All the words are heard well before the speaker stops (one per 0.1 s of speech): the latency is what
    the user waits after they stop speaking, found from the last word's end in the API's word timings."""
    fake_flux.script.word_seconds = 0.1
    pcm = load_wav(KITCHEN) + silence(3)
    speech_end = speech_ends(pcm, fake_flux.script.speech_rms)
    loop = asyncio.get_running_loop()
    stopped_speaking: float | None = None
    async with aiohttp.ClientSession() as http:
        session = TurnSession(http, session_config, TurnRequest(DEEPGRAM_MODELS[model]), 16000)
        session.start()
        try:
            start, fed = loop.time(), 0
            for chunk in chunks(pcm):  # real time, as a satellite streams
                if session.done:
                    break
                await asyncio.sleep(max(0.0, start + fed / 32000 - loop.time()))
                session.feed(chunk, 16000, 2, 1)
                fed += len(chunk)
                if stopped_speaking is None and fed >= speech_end:
                    stopped_speaking = loop.time()
            result = await session.wait()
            answered = loop.time()
        finally:
            await session.aclose()
    assert result.text == fixture_text(KITCHEN) and stopped_speaking is not None
    waited = answered - stopped_speaking
    assert result.speech_end_seconds is not None
    # Within one 80 ms frame (the arrival of the frame that holds the end) and the answer's own delivery.
    assert abs(result.speech_end_seconds - waited) < 0.15, (result.speech_end_seconds, waited)


async def test_frames_are_80ms_and_never_empty(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    await command(session_config, load_wav(KITCHEN) + silence(0.013))
    sizes = fake_flux.streams[0].frame_sizes
    assert set(sizes[:-1]) == {2560} and 0 < sizes[-1] <= 2560


async def test_audio_stopping_mid_speech_returns_the_forced_text(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    pcm = load_wav(KITCHEN)[: int(1.3 * 32000)]  # cut in the middle of "kitchen"
    result, _ = await command(session_config, pcm)
    assert result.ended_by is Ending.FORCED and result.trigger == "manual"
    assert result.text and fixture_text(KITCHEN).startswith(result.text)
    assert result.finalize_seconds is not None and result.finalize_seconds < 1.0
    messages = [json.loads(m)["type"] for m in fake_flux.streams[0].client_messages]
    assert messages == ["ForceEndTurn", "CloseStream"]


async def test_everything_uploaded_at_once_still_gets_the_full_text(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.handshake_delay = 0.3  # all audio arrives before the socket is up: none may be lost
    pcm = load_wav(KITCHEN) + silence(1)
    result, _ = await command(session_config, pcm, pace=1e9)
    assert result.text == fixture_text(KITCHEN)
    assert fake_flux.streams[0].audio_bytes == len(pcm)
    assert result.connect_seconds is not None and result.connect_seconds >= 0.3


@pytest.mark.parametrize("answer", ["warning", "nothing"])
async def test_silence_then_stop_answers_empty_text_promptly(
    session_config: SessionConfig, fake_flux: FakeFlux, answer: str
) -> None:
    fake_flux.script.no_turn_force_end = answer
    loop = asyncio.get_running_loop()
    started = loop.time()
    result, _ = await command(session_config, silence(1.0))
    assert (result.text, result.ended_by, result.error) == ("", Ending.FORCED, None)
    assert result.finalize_seconds is not None and result.finalize_seconds < 1.5
    assert loop.time() - started < 0.1 + 1.5  # 0.1 s of audio at 10x, then the answer


async def test_no_speech_bound(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    config = dataclasses.replace(session_config, no_speech_timeout=1.0)
    result, fed = await command(config, silence(6), finish=False)
    assert (result.text, result.ended_by) == ("", Ending.NO_SPEECH)
    assert fed < 3 * 32000


async def test_max_command_bound_stops_streaming_and_answers(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    config = dataclasses.replace(session_config, max_command_seconds=1.0)
    result, _ = await command(config, load_wav(KITCHEN) + silence(3), finish=False)
    assert result.ended_by is Ending.MAX_LENGTH
    assert result.text and fixture_text(KITCHEN).startswith(result.text)
    assert fake_flux.streams[0].audio_seconds <= 1.0 + 0.08  # nothing beyond the bound went to Flux


async def test_client_mode_keeps_listening_across_turns_and_joins_them(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.transcripts = ["what time is it", "set a timer for ten minutes"]
    config = dataclasses.replace(session_config, end_on_flux_eot=False)
    pcm = load_wav("what_time_is_it") + silence(1) + load_wav("set_a_timer")
    result, fed = await command(config, pcm)
    assert fed == len(pcm)
    assert result.text == "what time is it set a timer for ten minutes"
    assert result.ended_by is Ending.FORCED
    assert len(fake_flux.streams[0].events("EndOfTurn")) == 2


async def test_multi_model_sends_the_language_hint_and_reports_the_language(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.languages = ["de", "en"]
    result, _ = await command(session_config, load_wav(KITCHEN) + silence(2), model=MODEL_MULTI,
                              language="de-DE", keyterms=("Küche",), finish=False)
    assert result.language == "de"
    query = fake_flux.streams[0].query
    assert query["language_hint"] == ["de"] and query["keyterm"] == ["Küche"]


async def test_configured_thresholds_and_keyterms_reach_flux(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    config = dataclasses.replace(session_config, eot_threshold=0.8, eager_eot_threshold=0.5, eot_timeout_ms=2000,
                                 keyterms=("Kitchen Light",))
    result, _ = await command(config, load_wav(KITCHEN) + silence(2), keyterms=("kitchen light", "Hue"), finish=False)
    assert result.text == fixture_text(KITCHEN)
    query = fake_flux.streams[0].query
    assert (query["eot_threshold"], query["eager_eot_threshold"], query["eot_timeout_ms"]) == (["0.8"], ["0.5"], ["2000"])
    assert query["keyterm"] == ["Kitchen Light", "Hue"]  # configured first, duplicates dropped
    assert fake_flux.streams[0].events("EagerEndOfTurn")  # eager mode was on


async def test_partials_are_reported_as_the_turn_grows(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    seen: list[str] = []
    async with aiohttp.ClientSession() as http:
        session = TurnSession(http, session_config, TurnRequest(DEEPGRAM_MODELS[MODEL_EN]), 16000, on_partial=seen.append)
        session.start()
        await feed_paced(session, load_wav(KITCHEN) + silence(2), 10.0)
        result = await session.wait()
        await session.aclose()
    assert len(seen) >= 3 and seen[-1] == result.text
    assert all(len(a.split()) <= len(b.split()) for a, b in zip(seen, seen[1:]))
    assert result.first_text_seconds is not None


async def test_flux_errors_become_an_error_outcome(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    fake_flux.script.fatal_after = 0.5
    result, _ = await command(session_config, load_wav(KITCHEN), finish=False)
    assert result.ended_by is Ending.ERROR and result.error is not None
    assert result.error.code == "flux-stream" and "INTERNAL_SERVER_ERROR" in str(result.error)
    bad_key = dataclasses.replace(session_config, api_key="nope")
    result, _ = await command(bad_key, load_wav(KITCHEN), finish=False)
    assert result.error is not None and result.error.code == "flux-auth"


async def test_aclose_mid_command_closes_the_flux_stream(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    async with aiohttp.ClientSession() as http:
        session = TurnSession(http, session_config, TurnRequest(DEEPGRAM_MODELS[MODEL_EN]), 16000)
        session.start()
        await feed_paced(session, load_wav(KITCHEN)[:32000], 10.0)
        await asyncio.sleep(0.1)
        await session.aclose()
        result = await session.wait()
    assert (result.ended_by, result.text) == (Ending.CANCELLED, "")
    for _ in range(50):
        if fake_flux.streams[0].closed:
            break
        await asyncio.sleep(0.02)
    assert fake_flux.streams[0].closed


async def test_client_mode_upload_at_once_keeps_every_turn(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    """Earlier turns' EndOfTurn arrive after our ForceEndTurn was queued: they must not end the command."""
    fake_flux.script.transcripts = ["what time is it", "set a timer for ten minutes"]
    config = dataclasses.replace(session_config, end_on_flux_eot=False)
    pcm = load_wav("what_time_is_it") + silence(1) + load_wav("set_a_timer")
    result, _ = await command(config, pcm, pace=1e9)
    assert result.text == "what time is it set a timer for ten minutes"


async def test_an_endpoint_without_force_end_turn_loses_no_words_and_is_remembered(
    session_config: SessionConfig, fake_flux: FakeFlux
) -> None:
    fake_flux.script.force_end_supported = False
    config = dataclasses.replace(session_config, eot_timeout_ms=1000)
    pcm = load_wav(KITCHEN)[: int(1.3 * 32000)]  # the audio stops mid-speech: the turn must be ended by us
    first, _ = await command(config, pcm)
    assert first.degraded and first.text and fixture_text(KITCHEN).startswith(first.text)
    assert "force-end-unsupported" in first.notes and first.error is None
    second, _ = await command(config, pcm)  # now ended with trailing silence, then CloseStream
    assert not second.degraded and second.ended_by is Ending.FORCED
    assert second.text and fixture_text(KITCHEN).startswith(second.text)
    assert second.finalize_seconds is not None and second.finalize_seconds < 2.0
    assert second.trigger == "model"  # Flux's model ended the turn inside the silence...
    assert fake_flux.streams[1].audio_seconds < 1.3 + 1.0  # ...so the rest of it was never sent (nor billed)
    timeout_only = dataclasses.replace(config, eot_threshold=1.0)  # no model end of turn: the timeout must fire
    third, _ = await command(timeout_only, pcm)
    assert (third.trigger, third.degraded) == ("timeout", False)
    assert third.text and fixture_text(KITCHEN).startswith(third.text)
    assert third.finalize_seconds is not None and third.finalize_seconds < 2.0
    stream = fake_flux.streams[2]
    assert [json.loads(m)["type"] for m in stream.client_messages] == ["CloseStream"]
    assert stream.audio_seconds >= 1.3 + 1.0  # the silence covered Flux's eot_timeout


async def test_close_stream_answered_by_pending_updates_changes_nothing(
    session_config: SessionConfig, fake_flux: FakeFlux
) -> None:
    fake_flux.script.close_stream_delay = 0.3
    fake_flux.script.force_end_supported = False
    pcm = load_wav(KITCHEN)[: int(1.3 * 32000)]
    await command(session_config, pcm)  # learns the endpoint lacks ForceEndTurn
    result, _ = await command(session_config, pcm)
    assert not result.degraded and result.text and fixture_text(KITCHEN).startswith(result.text)


async def test_privacy_and_tags_reach_flux(session_config: SessionConfig, fake_flux: FakeFlux) -> None:
    config = dataclasses.replace(session_config, mip_opt_out=True, tags=("kitchen", "ha"))
    result, _ = await command(config, load_wav(KITCHEN) + silence(1))
    assert result.text == fixture_text(KITCHEN)
    query = fake_flux.streams[0].query
    assert query["mip_opt_out"] == ["true"] and query["tag"] == ["kitchen", "ha"]


@pytest.mark.parametrize(("model", "language"), [(MODEL_EN, None), (MODEL_NOVA, "pl")])
async def test_keyterms_in_a_script_without_spaces_cost_no_command(
    session_config: SessionConfig, fake_flux: FakeFlux, model: str, language: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A home named in Chinese: every name once counted as one token, so all of them went and Deepgram refused
    every command (it counts a token a character there, as the fake does)."""
    ten = "甲乙丙丁戊己庚辛壬癸"
    names = tuple(f"客厅{a}{b}号灯" for a in ten for b in ten)  # 600 characters
    config = dataclasses.replace(session_config, keyterms=names)
    result, _ = await command(config, load_wav(KITCHEN) + silence(1), model=model, language=language)
    assert (result.text, result.error) == (fixture_text(KITCHEN), None)
    assert fake_flux.handshakes == 1 and 0 < len(fake_flux.streams[0].query["keyterm"]) < len(names)
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


async def test_a_language_the_model_lacks_is_said_once_and_noted(
    session_config: SessionConfig, fake_flux: FakeFlux, caplog: pytest.LogCaptureFixture
) -> None:
    result, _ = await command(session_config, load_wav(KITCHEN) + silence(1), language="de")
    assert result.text == fixture_text(KITCHEN)
    assert any(note.startswith("language: flux-general-en does not support language de") for note in result.notes)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "does not support language de" in r.message]
    assert len(warnings) == 1
    assert "language_hint" not in fake_flux.streams[0].query


@pytest.mark.parametrize("answer", ["warning", "nothing"])
async def test_client_mode_ends_at_no_active_turn_quietly_with_the_ended_turns_text(
    session_config: SessionConfig, fake_flux: FakeFlux, caplog: pytest.LogCaptureFixture, answer: str
) -> None:
    """Flux answers our ForceEndTurn with "no active turn" (or, as it may, with nothing at all) after words that
    started no turn: the command is decided then, on the turn that ended, and that expected answer is not a
    warning."""
    fake_flux.script.no_turn_force_end = answer
    fake_flux.script.transcripts = ["what time is it"]
    fake_flux.script.words_after_eot = "uh huh"
    caplog.set_level(logging.DEBUG, "wyoming_flux")
    config = dataclasses.replace(session_config, end_on_flux_eot=False)
    result, _ = await command(config, load_wav("what_time_is_it") + silence(1), pace=1e9)
    assert any(m["transcript"] == "uh huh" for m in fake_flux.streams[0].events("Update"))  # the case at hand
    assert (result.text, result.ended_by, result.degraded) == ("what time is it", Ending.FORCED, False)
    assert result.finalize_seconds is not None and result.finalize_seconds < 1.0  # not the 2 s finalize bound
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
    fake_flux.script.words_after_eot = None
    caplog.clear()
    result, _ = await command(config, load_wav("what_time_is_it") + silence(1))  # the usual client-mode command
    assert result.text == "what time is it"
    assert ("FORCE_END_TURN_NO_ACTIVE_TURN" in caplog.text) == (answer == "warning")  # said, at debug level
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
