"""What real Flux deployments do differently, through the integration in a real Home Assistant: the answer is
returned before the stream is closed, faults the user must fix become repair issues, privacy options and
degraded answers reach Flux and diagnostics, and a deployment without ForceEndTurn loses no words."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry

from custom_components.deepgram_flux.const import DOMAIN
from tests.fake_flux import FakeFlux
from tests.ha.test_config_flow import start_user_flow
from tests.ha.test_stt_entity import entity
from tests.ha.test_wyoming_integration import metadata
from tests.helpers import PacedStream, fixture_text, load_wav, silence

KITCHEN = "turn_on_the_kitchen_light"


async def command(hass: HomeAssistant, pcm: bytes, pace: float = 10) -> stt.SpeechResult:
    async with asyncio.timeout(15):
        return await entity(hass).async_process_audio_stream(metadata(), aiter(PacedStream(pcm, pace=pace)))


async def test_the_answer_does_not_wait_for_the_stream_to_close(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    fake_flux.script.close_stream_delay = 5.0  # Flux answers CloseStream with Updates, then takes its time
    result = await command(hass, load_wav(KITCHEN) + silence(1))
    assert result.text == fixture_text(KITCHEN)
    stream = fake_flux.streams[0]
    assert not stream.closed  # answered first; the close goes on in the background
    assert await hass.config_entries.async_unload(flux_entry.entry_id)  # unload cancels what is still closing
    await hass.async_block_till_done()
    async with asyncio.timeout(5):
        while not stream.closed:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(("status", "issue"), [(402, "flux_no_credit"), (403, "flux_forbidden"),
                                                (404, "flux_not_found")])
async def test_faults_the_user_must_fix_raise_a_repair_issue_cleared_by_the_next_success(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux, status: int, issue: str
) -> None:
    fake_flux.script.handshake_status = status
    result = await command(hass, load_wav(KITCHEN))
    assert result.result is stt.SpeechResultState.ERROR
    registry = ir.async_get(hass)
    found = registry.async_get_issue(DOMAIN, f"{flux_entry.entry_id}_{issue.replace('_', '-')}")
    assert found is not None and found.translation_key == issue and found.severity is ir.IssueSeverity.ERROR
    assert f"Injected failure {status}" in (found.translation_placeholders or {}).get("detail", "")
    fake_flux.script.handshake_status = None
    result = await command(hass, load_wav(KITCHEN) + silence(1))
    assert result.text == fixture_text(KITCHEN)
    assert registry.async_get_issue(DOMAIN, found.issue_id) is None


async def test_a_rejected_key_is_one_repair_issue_home_assistants_re_authentication(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    fake_flux.api_key = "rotated-key"
    for _ in range(2):  # a second command does not add another
        assert (await command(hass, load_wav(KITCHEN))).result is stt.SpeechResultState.ERROR
        await hass.async_block_till_done()
    issues = [issue for issue in ir.async_get(hass).issues.values() if issue.active]
    assert [(issue.domain, issue.issue_id) for issue in issues] == [
        ("homeassistant", f"config_entry_reauth_{DOMAIN}_{flux_entry.entry_id}")]
    (flow,) = flux_entry.async_get_active_flows(hass, {"reauth"})
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {"api_key": "rotated-key"})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert not [issue for issue in ir.async_get(hass).issues.values() if issue.active]  # fixed by the new key


async def test_faults_a_retry_can_fix_raise_no_issue(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    for status in (408, 429, 503):
        fake_flux.script.handshake_status = status
        assert (await command(hass, load_wav(KITCHEN))).result is stt.SpeechResultState.ERROR
    assert not [i for i in ir.async_get(hass).issues.values() if i.domain == DOMAIN]
    codes = [c["error_code"] for c in flux_entry.runtime_data.history]
    assert codes == ["flux-request-timeout", "flux-rate-limited", "flux-unavailable"]


async def test_privacy_opt_out_and_tags_reach_flux(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    hass.config_entries.async_update_entry(flux_entry, options={"mip_opt_out": True, "tags": ["living-room"]})
    await hass.config_entries.async_reload(flux_entry.entry_id)
    await hass.async_block_till_done()
    await command(hass, load_wav(KITCHEN) + silence(1))
    query = fake_flux.streams[-1].query
    assert query["mip_opt_out"] == ["true"] and query["tag"] == ["living-room"]


async def test_a_deployment_without_force_end_turn_loses_no_words_and_diagnostics_say_why(
    hass: HomeAssistant, hass_client: Any, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    fake_flux.script.force_end_supported = False
    cut = load_wav(KITCHEN)[: int(1.3 * 32000)]  # the pipeline's audio stops mid-speech
    first = await command(hass, cut)
    assert first.result is stt.SpeechResultState.SUCCESS
    assert first.text and fixture_text(KITCHEN).startswith(first.text)
    second = await command(hass, cut)  # remembered: ended with trailing silence
    assert second.text and fixture_text(KITCHEN).startswith(second.text)
    async with asyncio.timeout(5):  # the stream is closed in the background
        while not fake_flux.streams[1].closed:
            await asyncio.sleep(0.02)
    assert [json_type(m) for m in fake_flux.streams[1].client_messages] == ["CloseStream"]  # no ForceEndTurn
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, flux_entry)
    first_record, second_record = diagnostics["recent_commands"]
    assert first_record["degraded"] and "force-end-unsupported" in first_record["notes"]
    assert not second_record["degraded"] and second_record["notes"] == []
    assert diagnostics["counters"] == {"force-end-unsupported": 1, "degraded": 1}


def json_type(message: str) -> str:
    import json

    return str(json.loads(message)["type"])


@pytest.mark.parametrize(("status", "error"), [(402, "no_credit"), (404, "not_found"), (429, "rate_limited")])
async def test_config_flow_names_each_handshake_refusal(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any],
    status: int, error: str,
) -> None:
    fake_flux.script.handshake_status = status
    result = await start_user_flow(hass, flux_entry_data)
    assert result["errors"] == {"base": error}


async def test_the_regional_endpoints_are_offered(hass: HomeAssistant, ha_core: HomeAssistant) -> None:
    from homeassistant import config_entries

    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    schema = result["data_schema"].schema
    (endpoint,) = [value for key, value in schema.items() if key == "endpoint"]
    # the global host first (the default), then Deepgram's data-residency regions, US included
    assert endpoint.config["options"] == ["global", "us", "eu", "au", "in", "custom"]
    (default,) = [key.default() for key in schema if key == "endpoint"]
    assert default == "global"
