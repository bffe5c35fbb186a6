"""Early answers: a command whose words are complete ends at the first sign that the speaker stopped (Flux's
EagerEndOfTurn, a short Nova-3 endpoint); unfinished words wait for the usual end; without a check, or when it
cannot answer, a command ends exactly as before. The check here is a table of sentences (the doors' real
checks, Home Assistant's recogniser, are tested in tests/ha and tests/server)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.fake_flux import FakeFlux
from tests.helpers import fixture_text, load_wav, silence
from tests.turn.test_session import feed_paced
from wyoming_flux.deepgram.models import DEEPGRAM_MODELS, MODEL_EN, MODEL_NOVA
from wyoming_flux.turn.completion import EARLY_TRIGGER, CachedCompletion, complete_from_debug
from wyoming_flux.turn.session import Ending, SessionConfig, TurnRequest, TurnResult, TurnSession

KITCHEN = "turn_on_the_kitchen_light"
PAUSED = "set_a_timer_pause"  # "set a timer" + 0.4 s + "for five minutes"
POLISH_PAUSED = "pl_ustaw_minutnik_pauza"  # "ustaw minutnik" + 0.4 s + "na dziesięć minut"
SPEECH_END = {KITCHEN: 1.45}  # seconds of audio before the trailing 0.5 s of silence (approximately)


class Sentences:
    """A completion check that knows some sentences: True/False for those, None (don't know) for others."""

    def __init__(self, known: dict[str, bool], *, ready: bool = True, delay: float = 0.0) -> None:
        self.known, self._ready, self.delay = known, ready, delay
        self.asked: list[tuple[str, str | None]] = []

    def ready(self) -> bool:
        return self._ready

    async def complete(self, text: str, language: str | None) -> bool | None:
        self.asked.append((text, language))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.known.get(text)


async def run(config: SessionConfig, pcm: bytes, check: Sentences | None, *, model: str = MODEL_EN,
              language: str | None = None, pace: float = 4.0) -> tuple[TurnResult, int, list[int]]:
    resumed: list[int] = []
    async with aiohttp.ClientSession() as http:
        session = TurnSession(http, config, TurnRequest(DEEPGRAM_MODELS[model], language), 16000, completion=check,
                              on_resumed=lambda: resumed.append(1))
        session.start()
        try:
            fed = await feed_paced(session, pcm, pace)
            result = await session.finish()
        finally:
            await session.aclose()
    return result, fed, resumed


@pytest.fixture
def late_flux(fake_flux: FakeFlux) -> FakeFlux:
    """Flux whose EagerEndOfTurn comes 0.2 s and EndOfTurn 0.8 s after speech ends."""
    fake_flux.script.eager_silence, fake_flux.script.eot_silence = 0.2, 0.8
    return fake_flux


async def test_flux_answers_a_complete_command_at_eager_end_of_turn(session_config: SessionConfig,
                                                                   late_flux: FakeFlux) -> None:
    text = fixture_text(KITCHEN)
    late_flux.script.transcripts = [text]
    check = Sentences({text: True})
    result, fed, _ = await run(session_config, load_wav(KITCHEN) + silence(3), check)
    assert (result.text, result.ended_by, result.trigger) == (text, Ending.END_OF_TURN, EARLY_TRIGGER)
    stream = late_flux.streams[-1]
    assert stream.query["eager_eot_threshold"] == ["0.5"]  # asked for, at the documented default
    assert not stream.events("EndOfTurn") or stream.sent.index(stream.events("EndOfTurn")[0]) > 0
    # answered about 0.2 s into the silence, well before Flux's own end at 0.8 s
    assert fed / 32000 < SPEECH_END[KITCHEN] + 0.5 + 0.6
    assert check.asked == [(text, None)]


async def test_flux_keeps_waiting_for_end_of_turn_when_the_words_are_not_complete(
        session_config: SessionConfig, late_flux: FakeFlux) -> None:
    text = fixture_text(KITCHEN)
    late_flux.script.transcripts = [text]
    result, _, _ = await run(session_config, load_wav(KITCHEN) + silence(3), Sentences({text: False}))
    assert (result.text, result.ended_by, result.trigger) == (text, Ending.END_OF_TURN, "model")


async def test_flux_paused_command_comes_back_whole(session_config: SessionConfig, late_flux: FakeFlux) -> None:
    late_flux.script.transcripts = ["set a timer | for five minutes"]
    check = Sentences({"set a timer": False, "set a timer for five minutes": True})
    result, _, resumed = await run(session_config, load_wav(PAUSED) + silence(3), check)
    assert (result.text, result.trigger) == ("set a timer for five minutes", EARLY_TRIGGER)
    assert ("set a timer", None) in check.asked  # asked at the pause, and told to wait
    assert late_flux.streams[-1].events("TurnResumed")  # Flux saw the speaker go on
    assert not resumed  # ... before the answer: nothing was cut


async def test_without_a_check_flux_is_not_asked_for_eager_events(session_config: SessionConfig,
                                                                 late_flux: FakeFlux) -> None:
    late_flux.script.transcripts = [fixture_text(KITCHEN)]
    result, _, _ = await run(session_config, load_wav(KITCHEN) + silence(2), None)
    assert result.trigger == "model"
    assert "eager_eot_threshold" not in late_flux.streams[-1].query


async def test_switched_off_the_check_is_never_asked(session_config: SessionConfig, late_flux: FakeFlux) -> None:
    from dataclasses import replace

    text = fixture_text(KITCHEN)
    late_flux.script.transcripts = [text]
    check = Sentences({text: True})
    result, _, _ = await run(replace(session_config, early_answer=False), load_wav(KITCHEN) + silence(2), check)
    assert result.trigger == "model" and not check.asked
    assert "eager_eot_threshold" not in late_flux.streams[-1].query


@pytest.mark.parametrize("model", [MODEL_EN, MODEL_NOVA])
async def test_with_the_clients_end_of_speech_the_check_is_never_asked(session_config: SessionConfig,
                                                                       late_flux: FakeFlux, model: str) -> None:
    from dataclasses import replace

    text = fixture_text(KITCHEN)
    late_flux.script.transcripts = [text]
    check = Sentences({text: True})
    result, _, _ = await run(replace(session_config, end_on_flux_eot=False), load_wav(KITCHEN) + silence(1), check,
                             model=model, language="en")
    assert result.text == text and result.trigger != EARLY_TRIGGER and not check.asked
    query = late_flux.streams[-1].query
    assert "eager_eot_threshold" not in query and query.get("endpointing", ["500"]) == ["500"]


async def test_a_check_that_does_not_know_leaves_flux_to_end_the_turn(session_config: SessionConfig,
                                                                     late_flux: FakeFlux) -> None:
    late_flux.script.transcripts = [fixture_text(KITCHEN)]
    result, _, _ = await run(session_config, load_wav(KITCHEN) + silence(3), Sentences({}, ready=False))
    assert result.trigger == "model"


async def test_words_the_check_cannot_judge_leave_flux_to_end_the_turn(session_config: SessionConfig,
                                                                       late_flux: FakeFlux) -> None:
    # The check is ready but does not know these words (a language it has no sentences for, a late answer):
    # Flux's own EndOfTurn ends the command, not a Nova-3 endpointing wait started at the EagerEndOfTurn.
    text = fixture_text(KITCHEN)
    late_flux.script.transcripts = [text]
    check = Sentences({})
    # Real time: the watchdog that would end a Nova-3 wait ticks on the wall clock.
    result, _, _ = await run(session_config, load_wav(KITCHEN) + silence(3), check, pace=1.0)
    assert (result.text, result.trigger) == (text, "model")
    assert check.asked == [(text, None)]


@pytest.mark.parametrize("known", [{}, {"set a timer": False}], ids=["unknown", "incomplete"])
async def test_flux_words_the_check_does_not_end_wait_for_flux_end_of_turn(
        session_config: SessionConfig, late_flux: FakeFlux, known: dict[str, bool]) -> None:
    # Not ended early: Flux's own EndOfTurn ends it, never a Nova-3 style endpoint timer.
    late_flux.script.transcripts = ["set a timer | for five minutes"]
    late_flux.script.eager_silence, late_flux.script.eot_silence = 0.2, 1.2  # the pause: EagerEndOfTurn only
    result, _, _ = await run(session_config, load_wav(PAUSED) + silence(3), Sentences(known))
    assert (result.text, result.trigger) == ("set a timer for five minutes", "model")


async def test_nova_answers_a_complete_command_at_a_short_pause(session_config: SessionConfig,
                                                               fake_flux: FakeFlux) -> None:
    text = fixture_text("pl_wlacz_swiatlo_w_kuchni")
    fake_flux.script.transcripts = [text]
    check = Sentences({text: True})
    result, _, _ = await run(session_config, load_wav("pl_wlacz_swiatlo_w_kuchni") + silence(3), check,
                             model=MODEL_NOVA, language="pl")
    assert (result.text, result.trigger) == (text, EARLY_TRIGGER)
    assert fake_flux.streams[-1].query["endpointing"] == ["200"]
    assert check.asked == [(text, "pl")]


@pytest.mark.parametrize(("fixture", "first", "transcript"), [
    (PAUSED, "set a timer", "set a timer | for five minutes"),
    (POLISH_PAUSED, "ustaw minutnik", "ustaw minutnik | na dziesięć minut"),
])
async def test_nova_paused_command_comes_back_whole(session_config: SessionConfig, fake_flux: FakeFlux,
                                                     fixture: str, first: str, transcript: str) -> None:
    fake_flux.script.transcripts = [transcript]
    whole = fixture_text(fixture)
    check = Sentences({first: False, whole: True})
    result, _, _ = await run(session_config, load_wav(fixture) + silence(3), check, model=MODEL_NOVA,
                             language="pl" if fixture == POLISH_PAUSED else "en")
    assert (result.text, result.trigger) == (whole, EARLY_TRIGGER)
    assert check.asked[0][0] == first


async def test_nova_without_a_ready_check_uses_the_configured_endpointing(session_config: SessionConfig,
                                                                          fake_flux: FakeFlux) -> None:
    text = fixture_text("pl_wlacz_swiatlo_w_kuchni")
    fake_flux.script.transcripts = [text]
    check = Sentences({text: True}, ready=False)
    result, _, _ = await run(session_config, load_wav("pl_wlacz_swiatlo_w_kuchni") + silence(3), check,
                             model=MODEL_NOVA, language="pl")
    assert result.trigger == "speech_final" and not check.asked
    assert fake_flux.streams[-1].query["endpointing"] == ["500"]


async def test_nova_words_nobody_can_judge_wait_out_the_configured_endpointing(session_config: SessionConfig,
                                                                               fake_flux: FakeFlux) -> None:
    text = fixture_text("pl_wlacz_swiatlo_w_kuchni")
    fake_flux.script.transcripts = [text]
    result, fed, _ = await run(session_config, load_wav("pl_wlacz_swiatlo_w_kuchni") + silence(3), Sentences({}),
                               model=MODEL_NOVA, language="pl")
    assert (result.text, result.trigger) == (text, "speech_final")


async def test_flux_speaker_going_on_after_an_early_answer_is_counted(session_config: SessionConfig,
                                                                      late_flux: FakeFlux) -> None:
    # Flux reports 0.3 s of audio late: when it says EagerEndOfTurn at the pause, audio of the speaker going on
    # has already reached it, and its TurnResumed comes while the stream drains after the answer.
    late_flux.script.transcripts = ["set a timer | for five minutes"]
    late_flux.script.report_lag = 0.3
    check = Sentences({"set a timer": True})
    result, _, resumed = await run(session_config, load_wav(PAUSED) + silence(2), check)
    assert (result.text, result.trigger) == ("set a timer", EARLY_TRIGGER)
    assert resumed == [1]


async def test_cached_completion_is_bounded_cached_and_never_raises() -> None:
    calls: list[str] = []

    async def recognise(text: str, language: str | None) -> bool | None:
        calls.append(text)
        if text == "slow":
            await asyncio.sleep(0.3)
            return True
        if text == "boom":
            raise RuntimeError("Home Assistant went away")
        return text.lower().rstrip(".") == "turn on the light"

    check = CachedCompletion(recognise, timeout=0.05)
    assert await check.complete("Turn on the light.", "en") is True
    assert await check.complete("turn on the light", "en") is True  # the same words: cached
    assert calls == ["Turn on the light."]
    assert await check.complete("slow", "en") is None  # late: don't know ...
    await asyncio.sleep(0.4)
    assert await check.complete("slow", "en") is True  # ... but its answer was kept for the next command
    assert await check.complete("boom", "en") is None and check.failures >= 1
    assert await check.complete("   ", "en") is False
    await check.aclose()


def test_a_complete_command_is_a_full_match_or_a_trigger() -> None:
    assert complete_from_debug({"match": True, "intent": {"name": "HassTurnOn"}, "unmatched_slots": {}})
    assert complete_from_debug({"match": True, "source": "trigger"})
    assert not complete_from_debug({"match": False, "intent": {"name": "HassTurnOn"}})
    assert not complete_from_debug(None)
    assert not complete_from_debug("match")
