"""Every branch of the config, reauth, reconfigure and options flows, against the fake Flux."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant import config_entries
from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.deepgram_flux.const import DOMAIN
from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux


async def start_user_flow(hass: HomeAssistant, data: dict[str, Any]) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


async def test_user_step_creates_the_entry_after_a_real_handshake(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]
) -> None:
    result = await start_user_flow(hass, flux_entry_data)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Deepgram Flux (flux-general-en)"
    assert result["data"] == flux_entry_data
    entry = result["result"]
    assert entry.unique_id and API_KEY not in entry.unique_id
    assert fake_flux.handshakes == 1
    assert fake_flux.streams[0].audio_bytes == 0 and fake_flux.streams[0].closed  # no audio, closed at once
    assert hass.states.get("stt.deepgram_flux_flux_general_en") is not None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"api_key": "not-the-key"}, {"base": "invalid_auth"}),
        ({"model": "flux-general-multi"}, {"base": "model_forbidden"}),
        ({"custom_url": "ws://127.0.0.1:9/v2/listen"}, {"base": "cannot_connect"}),
        ({"custom_url": "http://example.invalid"}, {"custom_url": "invalid_url"}),
    ],
)
async def test_user_step_errors(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any],
    change: dict[str, str], error: dict[str, str],
) -> None:
    fake_flux.script.forbidden_models = {"flux-general-multi"}
    result = await start_user_flow(hass, {**flux_entry_data, **change})
    assert result["type"] is FlowResultType.FORM and result["errors"] == error
    # The form is shown again; the right values then succeed.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], flux_entry_data)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_unexpected_flux_answer_is_unknown_and_logged(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_flux.script.handshake_status = 400
    result = await start_user_flow(hass, flux_entry_data)
    assert result["errors"] == {"base": "unknown"}
    assert "HTTP 400" in caplog.text and API_KEY not in caplog.text


async def test_the_same_key_and_endpoint_cannot_be_added_twice(
    hass: HomeAssistant, flux_entry: MockConfigEntry, flux_entry_data: dict[str, Any]
) -> None:
    result = await start_user_flow(hass, flux_entry_data)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "already_configured"


async def test_reauth_takes_a_new_key(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]
) -> None:
    fake_flux.api_key = "rotated-key"
    result = await flux_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": "still-wrong"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"api_key": "rotated-key"})
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reauth_successful"
    assert flux_entry.data["api_key"] == "rotated-key"
    assert flux_entry.data["custom_url"] == flux_entry_data["custom_url"]


async def test_reconfigure_changes_the_model_and_keeps_the_key_when_left_empty(
    hass: HomeAssistant, flux_entry: MockConfigEntry, fake_flux: FakeFlux
) -> None:
    result = await flux_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    data = {"model": "flux-general-multi", "endpoint": "custom", "custom_url": fake_flux.url}
    fake_flux.script.forbidden_models = {"flux-general-multi"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], data)
    assert result["errors"] == {"base": "model_forbidden"}
    fake_flux.script.forbidden_models = set()
    result = await hass.config_entries.flow.async_configure(result["flow_id"], data)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reconfigure_successful"
    assert flux_entry.data["model"] == "flux-general-multi" and flux_entry.data["api_key"] == API_KEY
    assert flux_entry.title == "Deepgram Flux (flux-general-multi)"
    await hass.async_block_till_done()
    entity = stt.async_get_speech_to_text_entity(hass, "stt.deepgram_flux_flux_general_en")  # the id is kept
    assert entity is not None and "de-DE" in entity.supported_languages  # reloaded with the new model


OPTIONS = {
    "end_of_speech": "flux", "eot_threshold": 0.8, "eot_timeout_ms": 3000, "boost_exposed_names": False,
    "keyterms": ["Léa", " ", "Hue Strip"], "no_speech_timeout": 6, "max_command_seconds": 20,
}


async def test_options_are_saved_and_reload_the_entry(hass: HomeAssistant, flux_entry: MockConfigEntry) -> None:
    result = await hass.config_entries.options.async_init(flux_entry.entry_id)
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(result["flow_id"], {**OPTIONS, "eager_eot_threshold": 0.5})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert flux_entry.options["keyterms"] == ["Léa", "Hue Strip"]
    config = flux_entry.runtime_data.session_config  # rebuilt by the reload
    assert (config.eot_threshold, config.eager_eot_threshold, config.eot_timeout_ms) == (0.8, 0.5, 3000)
    assert (config.no_speech_timeout, config.max_command_seconds, config.keyterms) == (6, 20, ("Léa", "Hue Strip"))


async def test_options_refuse_an_eager_threshold_above_the_end_of_turn_one(hass: HomeAssistant, flux_entry: MockConfigEntry) -> None:
    result = await hass.config_entries.options.async_init(flux_entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**OPTIONS, "eot_threshold": 0.6, "eager_eot_threshold": 0.8}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"eager_eot_threshold": "invalid_threshold"}
    assert "must not exceed eot_threshold" in result["description_placeholders"]["error"]


@pytest.mark.parametrize(("field", "value"), [("eot_threshold", 1.5), ("eot_timeout_ms", 100), ("max_command_seconds", 1000)])
async def test_options_refuse_out_of_range_values(
    hass: HomeAssistant, flux_entry: MockConfigEntry, field: str, value: float
) -> None:
    result = await hass.config_entries.options.async_init(flux_entry.entry_id)
    with pytest.raises(InvalidData) as caught:
        await hass.config_entries.options.async_configure(result["flow_id"], {**OPTIONS, field: value})
    assert "is too" in caught.value.schema_errors[field]  # "Value 1.5 is too large", shown under the field
