"""Usage sensors, the estimated cost and the monthly cap, in a real Home Assistant against the fake Flux."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun import freeze_time
from homeassistant.components import assist_pipeline, stt
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType, PipelineStage
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.deepgram_flux.config_flow import unique_id
from custom_components.deepgram_flux.usage import next_month_start
from tests.fake_flux import FakeFlux
from tests.helpers import PacedStream, fixture_text, load_wav, silence
from tests.ha.test_stt_entity import ENTITY_ID, KITCHEN, entity
from tests.ha.test_wyoming_integration import metadata

DOMAIN = "deepgram_flux"


def sensor(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> float | None:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}-{key}")
    assert entity_id is not None, key
    state = hass.states.get(entity_id)
    assert state is not None
    return None if state.state in ("unknown", "unavailable") else float(state.state)


def storage_key(entry: MockConfigEntry) -> str:
    return f"{DOMAIN}.usage.{entry.entry_id}"


def month() -> str:
    now = dt_util.now()
    return f"{now.year:04d}-{now.month:02d}"


async def add_entry(hass: HomeAssistant, data: dict[str, Any], options: dict[str, Any] | None = None,
                    entry_id: str | None = None) -> MockConfigEntry:
    extra = {"entry_id": entry_id} if entry_id else {}
    entry = MockConfigEntry(domain=DOMAIN, data=data, options=options or {}, unique_id=unique_id(data),
                            title="Deepgram Flux (flux-general-en)", **extra)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def command(hass: HomeAssistant, pcm: bytes) -> stt.SpeechResult:
    result = await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(pcm)))
    await hass.async_block_till_done()
    return result


async def test_sensors_count_audio_commands_latency_and_cost(hass: HomeAssistant, flux_entry: MockConfigEntry,
                                                             fake_flux: FakeFlux) -> None:
    assert sensor(hass, flux_entry, "commands") == 0 and sensor(hass, flux_entry, "audio_minutes") == 0
    assert sensor(hass, flux_entry, "last_latency") is None
    for _ in range(2):
        result = await command(hass, load_wav(KITCHEN) + silence(3))  # real time: Flux ends the turn
        assert result.text == fixture_text(KITCHEN)
    received = sum(stream.audio_seconds for stream in fake_flux.streams)
    minutes = sensor(hass, flux_entry, "audio_minutes")
    assert minutes is not None and abs(minutes - received / 60) < 0.3 / 60
    assert sensor(hass, flux_entry, "commands") == 2
    latency = sensor(hass, flux_entry, "last_latency")
    # The fake ends the turn 0.26 s of silence after the last word, reported every 0.24 s: well under 3 s.
    assert latency is not None and 0.0 < latency < 3.0
    cost = sensor(hass, flux_entry, "estimated_cost")
    assert cost == pytest.approx(round(minutes * 0.0065, 4), abs=1e-4)  # Deepgram's rate for flux-general-en
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{flux_entry.entry_id}-estimated_cost")
    state = hass.states.get(entity_id or "")
    assert state is not None and state.attributes["unit_of_measurement"] == "USD"
    assert state.attributes["state_class"] == "total" and state.attributes.get("last_reset")


async def test_the_month_survives_a_reload_and_a_new_home_assistant(
    hass: HomeAssistant, flux_entry: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    assert (await command(hass, load_wav(KITCHEN) + silence(3))).text
    minutes = sensor(hass, flux_entry, "audio_minutes")
    assert await hass.config_entries.async_unload(flux_entry.entry_id)
    stored = hass_storage[storage_key(flux_entry)]["data"]
    assert stored["commands"] == 1 and stored["month"] == month()
    assert stored["audio_seconds"] == pytest.approx((minutes or 0) * 60, abs=0.01)
    assert await hass.config_entries.async_setup(flux_entry.entry_id)
    await hass.async_block_till_done()
    assert sensor(hass, flux_entry, "commands") == 1
    assert sensor(hass, flux_entry, "audio_minutes") == minutes


async def test_stored_figures_load_into_a_fresh_home_assistant_and_last_month_does_not_carry_over(
    hass: HomeAssistant, ha_core: HomeAssistant, hass_storage: dict[str, Any], flux_entry_data: dict[str, Any]
) -> None:
    hass_storage[f"{DOMAIN}.usage.this"] = {"version": 1, "key": f"{DOMAIN}.usage.this", "data": {
        "month": month(), "audio_seconds": 90.0, "commands": 7, "last_latency": 0.42}}
    hass_storage[f"{DOMAIN}.usage.old"] = {"version": 1, "key": f"{DOMAIN}.usage.old", "data": {
        "month": "2001-01", "audio_seconds": 900.0, "commands": 70, "last_latency": 0.5}}
    this = await add_entry(hass, flux_entry_data, entry_id="this")
    assert sensor(hass, this, "audio_minutes") == 1.5 and sensor(hass, this, "commands") == 7
    assert sensor(hass, this, "last_latency") == 0.42
    assert sensor(hass, this, "estimated_cost") == pytest.approx(1.5 * 0.0065, abs=1e-4)
    other = {**flux_entry_data, "model": "flux-general-multi"}
    old = await add_entry(hass, other, entry_id="old")
    assert sensor(hass, old, "audio_minutes") == 0 and sensor(hass, old, "commands") == 0


async def test_price_and_cap_come_from_the_options_flow(hass: HomeAssistant, flux_entry: MockConfigEntry) -> None:
    flow = await hass.config_entries.options.async_init(flux_entry.entry_id)
    options = {"end_of_speech": "flux", "eot_threshold": 0.7, "eot_timeout_ms": 5000, "boost_exposed_names": True,
               "no_speech_timeout": 8, "max_command_seconds": 30, "price_per_minute": 0.01, "monthly_cap_minutes": 500}
    result = await hass.config_entries.options.async_configure(flow["flow_id"], options)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    usage = flux_entry.runtime_data.usage  # rebuilt by the reload
    assert (usage.price_per_minute, usage.cap_minutes) == (0.01, 500)
    flow = await hass.config_entries.options.async_init(flux_entry.entry_id)
    with pytest.raises(InvalidData):  # below the form's minimum of 1 minute: a form error, nothing saved
        await hass.config_entries.options.async_configure(flow["flow_id"], {**options, "monthly_cap_minutes": 0})
    assert flux_entry.options["monthly_cap_minutes"] == 500


async def test_the_cap_fails_commands_at_once_with_a_repair_issue_until_the_month_ends(
    hass: HomeAssistant, ha_core: HomeAssistant, hass_storage: dict[str, Any], flux_entry_data: dict[str, Any],
    fake_flux: FakeFlux,
) -> None:
    hass_storage[f"{DOMAIN}.usage.capped"] = {"version": 1, "key": f"{DOMAIN}.usage.capped", "data": {
        "month": month(), "audio_seconds": 59.0, "commands": 3, "last_latency": None}}
    entry = await add_entry(hass, flux_entry_data, {"monthly_cap_minutes": 1}, entry_id="capped")
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, "capped_monthly_cap") is None  # 59 s of 60: not yet
    assert (await command(hass, load_wav(KITCHEN) + silence(3))).text == fixture_text(KITCHEN)
    issue = issues.async_get_issue(DOMAIN, "capped_monthly_cap")
    assert issue is not None and issue.translation_key == "monthly_cap_reached"
    assert issue.translation_placeholders and issue.translation_placeholders["cap"] == "1"
    streams = len(fake_flux.streams)

    # Through the pipeline: a clear stt error at once, no Flux stream, the audio not even read.
    for component in ("intent", "conversation", "assist_pipeline"):
        assert await async_setup_component(hass, component, {})
    pipeline = assist_pipeline.async_get_pipeline(hass)
    await assist_pipeline.async_update_pipeline(hass, pipeline, stt_engine=ENTITY_ID, stt_language="en-US")
    events: list[PipelineEvent] = []
    stream = PacedStream(load_wav(KITCHEN) + silence(3))
    await assist_pipeline.async_pipeline_from_audio_stream(
        hass, context=Context(), event_callback=events.append, stt_metadata=metadata(),
        stt_stream=aiter(stream), end_stage=PipelineStage.STT,
    )
    errors = [event for event in events if event.type is PipelineEventType.ERROR]
    assert errors and errors[0].data and errors[0].data["code"] == "stt-stream-failed"
    assert len(fake_flux.streams) == streams and stream.seconds_sent < 0.5
    assert sensor(hass, entry, "commands") == 4  # refused commands are not counted

    # The month ends: the figures start again, the issue goes, and commands go through.
    with freeze_time(next_month_start(dt_util.now()), tick=True):
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        assert sensor(hass, entry, "audio_minutes") == 0 and sensor(hass, entry, "commands") == 0
        assert issues.async_get_issue(DOMAIN, "capped_monthly_cap") is None
        assert not entry.runtime_data.usage.cap_reached()


async def test_removing_the_entry_removes_its_figures_and_cap_issue(
    hass: HomeAssistant, ha_core: HomeAssistant, hass_storage: dict[str, Any], flux_entry_data: dict[str, Any]
) -> None:
    hass_storage[f"{DOMAIN}.usage.gone"] = {"version": 1, "key": f"{DOMAIN}.usage.gone", "data": {
        "month": month(), "audio_seconds": 120.0, "commands": 3, "last_latency": None}}
    entry = await add_entry(hass, flux_entry_data, {"monthly_cap_minutes": 1}, entry_id="gone")
    assert ir.async_get(hass).async_get_issue(DOMAIN, "gone_monthly_cap") is not None
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert f"{DOMAIN}.usage.gone" not in hass_storage
    assert ir.async_get(hass).async_get_issue(DOMAIN, "gone_monthly_cap") is None
