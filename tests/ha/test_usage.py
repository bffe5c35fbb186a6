"""Usage sensors, the estimated cost and the monthly cap, in a real Home Assistant against the fake Flux."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun import freeze_time
from homeassistant.components import assist_pipeline, stt
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType, PipelineStage
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.deepgram_flux import entry_name
from custom_components.deepgram_flux.config_flow import unique_id
from custom_components.deepgram_flux.usage import next_month_start
from tests.fake_flux import FakeFlux
from tests.ha.conftest import BACKENDS, stt_entity_id
from tests.ha.test_config_flow import submit_options
from tests.helpers import PacedStream, fixture_text, load_wav, silence
from tests.ha.test_stt_entity import KITCHEN, entity
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
                            title=entry_name(data), **extra)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def command(hass: HomeAssistant, pcm: bytes) -> stt.SpeechResult:
    result = await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(pcm)))
    await hass.async_block_till_done()
    return result


PRICES = {"flux-general-en": 0.0065, "nova-3": 0.0048}  # Deepgram's rates for English on each backend


@pytest.mark.parametrize("entry_model", BACKENDS)
async def test_sensors_count_audio_commands_latency_and_cost(hass: HomeAssistant, flux_entry: MockConfigEntry,
                                                             fake_flux: FakeFlux, entry_model: str) -> None:
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
    assert cost == pytest.approx(round(minutes * PRICES[entry_model], 4), abs=1e-4)  # the model's own rate
    assert {stream.query["model"][0] for stream in fake_flux.streams} == {entry_model}
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
    options = {"end_of_speech": "flux", "eot_threshold": 0.7, "eot_timeout_ms": 5000, "boost_exposed_names": True,
               "no_speech_timeout": 8, "max_command_seconds": 30, "price_per_minute": 0.01, "monthly_cap_minutes": 500}
    result = await submit_options(hass, flux_entry, options)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    usage = flux_entry.runtime_data.usage  # rebuilt by the reload
    assert (usage.price_per_minute, usage.cap_minutes) == (0.01, 500)
    result = await submit_options(hass, flux_entry, {**options, "monthly_cap_minutes": 0})
    assert result["errors"] == {"usage": "out_of_range_monthly_cap_minutes"}  # below 1 minute: nothing saved
    assert flux_entry.options["monthly_cap_minutes"] == 500


@pytest.mark.parametrize("entry_model", BACKENDS)
async def test_the_cap_fails_commands_at_once_with_a_repair_issue_until_the_month_ends(
    hass: HomeAssistant, ha_core: HomeAssistant, hass_storage: dict[str, Any], flux_entry_data: dict[str, Any],
    fake_flux: FakeFlux, entry_model: str,
) -> None:
    hass_storage[f"{DOMAIN}.usage.capped"] = {"version": 1, "key": f"{DOMAIN}.usage.capped", "data": {
        "month": month(), "audio_seconds": 59.0, "commands": 3, "last_latency": None}}
    entry = await add_entry(hass, flux_entry_data, {"monthly_cap_minutes": 1}, entry_id="capped")
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, "capped_monthly_cap") is None  # 59 s of 60: not yet
    assert (await command(hass, load_wav(KITCHEN) + silence(3))).text == fixture_text(KITCHEN)
    issue = issues.async_get_issue(DOMAIN, "capped_monthly_cap")
    assert issue is not None and issue.translation_key == "monthly_cap_reached" and issue.is_fixable
    assert issue.translation_placeholders and issue.translation_placeholders["cap"] == "1 audio minute"
    streams = len(fake_flux.streams)

    # Through the pipeline: a clear stt error at once, no Flux stream, the audio not even read.
    for component in ("intent", "conversation", "assist_pipeline"):
        assert await async_setup_component(hass, component, {})
    pipeline = assist_pipeline.async_get_pipeline(hass)
    await assist_pipeline.async_update_pipeline(hass, pipeline, stt_engine=stt_entity_id(entry_model),
                                                stt_language="en-US")
    events: list[PipelineEvent] = []
    stream = PacedStream(load_wav(KITCHEN) + silence(3))
    await assist_pipeline.async_pipeline_from_audio_stream(
        hass, context=Context(), event_callback=events.append, stt_metadata=metadata(),
        stt_stream=aiter(stream), end_stage=PipelineStage.STT,
    )
    errors = [event for event in events if event.type is PipelineEventType.ERROR]
    assert errors and errors[0].data and errors[0].data["code"] == "stt-stream-failed"
    assert len(fake_flux.streams) == streams and stream.seconds_sent < 0.5
    assert sensor(hass, entry, "commands") == 5  # a command the cap refused counts as one (it used no audio)

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


async def test_the_cap_issue_opens_the_cap_and_a_higher_one_fixes_it(
    hass: HomeAssistant, ha_core: HomeAssistant, hass_client: Any, hass_storage: dict[str, Any],
    flux_entry_data: dict[str, Any], fake_flux: FakeFlux,
) -> None:
    hass_storage[f"{DOMAIN}.usage.fixme"] = {"version": 1, "key": f"{DOMAIN}.usage.fixme", "data": {
        "month": month(), "audio_seconds": 75.0, "commands": 9, "last_latency": None}}
    entry = await add_entry(hass, flux_entry_data, {"monthly_cap_minutes": 1, "eot_threshold": 0.8}, entry_id="fixme")
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "fixme_monthly_cap")
    assert issue is not None and issue.is_fixable
    assert await async_setup_component(hass, "repairs", {})
    client = await hass_client()
    response = await client.post("/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue.issue_id})
    assert response.status == 200
    form = await response.json()
    assert form["type"] == "form" and form["step_id"] == "cap", form
    (field,) = form["data_schema"]
    assert field["name"] == "monthly_cap_minutes" and field["description"] == {"suggested_value": 1}
    assert field["selector"]["number"]["min"] == 1  # the options flow's own field
    placeholders = form["description_placeholders"]
    assert placeholders["used"] == "1.2 audio minutes" and placeholders["cap"] == "1 audio minute"

    # Not above this month's 1.25 minutes: refused on the field, nothing changed.
    response = await client.post(f"/api/repairs/issues/fix/{form['flow_id']}", json={"monthly_cap_minutes": 1})
    form = await response.json()
    assert form["errors"] == {"monthly_cap_minutes": "cap_not_above_usage"}
    assert entry.options["monthly_cap_minutes"] == 1
    response = await client.post(f"/api/repairs/issues/fix/{form['flow_id']}", json={"monthly_cap_minutes": 2e6})
    form = await response.json()
    assert form["errors"] == {"monthly_cap_minutes": "out_of_range_monthly_cap_minutes"}
    assert (form["description_placeholders"]["low"], form["description_placeholders"]["high"]) == ("1", "1000000")

    response = await client.post(f"/api/repairs/issues/fix/{form['flow_id']}", json={"monthly_cap_minutes": 2})
    assert (await response.json())["type"] == "create_entry"
    await hass.async_block_till_done()
    assert entry.options == {"monthly_cap_minutes": 2, "eot_threshold": 0.8}  # the other options kept
    assert ir.async_get(hass).async_get_issue(DOMAIN, "fixme_monthly_cap") is None
    assert entry.runtime_data.usage.cap_minutes == 2  # reloaded: commands go through again
    assert (await command(hass, load_wav(KITCHEN) + silence(3))).text == fixture_text(KITCHEN)


@pytest.mark.parametrize(("seconds", "cap", "says_cap", "says_used"), [
    (61.0, 1, "1 audio minute", "1 audio minute"),
    (150.0, 2, "2 audio minutes", "2.5 audio minutes"),
])
async def test_the_cap_issue_says_its_minutes_in_the_right_number_and_the_reset_as_a_date(
    hass: HomeAssistant, ha_core: HomeAssistant, hass_storage: dict[str, Any], flux_entry_data: dict[str, Any],
    seconds: float, cap: int, says_cap: str, says_used: str,
) -> None:
    from homeassistant.helpers.translation import async_get_translations

    hass_storage[f"{DOMAIN}.usage.one"] = {"version": 1, "key": f"{DOMAIN}.usage.one", "data": {
        "month": month(), "audio_seconds": seconds, "commands": 2, "last_latency": None}}
    entry = await add_entry(hass, flux_entry_data, {"monthly_cap_minutes": cap}, entry_id="one")
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "one_monthly_cap")
    assert issue is not None and issue.translation_placeholders is not None
    reset = next_month_start(dt_util.now()).date()
    strings = await async_get_translations(hass, "en", "issues", [DOMAIN])
    prefix = f"component.{DOMAIN}.issues.monthly_cap_reached.fix_flow"
    placeholders = issue.translation_placeholders
    text = strings[f"{prefix}.step.cap.description"].format(**placeholders)  # as the frontend fills it in
    assert text == (f"{entry.title} has sent its monthly cap of {says_cap} to Flux, so its voice commands fail until "
                    f"the cap resets on {reset:%B} {reset.day}, {reset.year}. To use it sooner, raise the cap or "
                    "clear it for none.")
    hint = strings[f"{prefix}.step.cap.data_description.monthly_cap_minutes"].format(**placeholders)
    assert f"this month has used {says_used}." in hint
    error = strings[f"{prefix}.error.cap_not_above_usage"].format(**placeholders)
    assert error.startswith(f"This month has already used {says_used}:")


async def test_usage_sensors_show_seconds_not_tenths_of_a_minute_and_have_their_own_icons(
    hass: HomeAssistant, flux_entry: MockConfigEntry
) -> None:
    from homeassistant.helpers.icon import async_get_icons

    registry = er.async_get(hass)
    precision = {}
    for key in ("audio_minutes", "commands", "last_latency", "estimated_cost"):
        entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{flux_entry.entry_id}-{key}")
        entry = registry.async_get(entity_id or "")
        assert entry is not None
        precision[key] = entry.options.get("sensor", {}).get("suggested_display_precision")
    assert 60 * 10 ** -precision["audio_minutes"] <= 1  # a 5.3 s command shows as 5 s, not 6
    assert 0.0065 * 2 / 60 >= 10 ** -precision["estimated_cost"] / 2  # and a 2 s command costs more than nothing
    icons = (await async_get_icons(hass, "entity", [DOMAIN]))[DOMAIN]["sensor"]
    assert {key: icon["default"].startswith("mdi:") for key, icon in icons.items()} == dict.fromkeys(precision, True)
