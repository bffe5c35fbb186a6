"""Early answers in the Wyoming server, with Home Assistant's own intent recogniser as the completion check.

Home Assistant here is the harness's real `hass` with its `http`, `websocket_api`, `config` and `conversation`
components on a loopback port, a real long-lived token and a light "Kitchen Light" exposed to Assist (as in
test_hass_names.py). The server asks it over the names connection (`conversation/agent/homeassistant/debug`, a
dry run). Deepgram is the fake, with a late end of turn: EagerEndOfTurn 0.2 s and EndOfTurn 0.8 s after speech.
What the recogniser says (checked): "turn on the kitchen light" complete; "set a timer" and "ustaw minutnik"
nothing recognised; "set a timer for five minutes" and "ustaw minutnik na dziesięć minut" complete.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from tests.conftest import make_settings
from tests.fake_flux import FakeFlux
from tests.ha.conftest import needs_home_assistant
from tests.ha.test_hass_names import HomeAssistantApi, eventually, long_lived_token
from tests.helpers import fixture_text, load_wav, silence
from tests.server.test_nova import transcribe
from wyoming_flux.deepgram.models import MODEL_EN, MODEL_NOVA
from wyoming_flux.server.server import WyomingServer
from wyoming_flux.turn.completion import EARLY_TRIGGER
from wyoming_flux.turn.session import SessionConfig

pytestmark = needs_home_assistant("2026.10.0", "the server needs wyoming 1.10, newer than older releases pin")

KITCHEN = "turn_on_the_kitchen_light"
PAUSED = "set_a_timer_pause"  # "set a timer" + 0.4 s + "for five minutes"
POLISH_PAUSED = "pl_ustaw_minutnik_pauza"  # "ustaw minutnik" + 0.4 s + "na dziesięć minut"


@pytest.fixture
async def assist(hass: HomeAssistant, ha_core: HomeAssistant) -> AsyncIterator[HomeAssistantApi]:
    """Home Assistant with its default conversation agent and a light exposed to Assist, on a loopback port."""
    for component in ("http", "websocket_api", "config", "intent", "conversation"):
        assert await async_setup_component(hass, component, {})
    await hass.async_block_till_done()
    hass.states.async_set("light.kitchen_light", "off", {"friendly_name": "Kitchen Light"})
    async_expose_entity(hass, "conversation", "light.kitchen_light", True)
    api = HomeAssistantApi(hass)
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def token(hass: HomeAssistant, hass_admin_user) -> str:  # type: ignore[no-untyped-def]
    return await long_lived_token(hass, hass_admin_user)


@pytest.fixture
def late_flux(fake_flux: FakeFlux) -> FakeFlux:
    fake_flux.script.eager_silence, fake_flux.script.eot_silence = 0.2, 0.8
    return fake_flux


async def serving(fake_flux: FakeFlux, hass_url: str, token: str, model: str, *, early_answer: bool = True,
                  languages: tuple[str, ...] = ()) -> WyomingServer:
    """The server as `wyoming-flux --hass-url` runs it (metrics on), once Home Assistant's recogniser is ready and
    has loaded `languages`: the first ask in a language loads its sentences, and the first one it does not
    recognise its fuzzy matcher (0.1-0.5 s each, longer than a command waits)."""
    config = SessionConfig(url=fake_flux.url, api_key="dg-secret-0123456789abcdef", early_answer=early_answer)
    settings = dataclasses.replace(make_settings(config, model), hass_url=hass_url, hass_token=token,
                                   metrics_port=0)
    server = WyomingServer(settings, "tcp://127.0.0.1:0")
    await server.start()
    assert server.names is not None
    if server.completion is not None:  # a busy test machine may take longer than a command waits (80 ms)
        server.completion.timeout = 2.0
    try:
        await eventually(lambda: server.names is not None and server.names.connected, "Home Assistant connected")
        for language in languages:
            for sentence in ("turn on the kitchen light", "good morning to you"):
                assert await server.names.recognise(sentence, language) is not None
    except BaseException:
        await server.stop()
        raise
    return server


def commands(server: WyomingServer, trigger: str) -> float:
    assert server.metrics is not None
    labels = {"outcome": "end_of_turn", "trigger": trigger}
    return server.metrics.registry.get_sample_value("wyoming_flux_commands_total", labels) or 0.0


def resumed(server: WyomingServer) -> float:
    assert server.metrics is not None
    return server.metrics.registry.get_sample_value("wyoming_flux_early_answers_resumed_total") or 0.0


async def answer(server: WyomingServer, language: str, fixture: str) -> str:
    events, _ = await transcribe(server, language, load_wav(fixture) + silence(3))
    assert events[-1].type == "transcript", events[-1]
    return str(events[-1].data["text"])


async def test_a_complete_command_is_answered_at_flux_eager_end_of_turn(
    assist: HomeAssistantApi, token: str, late_flux: FakeFlux, caplog: pytest.LogCaptureFixture,
) -> None:
    late_flux.script.transcripts = [fixture_text(KITCHEN)]
    server = await serving(late_flux, assist.url, token, MODEL_EN, languages=("en-US",))
    try:
        assert await answer(server, "en-US", KITCHEN) == fixture_text(KITCHEN)
        await eventually(lambda: commands(server, EARLY_TRIGGER) == 1, "counted as an early answer")
    finally:
        await server.stop()
    stream = late_flux.streams[-1]
    assert stream.query["eager_eot_threshold"] == ["0.5"] and stream.events("EagerEndOfTurn")
    assert f"ended_by=end_of_turn({EARLY_TRIGGER})" in caplog.text  # the "Command done" line
    assert resumed(server) == 0


@pytest.mark.parametrize(("model", "fixture", "language", "transcript"), [
    (MODEL_EN, PAUSED, "en", "set a timer | for five minutes"),
    (MODEL_NOVA, PAUSED, "en", "set a timer | for five minutes"),
    (MODEL_NOVA, POLISH_PAUSED, "pl", "ustaw minutnik | na dziesięć minut"),
])
async def test_a_paused_command_comes_back_whole(assist: HomeAssistantApi, token: str, late_flux: FakeFlux,
                                                model: str, fixture: str, language: str, transcript: str) -> None:
    late_flux.script.transcripts = [transcript]
    server = await serving(late_flux, assist.url, token, model, languages=(language,))
    try:
        assert await answer(server, language, fixture) == fixture_text(fixture)
        # The unfinished words were not answered; the whole command was, as soon as it was complete.
        await eventually(lambda: commands(server, EARLY_TRIGGER) == 1, "the whole command answered early")
    finally:
        await server.stop()
    if model == MODEL_NOVA:
        assert late_flux.streams[-1].query["endpointing"] == ["200"]
    else:
        assert late_flux.streams[-1].events("TurnResumed")  # Flux's eager end at the pause, then more words
    assert resumed(server) == 0


@pytest.mark.parametrize("model", [MODEL_EN, MODEL_NOVA])
async def test_switched_off_commands_end_as_before(assist: HomeAssistantApi, token: str, late_flux: FakeFlux,
                                                   model: str) -> None:
    late_flux.script.transcripts = [fixture_text(KITCHEN)]
    server = await serving(late_flux, assist.url, token, model, early_answer=False, languages=("en",))
    try:
        assert server.completion is None
        assert await answer(server, "en", KITCHEN) == fixture_text(KITCHEN)
        trigger = "model" if model == MODEL_EN else "speech_final"
        await eventually(lambda: commands(server, trigger) == 1, "ended by Deepgram, as without early answers")
    finally:
        await server.stop()
    query = late_flux.streams[-1].query
    assert "eager_eot_threshold" not in query
    assert query.get("endpointing", ["500"]) == ["500"]


async def test_the_speaker_going_on_after_an_early_answer_is_counted(
    assist: HomeAssistantApi, token: str, late_flux: FakeFlux, caplog: pytest.LogCaptureFixture,
) -> None:
    # A complete command, a pause, more words: Flux reports 0.3 s late, so its TurnResumed comes after the early
    # answer at the pause. This is the cut the feature risks: counted and said.
    late_flux.script.transcripts = ["turn on the kitchen light | for five minutes"]
    late_flux.script.report_lag = 0.3
    server = await serving(late_flux, assist.url, token, MODEL_EN, languages=("en",))
    try:
        assert await answer(server, "en", PAUSED) == "turn on the kitchen light"
        await eventually(lambda: resumed(server) == 1, "the cut counted")
        await asyncio.sleep(0)
    finally:
        await server.stop()
    assert commands(server, EARLY_TRIGGER) == 1
    assert "The speaker went on after an early answer" in caplog.text


async def test_a_home_assistant_without_a_conversation_agent_is_asked_once(
    hass: HomeAssistant, ha_core: HomeAssistant, token: str, late_flux: FakeFlux, caplog: pytest.LogCaptureFixture,
) -> None:
    for component in ("http", "websocket_api", "config"):  # names, but nothing to recognise sentences
        assert await async_setup_component(hass, component, {})
    await hass.async_block_till_done()
    api = HomeAssistantApi(hass)
    await api.start()
    late_flux.script.transcripts = [fixture_text(KITCHEN)]
    server = await serving(late_flux, api.url, token, MODEL_EN)
    try:
        assert server.completion is not None and server.completion.ready()
        for _ in range(2):
            assert await answer(server, "en", KITCHEN) == fixture_text(KITCHEN)
        await eventually(lambda: commands(server, "model") == 2, "both ended by Flux, as without early answers")
        assert not server.completion.ready()
    finally:
        await server.stop()
        await api.stop()
    first, second = late_flux.streams[-2:]
    assert first.query["eager_eot_threshold"] == ["0.5"]  # asked while it looked possible ...
    assert "eager_eot_threshold" not in second.query  # ... and no more once Home Assistant said it cannot
    assert caplog.text.count("has no conversation agent") == 1
