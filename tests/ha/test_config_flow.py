"""Every branch of the config, reauth, reconfigure and options flows, against the fake Flux."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant import config_entries
from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.deepgram_flux.const import DOMAIN
from tests.conftest import API_KEY
from tests.fake_flux import FakeFlux


async def configure(hass: HomeAssistant, flow_id: str, data: dict[str, Any]) -> Any:
    """Submit a connection step (user or reconfigure) as the frontend does: its fields, then, for a Flux model,
    the languages step with `nova` (default on)."""
    result = await hass.config_entries.flow.async_configure(flow_id, {k: v for k, v in data.items() if k != "nova"})
    if result["type"] is FlowResultType.FORM and result["step_id"] == "languages":
        result = await hass.config_entries.flow.async_configure(flow_id, {"nova": data.get("nova", True)})
    return result


async def start_user_flow(hass: HomeAssistant, data: dict[str, Any]) -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    return await configure(hass, result["flow_id"], data)


async def test_only_a_flux_model_is_asked_whether_other_languages_go_to_nova_3(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    assert "nova" not in [str(key) for key in result["data_schema"].schema]  # no switch beside the model
    result = await hass.config_entries.flow.async_configure(result["flow_id"], flux_entry_data)
    assert (result["step_id"], result["description_placeholders"]) == ("languages", {"model": "Flux English"})
    assert [str(key) for key in result["data_schema"].schema] == ["nova"]
    assert fake_flux.handshakes == 0  # checked once the entry's models are known
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {**flux_entry_data, "model": "nova-3"})
    assert result["type"] is FlowResultType.CREATE_ENTRY and "nova" not in result["data"]  # it hears them all


async def test_user_step_creates_the_entry_after_a_real_handshake(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]
) -> None:
    result = await start_user_flow(hass, flux_entry_data)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Deepgram (Flux English, Nova-3)"  # what it serves, Polish too
    assert result["data"] == {**flux_entry_data, "nova": True}  # Nova-3 for other languages: on by default
    entry = result["result"]
    assert entry.unique_id and API_KEY not in entry.unique_id
    # One handshake per API the entry uses: Flux for its model, Nova-3 for the other languages.
    assert fake_flux.handshakes == 2
    assert [stream.query["model"] for stream in fake_flux.streams] == [["flux-general-en"], ["nova-3"]]
    assert all(s.audio_bytes == 0 and s.closed for s in fake_flux.streams)  # no audio, closed at once
    assert hass.states.get("stt.deepgram_flux_english_nova_3") is not None
    (device,) = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert (device.name, device.model) == (result["title"], "flux-general-en, nova-3")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"api_key": "not-the-key"}, {"base": "invalid_auth"}),
        ({"model": "flux-general-multi"}, {"base": "model_forbidden"}),
        ({"custom_url": "ws://127.0.0.1:9/v2/listen"}, {"base": "cannot_connect"}),
        ({"custom_url": "http://example.invalid"}, {"custom_url": "invalid_url"}),
        # the server's own rule for --flux-url: these were a traceback, or accepted and failing every command
        ({"custom_url": "ws://[::1"}, {"custom_url": "invalid_url"}),
        ({"custom_url": "wss://:0"}, {"custom_url": "invalid_url"}),
        ({"custom_url": "ws://h:abc/"}, {"custom_url": "invalid_url"}),
        ({"custom_url": "ws://127.0.0.1:0/v2/listen"}, {"custom_url": "invalid_url"}),
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
    result = await configure(hass, result["flow_id"], flux_entry_data)
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
    result = await configure(hass, result["flow_id"], data)
    assert (result["step_id"], result["errors"]) == ("reconfigure", {"base": "model_forbidden"})
    fake_flux.script.forbidden_models = set()
    result = await configure(hass, result["flow_id"], data)
    assert result["type"] is FlowResultType.ABORT and result["reason"] == "reconfigure_successful"
    assert flux_entry.data["model"] == "flux-general-multi" and flux_entry.data["api_key"] == API_KEY
    assert flux_entry.title == "Deepgram (Flux multilingual, Nova-3)"
    await hass.async_block_till_done()
    entity = stt.async_get_speech_to_text_entity(hass, "stt.deepgram_flux_english_nova_3")  # the id is kept
    assert entity is not None and "de-DE" in entity.supported_languages  # reloaded with the new model


OPTIONS = {
    "end_of_speech": "flux", "eot_threshold": 0.8, "eot_timeout_ms": 3000, "boost_exposed_names": False,
    "keyterms": ["Léa", " ", "Hue Strip"], "no_speech_timeout": 6, "max_command_seconds": 20,
}
# The options form's sections, in order, and the fields each holds (the user's view of the options).
SECTIONS = {
    "turn": ["end_of_speech", "early_answer", "eot_threshold", "eager_eot_threshold", "eot_timeout_ms",
             "no_speech_timeout", "max_command_seconds", "endpointing_ms", "utterance_end_ms"],  # last two: Nova-3
    "names": ["boost_exposed_names", "keyterms"],
    "usage": ["price_per_minute", "monthly_cap_minutes", "tags", "mip_opt_out"],
    "fallback": ["fallback_entity"],
}


def options_form(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat options as the options form submits them: one dict per section."""
    return {name: {key: options[key] for key in keys if key in options} for name, keys in SECTIONS.items()}


async def submit_options(hass: HomeAssistant, entry: MockConfigEntry, options: dict[str, Any]) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "init"
    return await hass.config_entries.options.async_configure(result["flow_id"], options_form(options))


async def test_options_are_saved_flat_and_reload_the_entry(hass: HomeAssistant, flux_entry: MockConfigEntry) -> None:
    result = await submit_options(hass, flux_entry, {**OPTIONS, "eager_eot_threshold": 0.5})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert flux_entry.options["keyterms"] == ["Léa", "Hue Strip"]
    assert flux_entry.options["eot_threshold"] == 0.8 and "turn" not in flux_entry.options  # stored as before
    config = flux_entry.runtime_data.session_config  # rebuilt by the reload
    assert (config.eot_threshold, config.eager_eot_threshold, config.eot_timeout_ms) == (0.8, 0.5, 3000)
    assert (config.no_speech_timeout, config.max_command_seconds, config.keyterms) == (6, 20, ("Léa", "Hue Strip"))


async def test_options_form_is_grouped_in_sections_the_rare_ones_collapsed(
    hass: HomeAssistant, flux_entry: MockConfigEntry
) -> None:
    from homeassistant.data_entry_flow import section

    hass.config_entries.async_update_entry(flux_entry, options={"eot_threshold": 0.8, "keyterms": ["Léa"]})
    result = await hass.config_entries.options.async_init(flux_entry.entry_id)
    schema = result["data_schema"].schema
    assert [str(key) for key in schema] == list(SECTIONS)
    parts = {str(key): value for key, value in schema.items()}
    assert all(isinstance(part, section) for part in parts.values())
    assert {name: [str(key) for key in part.schema.schema] for name, part in parts.items()} == SECTIONS
    assert {name for name, part in parts.items() if part.options["collapsed"]} == {"usage", "fallback"}
    suggested = {str(key): key.description["suggested_value"]
                 for part in parts.values() for key in part.schema.schema if key.description}
    assert suggested["eot_threshold"] == 0.8 and suggested["keyterms"] == ["Léa"]  # the entry's, in its section
    assert suggested["eot_timeout_ms"] == 5000  # and the defaults


async def test_options_refuse_an_eager_threshold_above_the_end_of_turn_one_by_its_label_and_limit(
    hass: HomeAssistant, flux_entry: MockConfigEntry
) -> None:
    from homeassistant.helpers.translation import async_get_translations

    result = await submit_options(hass, flux_entry, {**OPTIONS, "eot_threshold": 0.6, "eager_eot_threshold": 0.8})
    assert result["type"] is FlowResultType.FORM
    # Shown under the section that holds the field (the frontend shows no error inside a section), once: the
    # form's description carries no copy of it.
    assert result["errors"] == {"turn": "eager_above_eot"}
    strings = await async_get_translations(hass, "en", "options", [DOMAIN])
    prefix = f"component.{DOMAIN}.options"
    text = strings[f"{prefix}.error.eager_above_eot"].format(**result["description_placeholders"])
    label = strings[f"{prefix}.step.init.sections.turn.data.eager_eot_threshold"]
    limit = strings[f"{prefix}.step.init.sections.turn.data.eot_threshold"]
    assert text.startswith(f"{label} must not be above the {limit[0].lower()}{limit[1:]} (0.6)")
    assert "eager_eot_threshold" not in text and "{" not in strings[f"{prefix}.step.init.description"]


@pytest.mark.parametrize(("field", "value", "section", "message"), [
    ("eot_threshold", 1.5, "turn", "End-of-turn confidence must be from 0.5 to 1.0."),  # as its hint
    ("eot_timeout_ms", 100, "turn", "End-of-turn timeout must be from 500 to 60000 ms."),
    ("max_command_seconds", 1000, "turn", "Maximum command length must be from 5 to 300 s."),
    ("monthly_cap_minutes", 0, "usage", "Monthly cap must be from 1 to 1000000 minutes."),
])
async def test_options_refuse_out_of_range_values_by_the_fields_label_and_range(
    hass: HomeAssistant, flux_entry: MockConfigEntry, field: str, value: float, section: str, message: str
) -> None:
    from homeassistant.helpers.translation import async_get_translations

    # Home Assistant's own check would say "Value 1.5 is too large at 'turn.eot_threshold'".
    result = await submit_options(hass, flux_entry, {**OPTIONS, field: value})
    assert result["type"] is FlowResultType.FORM and list(result["errors"]) == [section]
    strings = await async_get_translations(hass, "en", "options", [DOMAIN])
    text = strings[f"component.{DOMAIN}.options.error.{result['errors'][section]}"]
    assert text.format(**result["description_placeholders"]) == message
    assert flux_entry.options == {}


async def test_every_ranged_fields_hint_gives_the_range_its_error_names(hass: HomeAssistant) -> None:
    from homeassistant.helpers.translation import async_get_translations

    from custom_components.deepgram_flux.options_flow import (
        NOVA_FIELDS,
        SECTIONS as FORM,
        RangedNumber,
        range_placeholders,
    )

    strings = await async_get_translations(hass, "en", "options", [DOMAIN])
    prefix = f"component.{DOMAIN}.options.step.init.sections"
    missing = {}
    for part in FORM:
        for marker, selector in {**part.fields, **(NOVA_FIELDS if part.name == "turn" else {})}.items():
            if isinstance(selector, RangedNumber):
                span = "{low} to {high}".format(**range_placeholders(selector.config["min"], selector.config["max"]))
                hint = strings[f"{prefix}.{part.name}.data_description.{marker}"]
                if span not in hint:
                    missing[str(marker)] = span
    assert missing == {}


async def test_a_section_with_an_error_or_a_change_comes_back_open(
    hass: HomeAssistant, flux_entry: MockConfigEntry
) -> None:
    """The cap is in a collapsed section: the form shown again with its error must not hide it."""
    result = await submit_options(hass, flux_entry, {**OPTIONS, "monthly_cap_minutes": 0})
    assert result["errors"] == {"usage": "out_of_range_monthly_cap_minutes"}
    collapsed = {str(key): part.options["collapsed"] for key, part in result["data_schema"].schema.items()}
    assert collapsed == {"turn": False, "names": False, "usage": False, "fallback": True}
    # An error in one section; another collapsed one the user changed stays open too.
    hass.config_entries.async_update_entry(flux_entry, options={"tags": ["kitchen"]})
    result = await submit_options(hass, flux_entry, {**OPTIONS, "eot_threshold": 1.5, "tags": ["hall"]})
    collapsed = {str(key): part.options["collapsed"] for key, part in result["data_schema"].schema.items()}
    assert collapsed == {"turn": False, "names": False, "usage": False, "fallback": True}
    result = await submit_options(hass, flux_entry, {**OPTIONS, "eot_threshold": 1.5, "tags": ["kitchen"]})
    collapsed = {str(key): part.options["collapsed"] for key, part in result["data_schema"].schema.items()}
    assert collapsed == {"turn": False, "names": False, "usage": True, "fallback": True}  # unchanged: as it was


async def test_the_wrong_key_error_says_where_to_check_the_key_and_that_it_needs_the_model(
    hass: HomeAssistant, ha_core: HomeAssistant
) -> None:
    from homeassistant.helpers.translation import async_get_translations

    strings = await async_get_translations(hass, "en", "config", [DOMAIN])
    text = strings[f"component.{DOMAIN}.config.error.invalid_auth"]
    assert "Deepgram console" in text and "API keys" in text and "model you chose" in text


async def test_list_fields_have_add_buttons_that_read_naturally(hass: HomeAssistant, flux_entry: MockConfigEntry) -> None:
    """The frontend labels a list field's button "Add {label}": the label must name one item."""
    from homeassistant.helpers.translation import async_get_translations

    strings = await async_get_translations(hass, "en", "options", [DOMAIN])
    result = await hass.config_entries.options.async_init(flux_entry.entry_id)
    buttons = {}
    for name, part in ((str(k), v) for k, v in result["data_schema"].schema.items()):
        for key, selector in part.schema.schema.items():
            if selector.config.get("multiple") and type(selector).__name__ == "TextSelector":
                buttons[str(key)] = f"Add {strings[f'component.{DOMAIN}.options.step.init.sections.{name}.data.{key}']}"
    assert buttons == {"keyterms": "Add Key term", "tags": "Add Usage tag"}


async def test_a_flux_only_host_is_told_on_the_nova_switch_and_saves_with_it_off(
    hass: HomeAssistant, ha_core: HomeAssistant, fake_flux: FakeFlux, flux_entry_data: dict[str, Any]
) -> None:
    """A self-hosted Flux without /v1/listen: Flux is there, Nova-3 is not; say so where it can be fixed."""
    fake_flux.script.nova_served = False
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": config_entries.SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], flux_entry_data)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"nova": True})
    # Back on the step that has the switch, with the reason on it.
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "languages"
    assert result["errors"] == {"nova": "nova_not_found"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"nova": False})
    assert result["type"] is FlowResultType.CREATE_ENTRY and result["data"]["nova"] is False
    await hass.async_block_till_done()
    languages = hass.data["stt"].get_entity("stt.deepgram_flux_english").supported_languages
    assert "pl" not in languages and "en-US" in languages
    # Nova-3 as the entry's model on that host: no switch to turn off, so the form says it.
    result = await start_user_flow(hass, {**flux_entry_data, "model": "nova-3"})
    assert result["errors"] == {"base": "nova_model_not_found"}


async def test_an_entry_from_before_the_us_region_keeps_the_global_host(
    hass: HomeAssistant, ha_core: HomeAssistant
) -> None:
    """Until minor version 2, "us" named the global host; it now names api.us.deepgram.com (US residency)."""
    from custom_components.deepgram_flux import endpoint_url

    data = {"api_key": API_KEY, "model": "flux-general-en", "endpoint": "us"}
    entry = MockConfigEntry(domain=DOMAIN, data=data, version=1, minor_version=1, title="Deepgram Flux")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert (entry.minor_version, entry.data["endpoint"]) == (2, "global")
    assert endpoint_url(dict(entry.data)) == "wss://api.deepgram.com/v2/listen"
    assert endpoint_url({"endpoint": "us"}) == "wss://api.us.deepgram.com/v2/listen"
