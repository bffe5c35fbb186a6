"""The integration's STT entity in a real Home Assistant: assist pipeline, keyterms, failures, diagnostics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from homeassistant.components import assist_pipeline, stt
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType, PipelineStage
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.core import Context, HomeAssistant, ServiceCall
from homeassistant.helpers import area_registry as ar, entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry

from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux
from tests.helpers import PacedStream, fixture_text, load_wav, silence
from tests.ha.test_wyoming_integration import metadata
from wyoming_flux.deepgram.flux import estimate_tokens

ENTITY_ID = "stt.deepgram_flux_english_nova_3"  # its device: "Deepgram (Flux English, Nova-3)"
KITCHEN = "turn_on_the_kitchen_light"


def entity(hass: HomeAssistant, entity_id: str | None = None) -> stt.SpeechToTextEntity:
    """The STT entity `entity_id`, or the one of our integration (whichever its model)."""
    if entity_id is None:
        (entity_id,) = [e.entity_id for e in er.async_get(hass).entities.values()
                        if e.platform == "deepgram_flux" and e.domain == "stt"]
    found = stt.async_get_speech_to_text_entity(hass, entity_id)
    assert found is not None
    return found


async def test_entity_describes_what_home_assistant_may_send(hass: HomeAssistant, flux_entry: MockConfigEntry) -> None:
    stt_entity = entity(hass)
    assert {"en", "en-US", "en-GB", "en-AU"} <= set(stt_entity.supported_languages)
    languages = set(stt_entity.supported_languages)
    assert {"de-DE", "pl"} <= languages and "tlh" not in languages  # Nova-3 for the others (on by default)
    assert stt_entity.supported_sample_rates == [stt.AudioSampleRates.SAMPLERATE_16000]
    assert stt_entity.supported_channels == [stt.AudioChannels.CHANNEL_MONO]
    processing = stt_entity.audio_processing
    assert processing.requires_external_vad is False and processing.prefers_noise_reduction_enabled is False


async def kitchen_home(hass: HomeAssistant, stt_engine: str = ENTITY_ID, language: str = "en-US") -> list[ServiceCall]:
    """Conversation and the assist pipeline, the Kitchen Light exposed to Assist, the preferred pipeline on
    `stt_engine` in `language`. Returns the calls of light.turn_on (HA's own intent handling makes them)."""
    for component in ("intent", "conversation", "assist_pipeline"):
        assert await async_setup_component(hass, component, {})
    hass.states.async_set("light.kitchen_light", "off", {"friendly_name": "Kitchen Light"})
    async_expose_entity(hass, "conversation", "light.kitchen_light", True)
    turn_on = async_mock_service(hass, "light", "turn_on")
    pipeline = assist_pipeline.async_get_pipeline(hass)
    await assist_pipeline.async_update_pipeline(hass, pipeline, stt_engine=stt_engine, stt_language=language,
                                                language=language[:2], conversation_language=language[:2])
    return turn_on


async def test_assist_pipeline_turns_on_the_kitchen_light_when_flux_ends_the_turn(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    turn_on = await kitchen_home(hass)

    events: list[PipelineEvent] = []
    stream = PacedStream(load_wav(KITCHEN) + silence(5))  # real time, 10 ms chunks
    await assist_pipeline.async_pipeline_from_audio_stream(
        hass, context=Context(), event_callback=events.append, stt_metadata=metadata(),
        stt_stream=aiter(stream), end_stage=PipelineStage.INTENT,
    )
    await hass.async_block_till_done()

    by_type = {event.type: event for event in events}
    assert PipelineEventType.ERROR not in by_type, by_type.get(PipelineEventType.ERROR)
    assert by_type[PipelineEventType.STT_END].data["stt_output"]["text"] == fixture_text(KITCHEN)
    assert not stream.exhausted, "Flux's EndOfTurn must close the command, not the end of the audio"
    assert stream.seconds_sent < len(load_wav(KITCHEN)) / 32000 + 1.0
    # No Home Assistant VAD ran: it would have emitted these.
    assert PipelineEventType.STT_VAD_START not in by_type and PipelineEventType.STT_VAD_END not in by_type
    assert PipelineEventType.INTENT_END in by_type
    assert [call.data["entity_id"] for call in turn_on] == [["light.kitchen_light"]]
    # The exposed light and its name reached Flux as a keyterm.
    assert "Kitchen Light" in fake_flux.streams[0].query["keyterm"]


async def test_keyterms_carry_exposed_names_and_areas_within_budget_and_refresh_on_change(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    area = ar.async_get(hass).async_create("Léa's Room", aliases={"Lea's bedroom"})
    registry = er.async_get(hass)
    strip = registry.async_get_or_create("light", "test", "strip", original_name="Hue Strip", suggested_object_id="hue_strip")
    registry.async_update_entity(strip.entity_id, area_id=area.id, aliases=["Rainbow"])
    hass.states.async_set(strip.entity_id, "off", {"friendly_name": "Hue Strip"})
    async_expose_entity(hass, "conversation", strip.entity_id, True)
    hass.states.async_set("light.hidden", "off", {"friendly_name": "Secret Lamp"})
    async_expose_entity(hass, "conversation", "light.hidden", False)
    for i in range(300):  # far more names than Flux's budget allows
        hass.states.async_set(f"switch.outlet_{i}", "off", {"friendly_name": f"Garage outlet number {i}"})
        async_expose_entity(hass, "conversation", f"switch.outlet_{i}", True)
    await hass.async_block_till_done()

    async def one_command() -> list[str]:
        result = await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(load_wav(KITCHEN) + silence(1), pace=10)))
        assert result.text == fixture_text(KITCHEN)
        return fake_flux.streams[-1].query["keyterm"]

    terms = await one_command()
    assert terms[:2] == ["Léa's Room", "Lea's bedroom"]
    assert {"Hue Strip", "Rainbow"} <= set(terms) and "Secret Lamp" not in terms
    assert sum(estimate_tokens(t) for t in terms) <= 500 and len(terms) < 300
    index = flux_entry.runtime_data.keyterms
    builds = index.builds
    await one_command()
    assert index.builds == builds  # not rebuilt per command
    registry.async_update_entity(strip.entity_id, aliases=["Rainbow", "Mood light"])
    await hass.async_block_till_done()
    assert "Mood light" in await one_command()
    assert index.builds == builds + 1


async def test_user_keyterms_come_first(hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux) -> None:
    hass.config_entries.async_update_entry(flux_entry, options={"keyterms": ["Zigbee"], "boost_exposed_names": True})
    await hass.config_entries.async_reload(flux_entry.entry_id)
    await hass.async_block_till_done()
    ar.async_get(hass).async_create("Attic")
    await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(silence(0.5), pace=10)))
    assert fake_flux.streams[-1].query["keyterm"] == ["Zigbee", "Attic"]


async def test_stream_ending_first_returns_the_forced_text(hass: HomeAssistant, flux_entry: MockConfigEntry) -> None:
    pcm = load_wav(KITCHEN)[: int(1.3 * 32000)]
    result = await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(pcm, pace=10)))
    assert result.result is stt.SpeechResultState.SUCCESS
    assert result.text and fixture_text(KITCHEN).startswith(result.text)
    assert flux_entry.runtime_data.history[-1]["ended_by"] == "forced"


async def test_multi_model_sends_the_pipeline_language_as_hint(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]
) -> None:
    entry = MockConfigEntry(domain="deepgram_flux", data={**flux_entry_data, "model": "flux-general-multi"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    stt_entity = stt.async_get_speech_to_text_entity(hass, "stt.deepgram_flux_multilingual_nova_3")
    assert stt_entity is not None and {"de", "de-DE", "fr-CA"} <= set(stt_entity.supported_languages)
    await stt_entity.async_process_audio_stream(metadata("de-DE"), aiter(PacedStream(silence(0.3), pace=10)))
    assert fake_flux.streams[-1].query["language_hint"] == ["de"]


async def test_runtime_401_is_an_error_and_starts_reauth(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux, caplog: pytest.LogCaptureFixture
) -> None:
    fake_flux.api_key = "revoked"
    stream = PacedStream(load_wav(KITCHEN) + silence(5))
    result = await entity(hass).async_process_audio_stream(metadata(), aiter(stream))
    assert result.result is stt.SpeechResultState.ERROR
    assert stream.seconds_sent < 1.0
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler("deepgram_flux")
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert "Deepgram rejected the API key (HTTP 401)" in caplog.text and API_KEY not in caplog.text


@pytest.mark.parametrize("outage", ["refused", "fatal", "stalled"])
async def test_flux_outage_is_an_error_within_the_bound(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux, outage: str
) -> None:
    if outage == "refused":
        await fake_flux.stop()
    elif outage == "fatal":
        fake_flux.script.fatal_after = 0.1
    else:
        fake_flux.script.silent_after = 0.0  # Connected, then nothing: the stuck socket peers have seen
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(silence(12))))
    assert result.result is stt.SpeechResultState.ERROR
    assert loop.time() - started < 5.0
    assert flux_entry.runtime_data.history[-1]["error_code"] in {"flux-unavailable", "flux-stream", "flux-timeout"}


async def test_diagnostics_show_settings_and_recent_commands_without_the_key(
    hass: HomeAssistant, hass_client: Any, flux_entry: MockConfigEntry
) -> None:
    await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(load_wav(KITCHEN) + silence(1), pace=10)))
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, flux_entry)
    dumped = json.dumps(diagnostics)
    assert API_KEY not in dumped and API_KEY[:12] not in dumped
    assert diagnostics["entry"]["data"]["api_key"] == "**REDACTED**"
    (command,) = diagnostics["recent_commands"]
    assert command["ended_by"] == "end_of_turn" and command["text_chars"] == len(fixture_text(KITCHEN))
    assert command["audio_seconds"] > 1.5 and command["total_ms"] > 0
    assert diagnostics["options"]["end_of_speech"] == "flux"


async def test_home_assistant_vad_mode(hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux) -> None:
    hass.config_entries.async_update_entry(flux_entry, options={"end_of_speech": "ha_vad"})
    await hass.config_entries.async_reload(flux_entry.entry_id)
    await hass.async_block_till_done()
    assert entity(hass).audio_processing.requires_external_vad is True
    stream = PacedStream(load_wav(KITCHEN) + silence(1), pace=10)
    result = await entity(hass).async_process_audio_stream(metadata(), aiter(stream))
    assert stream.exhausted  # the end of the stream (HA's VAD), not Flux, ended the command
    assert result.text == fixture_text(KITCHEN)
    # Early answers have nothing to end: no check, no early guesses asked of Flux.
    assert flux_entry.runtime_data.completion is None
    assert "eager_eot_threshold" not in fake_flux.streams[-1].query
