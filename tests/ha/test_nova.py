"""Nova-3 in the integration, in a real Home Assistant against the fake Deepgram (/v2/listen and /v1/listen on
one host): a pipeline's language picks the backend (Flux where the entry's Flux model speaks it, Nova-3
otherwise), Nova-3 answers on speech_final while the audio still streams and finalizes on an early end of the
stream, a language nobody serves is an error (never another language's text), and each command is priced at its
own model's rate."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components import assist_pipeline, stt
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType, PipelineStage
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.deepgram_flux.config_flow import unique_id
from tests.fake_flux import FakeFlux
from tests.ha.test_config_flow import OPTIONS, configure, start_user_flow, submit_options
from tests.ha.test_stt_entity import ENTITY_ID, KITCHEN, entity
from tests.ha.test_wyoming_integration import metadata
from tests.helpers import PacedStream, fixture_text, load_wav, silence

POLISH = "pl_wlacz_swiatlo_w_kuchni"
SWEDISH = "sv_tand_lampan_i_koket"


async def nova_off_entry(hass: HomeAssistant, data: dict[str, Any]) -> MockConfigEntry:
    data = {**data, "nova": False}
    entry = MockConfigEntry(domain="deepgram_flux", data=data, unique_id=unique_id(data),
                            title="Deepgram Flux (flux-general-en)")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_the_entity_offers_novas_languages_unless_nova_is_turned_off(
        hass: HomeAssistant, ha_core: HomeAssistant, flux_entry_data: dict[str, Any]) -> None:
    entry = await nova_off_entry(hass, flux_entry_data)
    assert "pl" not in entity(hass).supported_languages and "en-US" in entity(hass).supported_languages
    hass.config_entries.async_update_entry(entry, data={**entry.data, "nova": True})  # as reconfigure saves it
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    languages = entity(hass).supported_languages
    assert {"en-US", "pl", "pl-PL", "sv", "sv-SE", "cs", "uk", "ar"} <= set(languages)
    assert len(languages) == len(set(languages))


@pytest.mark.parametrize("fixture", [POLISH, SWEDISH])
async def test_a_polish_pipeline_reaches_nova_and_is_answered_on_speech_final_while_the_audio_streams(
        hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux, fixture: str) -> None:
    for component in ("intent", "conversation", "assist_pipeline"):
        assert await async_setup_component(hass, component, {})
    hass.states.async_set("light.lampa", "off", {"friendly_name": "Lampa"})
    async_expose_entity(hass, "conversation", "light.lampa", True)
    fake_flux.script.transcripts = [fixture_text(fixture)]
    language = {"pl": "pl-PL", "sv": "sv-SE"}[fixture[:2]]
    sent = {"pl": "pl", "sv": "sv-SE"}[fixture[:2]]  # Nova-3's code: a regional one it lists goes as is
    pipeline = assist_pipeline.async_get_pipeline(hass)
    await assist_pipeline.async_update_pipeline(hass, pipeline, stt_engine=ENTITY_ID, stt_language=language)

    events: list[PipelineEvent] = []
    pcm = load_wav(fixture) + silence(5)
    stream = PacedStream(pcm)  # real time, 10 ms chunks
    await assist_pipeline.async_pipeline_from_audio_stream(
        hass, context=Context(), event_callback=events.append, stt_metadata=metadata(language),
        stt_stream=aiter(stream), end_stage=PipelineStage.STT,
    )
    by_type = {event.type: event for event in events}
    assert PipelineEventType.ERROR not in by_type, by_type.get(PipelineEventType.ERROR)
    assert by_type[PipelineEventType.STT_END].data["stt_output"]["text"] == fixture_text(fixture)
    # Deepgram's endpointing ended it, well inside the 5 s of silence still streaming (with early answers on, the
    # default, it marks a 200 ms pause and Home Assistant's recogniser judges the words: test_early_answer.py).
    assert not stream.exhausted and stream.seconds_sent < len(pcm) / 32000 - 4.0
    (nova,) = fake_flux.streams
    assert (nova.query["model"], nova.query["language"]) == (["nova-3"], [sent])
    assert nova.query["endpointing"] == ["200"] and any(m.get("speech_final") for m in nova.sent)
    assert "Lampa" in nova.query["keyterm"]  # exposed names reach Nova-3 as they reach Flux
    assert flux_entry.runtime_data.history[-1]["model"] == "nova-3"


async def test_english_still_goes_to_flux_on_the_same_entry(
        hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux) -> None:
    for language in ("en-GB", "pl"):
        result = await entity(hass).async_process_audio_stream(
            metadata(language), aiter(PacedStream(load_wav(KITCHEN) + silence(2), pace=2)))
        assert result.result is stt.SpeechResultState.SUCCESS
    assert [s.query["model"] for s in fake_flux.streams] == [["flux-general-en"], ["nova-3"]]
    assert [c["model"] for c in flux_entry.runtime_data.history] == ["flux-general-en", "nova-3"]


async def test_the_stream_ending_before_the_endpoint_gets_the_whole_text_by_finalize(
        hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux) -> None:
    fake_flux.script.transcripts = [fixture_text(POLISH)]
    pcm = load_wav(POLISH)[: int(2.2 * 32000)]  # the satellite stops at the last word: no silence to endpoint on
    result = await entity(hass).async_process_audio_stream(metadata("pl-PL"), aiter(PacedStream(pcm, pace=2)))
    assert (result.result, result.text) == (stt.SpeechResultState.SUCCESS, fixture_text(POLISH))
    (nova,) = fake_flux.streams
    assert nova.query["language"] == ["pl"] and '{"type":"Finalize"}' in nova.client_messages
    assert not any(m.get("speech_final") for m in nova.sent)
    assert flux_entry.runtime_data.history[-1]["ended_by"] == "forced"


@pytest.mark.parametrize(("nova", "language", "says"), [
    (False, "pl", "“Nova-3 for other languages”"),  # Nova-3 turned off: the setting that would serve it
    (True, "tlh", "Deepgram has none"),  # nobody has Klingon
])
async def test_a_language_nobody_serves_is_an_error_never_another_languages_text(
        hass: HomeAssistant, ha_core: HomeAssistant, flux_entry_data: dict[str, Any], fake_flux: FakeFlux,
        caplog: pytest.LogCaptureFixture, nova: bool, language: str, says: str) -> None:
    if nova:
        entry = MockConfigEntry(domain="deepgram_flux", data=flux_entry_data, title="Deepgram Flux (flux-general-en)")
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    else:
        entry = await nova_off_entry(hass, flux_entry_data)
    stream = PacedStream(load_wav(KITCHEN) + silence(1), pace=10)
    result = await entity(hass).async_process_audio_stream(metadata(language), aiter(stream))
    assert (result.result, result.text) == (stt.SpeechResultState.ERROR, None)
    assert fake_flux.handshakes == 0 and stream.sent == 0  # nothing sent to any model, the audio not read
    line = next(r.getMessage() for r in caplog.records if r.levelname == "ERROR" and language in r.getMessage())
    assert says in line and "flux-general-en" in line
    assert entry.runtime_data.usage.commands == 1 and entry.runtime_data.usage.minutes == 0


async def test_a_pipeline_in_a_language_the_entry_does_not_offer_is_refused_before_any_stream(
        hass: HomeAssistant, ha_core: HomeAssistant, flux_entry_data: dict[str, Any], fake_flux: FakeFlux) -> None:
    await nova_off_entry(hass, flux_entry_data)
    for component in ("intent", "conversation", "assist_pipeline"):
        assert await async_setup_component(hass, component, {})
    pipeline = assist_pipeline.async_get_pipeline(hass)
    await assist_pipeline.async_update_pipeline(hass, pipeline, stt_engine=ENTITY_ID, stt_language="pl")
    events: list[PipelineEvent] = []
    stream = PacedStream(load_wav(POLISH) + silence(1))
    await assist_pipeline.async_pipeline_from_audio_stream(
        hass, context=Context(), event_callback=events.append, stt_metadata=metadata("pl"),
        stt_stream=aiter(stream), end_stage=PipelineStage.STT,
    )
    errors = [event for event in events if event.type is PipelineEventType.ERROR]
    assert errors and PipelineEventType.STT_END not in {event.type for event in events}
    assert fake_flux.handshakes == 0


async def test_each_command_is_priced_at_its_own_models_rate(
        hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux) -> None:
    # Polish: Nova-3 monolingual; English: Flux; Arabic: Nova-3 with language=multi.
    rates = {"pl": 0.0048, "en-US": 0.0065, "ar": 0.0058}
    for language in rates:
        await entity(hass).async_process_audio_stream(
            metadata(language), aiter(PacedStream(load_wav(KITCHEN) + silence(2), pace=2)))
    await hass.async_block_till_done()
    assert [s.query.get("language", ["-"])[0] for s in fake_flux.streams] == ["pl", "-", "multi"]
    expected = sum(s.audio_seconds / 60 * rate for s, rate in zip(fake_flux.streams, rates.values(), strict=True))
    usage = flux_entry.runtime_data.usage
    assert usage.cost == pytest.approx(expected, rel=0.02)
    assert usage.cost != pytest.approx(usage.minutes * 0.0065, rel=0.02)  # not the entry's Flux rate for all
    # A price set in the options is the user's own rate, for every command whichever its model.
    result = await submit_options(hass, flux_entry, {**OPTIONS, "price_per_minute": 0.01})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    usage = flux_entry.runtime_data.usage
    before = usage.cost
    await entity(hass).async_process_audio_stream(metadata("pl"), aiter(PacedStream(load_wav(KITCHEN) + silence(2),
                                                                                    pace=2)))
    assert usage.cost - before == pytest.approx(fake_flux.streams[-1].audio_seconds / 60 * 0.01, rel=0.02)


async def test_the_config_flow_checks_nova_too_and_can_turn_it_off(
        hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]) -> None:
    fake_flux.script.forbidden_models = {"nova-3"}
    result = await start_user_flow(hass, flux_entry_data)
    assert result["type"] is FlowResultType.FORM and result["errors"] == {"base": "model_forbidden"}
    result = await configure(hass, result["flow_id"], {**flux_entry_data, "nova": False})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["data"]["nova"] is False
    assert result["title"] == "Deepgram (Flux English)"  # no Nova-3: the name says so
    assert fake_flux.streams[-1].query["model"] == ["flux-general-en"]
    assert "pl" not in entity(hass).supported_languages


async def test_nova_alone_hears_every_language_and_is_checked_on_v1_listen(
        hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]) -> None:
    result = await start_user_flow(hass, {**flux_entry_data, "model": "nova-3"})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["title"] == "Deepgram (Nova-3)"
    assert [s.query["model"] for s in fake_flux.streams] == [["nova-3"]]
    await hass.async_block_till_done()
    result = await entity(hass).async_process_audio_stream(
        metadata("en-US"), aiter(PacedStream(load_wav(KITCHEN) + silence(2), pace=2)))
    assert result.text == fixture_text(KITCHEN)
    assert (fake_flux.streams[-1].query["model"], fake_flux.streams[-1].query["language"]) == (["nova-3"], ["en-US"])


async def test_nova_options_are_shown_only_with_nova_and_reach_the_stream(
        hass: HomeAssistant, ha_core: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux,
        flux_entry_data: dict[str, Any]) -> None:
    result = await submit_options(hass, flux_entry, {**OPTIONS, "endpointing_ms": 5001})
    assert result["errors"] == {"turn": "out_of_range_endpointing_ms"}
    assert result["description_placeholders"] == {"low": "10", "high": "5000"}
    result = await submit_options(hass, flux_entry, {**OPTIONS, "endpointing_ms": 300, "utterance_end_ms": 1500})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert (flux_entry.options["endpointing_ms"], flux_entry.options["utterance_end_ms"]) == (300, 1500)
    await entity(hass).async_process_audio_stream(metadata("pl"), aiter(PacedStream(silence(0.3), pace=10)))
    query = fake_flux.streams[-1].query
    assert (query["endpointing"], query["utterance_end_ms"]) == (["300"], ["1500"])
    # Nova-3 turned off: the form hides its options, and saving it keeps their values for later.
    hass.config_entries.async_update_entry(flux_entry, data={**flux_entry.data, "nova": False})
    await hass.async_block_till_done()
    form = await hass.config_entries.options.async_init(flux_entry.entry_id)
    turn = next(part for key, part in form["data_schema"].schema.items() if key == "turn")
    assert not {"endpointing_ms", "utterance_end_ms"} & {str(key) for key in turn.schema.schema}
    result = await hass.config_entries.options.async_configure(form["flow_id"], {
        "turn": {k: OPTIONS[k] for k in ("end_of_speech", "eot_threshold", "eot_timeout_ms", "no_speech_timeout",
                                         "max_command_seconds")},
        "names": {"boost_exposed_names": False}, "usage": {}, "fallback": {}})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert flux_entry.options["endpointing_ms"] == 300


@pytest.mark.parametrize(("language", "sent"), [("zh-hk", "zh-HK"), ("zh-tw", "zh-TW"), ("he-IL", "he"),
                                                ("kk-kz", "kk-KZ"), ("th-TH", "th-TH")])
async def test_home_assistants_language_codes_reach_novas_own_model_spelled_as_deepgram_lists_it(
        hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux, language: str, sent: str) -> None:
    """Home Assistant's Chinese codes are lower case (zh-hk: Cantonese, never the Mandarin model); Hebrew,
    Kazakh and Thai have monolingual models since 2026, priced at Nova-3's monolingual rate."""
    result = await entity(hass).async_process_audio_stream(
        metadata(language), aiter(PacedStream(load_wav(KITCHEN) + silence(2), pace=2)))
    assert (result.result, result.text) == (stt.SpeechResultState.SUCCESS, fixture_text(KITCHEN))
    (stream,) = fake_flux.streams
    assert (stream.query["model"], stream.query["language"], "language_hint" in stream.query) == (
        ["nova-3"], [sent], False)
    usage = flux_entry.runtime_data.usage
    assert usage.cost == pytest.approx(stream.audio_seconds / 60 * 0.0048, rel=0.02)


async def test_the_entity_offers_the_languages_deepgram_lists_for_its_host(
        hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]) -> None:
    """Read at setup (and again at a reload once the kept list is old), bounded; the built-in table without it."""
    from wyoming_flux.deepgram.catalog import forget_catalogs

    fake_flux.script.extra_nova_languages = ("hy",)
    entry = MockConfigEntry(domain="deepgram_flux", data=flux_entry_data, unique_id=unique_id(flux_entry_data),
                            title="Deepgram Flux (flux-general-en)")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert {"hy", "he", "kk", "zh-HK"} <= set(entity(hass).supported_languages)
    result = await entity(hass).async_process_audio_stream(
        metadata("hy"), aiter(PacedStream(load_wav(KITCHEN) + silence(2), pace=2)))
    assert result.result is stt.SpeechResultState.SUCCESS and fake_flux.streams[-1].query["language"] == ["hy"]
    forget_catalogs()
    fake_flux.script.models_endpoint = False  # a host without the models endpoint: the built-in table
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    languages = set(entity(hass).supported_languages)
    assert "hy" not in languages and {"he", "kk", "zh-HK", "pl"} <= languages
